"""Property-based tests: random valid networks check, their shapes, shortcuts and
costs agree with formulas recomputed here, and damaged sources never crash.

The strategies live in resdsl/testing (public: users test their own specs with them).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.errors import CODES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resdsl.testing import NetworkSpec, invalid_networks, mutated_sources, networks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEATURE_OPS = ("conv", "maxpool", "avgpool")
FREE_KINDS = (
    "chunk",
    "sum",
    "product",
    "select",
    "drop_path",
    "pad",
    "input",
    "relu",
    "gelu",
    "silu",
    "sigmoid",
    "leaky_relu",
    "hardswish",
    "mish",
    "mul",
    "identity",
    "dropout",
    "flatten",
    "maxpool",
    "avgpool",
    "add",
    "concat",
    "zeropad",
)


# ---- independent formulas --------------------------------------------------------------


def floor_window(size, kernel, stride, padding, dilation=1):
    """floor((H + 2p - d(k-1) - 1) / s) + 1, in exact integer arithmetic."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def ceil_window(size, kernel, stride, padding):
    """torch's ceil_mode: ceil(...) + 1, minus one if the last window starts past the padded input."""
    out = -(-(size + 2 * padding - (kernel - 1) - 1) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def expected_shape(kind, attrs, x):
    """The output shape of a conv / pool node from its input shape, recomputed here."""
    c, h, w = x
    if kind == "avgpool" and attrs["kernel"] is None:
        return (c, 1, 1)
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    if kind == "conv":
        d = attrs["dilation"]
        return (attrs["out"], floor_window(h, k, s, p, d), floor_window(w, k, s, p, d))
    if attrs.get("ceil"):
        return (c, ceil_window(h, k, s, p), ceil_window(w, k, s, p))
    return (c, floor_window(h, k, s, p), floor_window(w, k, s, p))


def expected_cost(kind, attrs, x, y):
    """(params, MACs) recomputed from shapes."""
    if kind in ("conv", "stdconv", "scaled_stdconv"):  # weight standardisation changes no count
        weights = attrs["out"] * (x[0] // attrs["groups"]) * attrs["kernel"] ** 2
        gain = attrs["out"] if kind == "scaled_stdconv" and attrs["gain"] else 0  # timm's gain, out×1×1×1
        return weights + (attrs["out"] if attrs["bias"] else 0) + gain, weights * y[1] * y[2]
    if kind == "bn":
        return 2 * x[0], 0
    if kind == "fc":
        n_in = math.prod(x)
        return n_in * attrs["out"] + (attrs["out"] if attrs["bias"] else 0), n_in * attrs["out"]
    if kind == "gn":
        return 2 * x[0], 0
    if kind in ("evonorm", "frn"):  # a scale, a shift, and v (EvoNorm) or tau (FRN) per channel
        return 3 * x[0], 0
    if kind == "se":
        hidden = attrs["hidden"] if attrs.get("hidden") is not None else x[0] // attrs["ratio"]
        if attrs.get("hidden") is None and attrs["divisor"] > 1:  # timm's make_divisible(C / r, d, round_limit=0)
            d = attrs["divisor"]
            hidden = max(d, int(x[0] / attrs["ratio"] + d / 2) // d * d)
        return 2 * x[0] * hidden + hidden + x[0], 2 * x[0] * hidden
    if kind == "eca":  # Wang et al. 2020: k = |log2(C) + 1| / 2 rounded to odd, at least 3 (timm's EcaModule)
        t = int(abs(math.log2(x[0]) + attrs["beta"]) / attrs["gamma"])
        k = attrs["kernel"] or max(t if t % 2 else t + 1, 3)
        return k, k * x[0]
    if kind == "ln":  # a weight and a bias per channel
        return 2 * x[0], 0
    if kind == "layer_scale":  # one factor per channel; an element-wise product is no MAC
        return x[0], 0
    if kind == "channel_fc":  # nn.Linear over the channels, at each of y's positions
        weights = x[0] * attrs["out"]
        return weights + (attrs["out"] if attrs["bias"] else 0), weights * math.prod(y[1:])
    assert kind in FREE_KINDS, kind
    return 0, 0


def predecessors(graph, node):
    return {role: u for u, _, role in graph.in_edges(node, data="role")}


def shortcut_chain(graph, merge):
    """(the shortcut's source shape, the inserted nodes on the shortcut in order)."""
    u = predecessors(graph, merge)["shortcut"]
    chain = []
    while graph.nodes[u]["inserted"] and graph.nodes[u].get("merge") == merge:
        chain.append(u)
        u = predecessors(graph, u)["main"]
    chain.reverse()
    return graph.nodes[u]["shape"], chain


def expected_shortcut(policy, x, y, stride):
    """The shortcut kind and the kinds of the ops inserted for it.

    As torchvision decides it: the block changes the shape when its stride is
    not 1 or the channels differ (even a stride on a 1x1 map counts).
    """
    if policy == "none":
        return "none", []
    if policy == "C":
        return "projection", ["conv", "bn"]
    if stride == 1 and x[0] == y[0]:
        return "identity", []
    if policy == "A":
        return "zeropad", ["zeropad"]
    if policy == "B":
        return "projection", ["conv", "bn"]
    # D (ResNet-D): average-pool, then project; no pool when the stride is 1
    return "avgproj", (["avgpool"] if stride > 1 else []) + ["conv", "bn"]


def load(spec: NetworkSpec) -> resdsl.Network:
    try:
        return resdsl.loads(spec.source)
    except resdsl.SpecError as exc:  # make the failing example readable
        pytest.fail(f"a valid network was rejected:\n{spec.source}\n{exc.render()}")


# ---- 1. every generated network checks ------------------------------------------------------


@settings(max_examples=100, **SETTINGS)
@given(networks())
def test_generated_networks_check(spec):
    net = load(spec)
    assert isinstance(net, resdsl.Network)
    assert net.name == spec.name
    assert net.input_shape == spec.input_shape
    assert net.output_shape == (spec.classes,)
    assert [(s.name, s.block, s.repeats, s.stride or 1, s.policy) for s in net.stages] == [
        (s.name, s.block, s.repeats, s.stride, s.policy) for s in spec.stages
    ]
    # the generator's own shape bookkeeping agrees with resdsl's, part by part
    parts = {p.name: p.output_shape for p in net.parts}
    if "no_sections" in spec.style:
        # parts come from the spec: without a `stem { }` section each stem op is its own part,
        # and the last one before the first stage carries the stem's output shape
        names = [p.name for p in net.parts]
        first_stage = names.index(spec.stages[0].name)
        assert first_stage >= 1 and "stem" not in parts and "head" not in parts
        assert net.parts[first_stage - 1].output_shape == spec.stem_shape
    else:
        assert parts["stem"] == spec.stem_shape
    for stage in spec.stages:
        assert parts[stage.name] == stage.out_shape, stage
    if spec.classes_param:
        assert resdsl.loads(spec.source, classes=spec.classes + 7).output_shape == (spec.classes + 7,)


# Non-square inputs are where H reaches 1 before W does; square ones isolate everything else.
@settings(max_examples=40, **SETTINGS)
@given(networks(square=True))
def test_generated_square_networks_check(spec):
    assert load(spec).output_shape == (spec.classes,)


# ---- 2. static shapes follow the floor formula -------------------------------------------------


@settings(max_examples=100, **SETTINGS)
@given(networks())
def test_shapes_follow_the_floor_formula(spec):
    net = load(spec)
    graph = net.graph
    for node, data in graph.nodes(data=True):
        if data["kind"] == "input":
            assert data["shape"] == spec.input_shape
            continue
        shape, x = data["shape"], data["in_shape"]
        assert shape is not None and x is not None, node
        assert x == graph.nodes[predecessors(graph, node)["main"]]["shape"], node
        assert all(d >= 1 for d in shape), (node, shape)
        if data["kind"] in FEATURE_OPS:
            assert shape == expected_shape(data["kind"], data["attrs"], x), (node, data["attrs"], x, shape)
        if data["kind"] == "conv":
            assert x[0] % data["attrs"]["groups"] == 0 and data["attrs"]["out"] % data["attrs"]["groups"] == 0
        elif data["kind"] == "fc":
            assert shape == (data["attrs"]["out"],)
        elif data["kind"] in ("bn", "relu", "dropout", "se"):
            assert shape == x
    assert net.output_shape == (spec.classes,)


# ---- 3. the shortcut policy --------------------------------------------------------------------


@settings(max_examples=100, **SETTINGS)
@given(networks())
def test_shortcut_policy(spec):
    net = load(spec)
    graph = net.graph
    # residual adds: a branches' `sum` is an `add` too, but has no shortcut
    adds = [n for n, d in graph.nodes(data=True) if d["kind"] == "add" and d["shortcut"] is not None]
    on_chains = set()
    for stage in spec.stages:
        mine = [n for n in adds if graph.nodes[n]["stage"] == stage.name]
        assert len(mine) == (0 if stage.policy == "none" else stage.repeats), stage
    for merge in adds:
        data = graph.nodes[merge]
        stage = spec.stage(data["stage"])
        assert data["policy"] == stage.policy
        x, chain = shortcut_chain(graph, merge)
        main = graph.nodes[predecessors(graph, merge)["main"]]["shape"]
        assert data["shape"] == main
        # the shapes the generator predicted for this block
        first = data["block"].endswith(".0")
        assert x == (stage.in_shape if first else stage.out_shape), merge
        assert main == stage.out_shape, merge
        kind, kinds = expected_shortcut(stage.policy, x, main, stage.stride if first else 1)
        assert data["shortcut"] == kind, (merge, stage.policy, x, main)
        assert [graph.nodes[n]["kind"] for n in chain] == kinds, merge
        assert all(graph.nodes[n]["merge"] == merge for n in chain)
        if chain:
            assert graph.nodes[chain[-1]]["shape"] == main
        if kind in ("projection", "avgproj"):
            conv = graph.nodes[chain[-2]]["attrs"]
            assert (conv["kernel"], conv["out"], conv["groups"]) == (1, main[0], 1)
        if kind == "zeropad":
            assert graph.nodes[chain[0]]["params"] == graph.nodes[chain[0]]["macs"] == 0
            assert graph.nodes[chain[0]]["attrs"]["channels"] == main[0] - x[0]
        on_chains.update(chain)
    inserted = {n for n, d in graph.nodes(data=True) if d["inserted"]}
    assert inserted == on_chains
    inserted_params = sum(graph.nodes[n]["params"] for n in inserted)
    if all(s.policy in ("A", "identity", "none") for s in spec.stages):
        assert inserted_params == 0
    if all(s.policy == "C" for s in spec.stages):
        assert all(graph.nodes[m]["shortcut"] == "projection" for m in adds)
    assert net.params == sum(d["params"] for _, d in graph.nodes(data=True))
    assert net.macs == sum(d["macs"] for _, d in graph.nodes(data=True))
    assert sum(p["params"] for p in net.projections()) == inserted_params


@settings(max_examples=50, **SETTINGS)
@given(networks(policies=("B",), allow_special=False))
def test_policy_b_projects_exactly_when_the_shape_changes(spec):
    """B projects exactly when the block's stride is not 1 or the channels change
    (torchvision's rule: a stride on a 1x1 map still gets a projection)."""
    graph = load(spec).graph
    for merge, data in graph.nodes(data=True):
        if data["kind"] != "add" or data["policy"] != "B":
            continue
        x, chain = shortcut_chain(graph, merge)
        y = data["shape"]
        stage = spec.stage(data["stage"])
        first = data["block"].endswith(".0")
        changes = first and (stage.stride != 1 or x[0] != y[0])
        assert changes == bool(chain) == (data["shortcut"] == "projection"), (merge, x, y)
        if x != y:
            assert changes
        assert data["shortcut"] in ("identity", "projection")


@settings(max_examples=50, **SETTINGS)
@given(networks(policies=("A",), allow_special=False))
def test_policy_a_is_parameter_free(spec):
    net = load(spec)
    graph = net.graph
    inserted = [d for _, d in graph.nodes(data=True) if d["inserted"]]
    if all(s.policy == "A" for s in spec.stages):
        assert sum(d["params"] for d in inserted) == 0
        assert sum(d["macs"] for d in inserted) == 0
    for merge, data in graph.nodes(data=True):
        if data["kind"] == "add" and data["policy"] == "A":
            x, chain = shortcut_chain(graph, merge)
            stage = spec.stage(data["stage"])
            stride = stage.stride if data["block"].endswith(".0") else 1
            changes = stride != 1 or x[0] != data["shape"][0]
            assert (data["shortcut"] == "zeropad") == changes == bool(chain)


def shortcut_stride(graph, chain):
    data = graph.nodes[chain[0]]
    return data["attrs"]["stride"]


@settings(max_examples=100, **SETTINGS)
@given(networks())
def test_shortcut_samples_where_the_main_path_does(spec):
    """A strided shortcut must use the block's own stride, as torchvision's downsample does.

    Any stride maps a map onto 1x1 (only position 0 is sampled), so only outputs
    wider than 1 pin the stride down.
    """
    graph = load(spec).graph
    for merge, data in graph.nodes(data=True):
        if data["kind"] != "add" or data["shortcut"] is None or not data["block"].endswith(".0"):
            continue
        x, chain = shortcut_chain(graph, merge)
        stage = spec.stage(data["stage"])
        if chain and max(data["shape"][1:]) > 1:
            assert shortcut_stride(graph, chain) == stage.stride, (
                merge,
                x,
                data["shape"],
                stage.stride,
                [graph.nodes[n]["attrs"] for n in chain],
            )


# ---- 4. params and MACs from shapes --------------------------------------------------------


@settings(max_examples=100, **SETTINGS)
@given(networks())
def test_params_and_macs_from_shapes(spec):
    net = load(spec)
    total_params = total_macs = 0
    for node, data in net.graph.nodes(data=True):
        if data["kind"] == "input":
            assert (data["params"], data["macs"]) == (0, 0)
            continue
        expected = expected_cost(data["kind"], data.get("attrs", {}), data["in_shape"], data["shape"])
        assert (data["params"], data["macs"]) == expected, (node, data["kind"], data.get("attrs"))
        total_params += expected[0]
        total_macs += expected[1]
    assert (net.params, net.macs) == (total_params, total_macs)
    assert net.flops == 2 * net.macs
    assert sum(p.params for p in net.parts) == net.params
    assert sum(p.macs for p in net.parts) == net.macs


# ---- deliberately invalid networks are rejected with the right code ---------------------------


@settings(max_examples=50, **SETTINGS)
@given(invalid_networks())
def test_invalid_networks_are_rejected(case):
    source, code, _ = case
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(source)
    codes = [d.code for d in info.value.diagnostics]
    assert code in codes, (source, info.value.render())


# ---- 5. damaged sources never crash ----------------------------------------------------------


class _Slow(BaseException):
    """Raised by the alarm: a BaseException so no `except Exception` in resdsl can swallow it."""


@contextmanager
def time_limit(seconds: float):
    def alarm(signum, frame):
        raise _Slow()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


PER_CALL_SECONDS = 5.0


def check_outcome(text: str) -> None:
    started = time.perf_counter()
    try:
        with time_limit(PER_CALL_SECONDS):
            try:
                result = resdsl.loads(text)
            except resdsl.SpecError as exc:
                result = exc
    except _Slow:
        pytest.fail(f"resdsl.loads took more than {PER_CALL_SECONDS} s on:\n{text!r}")
    elapsed = time.perf_counter() - started
    assert elapsed < PER_CALL_SECONDS, text
    if isinstance(result, resdsl.Network):
        return
    assert result.diagnostics, text
    lines = text.split("\n")
    for d in result.diagnostics:
        assert d.code in CODES, (d, text)
        assert d.span is not None and isinstance(d.line, int) and isinstance(d.column, int), (d, text)
        assert d.line >= 1 and d.column >= 1, (d, text)
        if d.span.path == "<string>":
            assert d.line <= len(lines), (d, text)
    assert "error[" in result.render()


@settings(max_examples=120, **SETTINGS)
@given(mutated_sources())
def test_mutated_sources_never_crash(text):
    check_outcome(text)


@settings(max_examples=40, **SETTINGS)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text):
    check_outcome(text)


# ---- 6. the CLI on damaged files -------------------------------------------------------------


@settings(max_examples=15, **SETTINGS)
@given(mutated_sources(), st.binary(max_size=4), st.integers(0, 10_000))
def test_cli_check_on_mutated_files(text, raw, where):
    data = text.encode("utf-8", "surrogatepass")
    where = min(where, len(data))
    data = data[:where] + raw + data[where:]  # may break UTF-8: E0101
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.res"
        path.write_bytes(data)
        proc = subprocess.run(
            [sys.executable, "-m", "resdsl", "check", str(path)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
        )
    assert "Traceback" not in proc.stderr, (data, proc.stderr)
    assert proc.returncode in (0, 1), (data, proc.returncode, proc.stderr)
    if proc.returncode == 0:
        assert proc.stdout.startswith("ok "), proc.stdout
    else:
        assert "error[E" in proc.stderr, proc.stderr


# ---- regressions: the smallest networks the properties above found ---------------------------
# Each is valid PyTorch: a 1x1 conv (or ::s slicing) with the block's stride maps
# the shortcut onto the main path exactly.


def _net(input_shape, stem, stages, policy="B"):
    body = "\n    ".join(stages)
    return (
        f'use "blocks.res"\nnetwork n {{\n    input {input_shape}\n    shortcut {policy}\n'
        f"    {stem}\n    {body}\n    head {{ avgpool -> fc 10 }}\n}}\n"
    )


@pytest.mark.parametrize("policy", ["A", "B", "C", "D"])
def test_regression_shortcut_when_h_reaches_1_before_w(policy):
    # 8x32 -> (stem s8) 1x4 -> (s2) 1x2: resdsl looks for the shortcut stride in H alone (1).
    net = resdsl.loads(_net("3x8x32", "conv 8 k3 s8", ["basic(8) x1 s2"], policy))
    assert [s for s in net.parts if s.name == "layer1"][0].output_shape == (8, 1, 2)


@pytest.mark.parametrize("policy", ["A", "B", "C", "D"])
def test_regression_non_square_stride_3(policy):
    # 4x5 -> (s3) 2x2: torch's 1x1 conv with stride 3 gives 2x2, but no stride is found.
    net = resdsl.loads(_net("1x8x9", "conv 4 k5 p0", ["basic(4) x1 s3"], policy))
    assert net.output_shape == (10,)


@pytest.mark.parametrize("policy", ["A", "B", "C", "D"])
def test_regression_shortcut_stride_is_the_block_stride(policy):
    # 4x4 -> (s3) 2x2: the main path samples rows 0 and 3; the shortcut must too.
    net = resdsl.loads(_net("3x4x4", "conv 8 k3", ["basic(16) x1 s3"], policy))
    chain = [d for _, d in net.graph.nodes(data=True) if d["inserted"]]
    assert chain[0]["attrs"]["stride"] == 3, [(d["kind"], d["attrs"]) for d in chain]


def test_regression_use_of_an_overlong_path_is_a_spec_error():
    # `use` with a 300-character name: Path.is_file() raises OSError (ENAMETOOLONG) out of loads.
    text = 'use "' + "a" * 300 + '.res"\nnetwork n {\n    input 3x8x8\n    conv 8 k3\n}\n'
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text)
    assert [d.code for d in info.value.diagnostics] == ["E0502"]


def test_regression_ceil_mode_pool_larger_than_the_map():
    # torch.nn.MaxPool2d(3, 2, ceil_mode=True) maps 2x2 to 1x1 (ATen: floor((2 - 3 + 1) / 2) + 1 = 1),
    # but resdsl.shapes.window returns 0 whenever the kernel exceeds the padded input.
    net = resdsl.loads("network n {\n    input 3x2x2\n    maxpool k3 s2 p0 ceil\n    avgpool -> fc 10\n}\n")
    assert net.graph.nodes["maxpool"]["shape"] == (3, 1, 1)
