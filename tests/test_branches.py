"""`branches` (resdsl/branches.py): names, structure, errors, and the compiled module's arithmetic.

The families built with it (Res2Net, SKNet, ResNeSt) are checked against timm in test_family.py;
here each option is checked on small networks, against arithmetic written out in torch.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl import SpecError
from resdsl.cli import main


def codes(text: str) -> list[str]:
    with pytest.raises(SpecError) as e:
        resdsl.loads(text)
    return [d.code for d in e.value.diagnostics]


def net_of(body: str, input_shape: str = "16x8x8", blocks: str = "") -> resdsl.Network:
    return resdsl.loads(f"{blocks}\nnetwork n {{\n    input {input_shape}\n{body}\n}}\n")


def runtime_matches_static(net: resdsl.Network, batch: int = 2) -> tuple[torch.nn.Module, torch.Tensor]:
    model = net.to_torch().eval()
    assert sum(p.numel() for p in model.parameters()) == net.params
    x = torch.randn((batch,) + net.input_shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    assert counter.get_total_flops() == 2 * net.macs * batch
    assert tuple(out.shape[1:]) == net.output_shape
    return model, x


# ---- names and structure ------------------------------------------------------------------------

RES2 = """
block res2(width, scale = 4, first = false) {
    residual {
        conv width * scale k1 -> bn -> relu
        branches(scale, split = true, merge = concat,
                 carry = branch > 0 and branch < scale - 1 and not first) {
            if branch < scale - 1 {
                convs[branch]: conv width k3 -> bns[branch]: bn -> relu
            } else if first {
                pool: avgpool k3 s1 p1
            }
        }
        conv width * scale k1 -> bn
    }
    relu
}
"""


def test_indexed_labels_name_module_lists_and_carry_feeds_the_next_branch():
    net = net_of("    b: res2(4, first = repetition == 0) x2", blocks=RES2)
    ops = net.ops
    assert [n for n in ops.nodes if n.startswith("b.1.convs")] == ["b.1.convs.0", "b.1.convs.1", "b.1.convs.2"]
    assert ops.nodes["b.0.chunk"].kind == "chunk" and ops.nodes["b.0.chunk4"].attrs == {"parts": 4, "index": 3}
    # not first: branch 1 reads its share plus branch 0's output, through a `sum`
    carry = ops.inputs("b.1.convs.1").main
    assert ops.nodes[carry].kind == "add" and carry.rpartition(".")[2].startswith("sum")  # `sum` is the op `add`
    assert set(ops.inputs(carry).branches) == {"b.1.chunk2", "b.1.relu2"}
    # first (b.0): no carry, the last share is pooled; in b.1 it passes straight to the concat
    assert ops.nodes[ops.inputs("b.0.convs.1").main].kind == "chunk"
    assert "b.0.pool" in ops.nodes and "b.1.pool" not in ops.nodes
    assert ops.inputs("b.1.concat").branches == ("b.1.relu2", "b.1.relu3", "b.1.relu4", "b.1.chunk4")
    assert net.ops.nodes["b.1.concat"].shape == (16, 8, 8)


def test_the_per_repetition_argument_differs_per_block():
    net = net_of("    b: res2(4, first = repetition == 0) x3", blocks=RES2)
    assert [f"b.{i}.pool" in net.ops.nodes for i in range(3)] == [True, False, False]
    assert not any(f"b.{i}.pool" in net_of("    b: res2(4) x3", blocks=RES2).ops.nodes for i in range(3))
    widths = resdsl.loads(
        'use "blocks.res"\nnetwork n(widths = [8, 12, 16]) {\n input 8x8x8\n layer1: basic(widths[repetition]) x3\n}'
    )
    assert [widths.ops.nodes[f"layer1.{i}.conv2"].shape[0] for i in range(3)] == [8, 12, 16]


def test_indexed_groups_and_the_select_merge():
    net = net_of("""
    branches(2, merge = select) {
        paths[branch] { conv: conv 16 k3 d=(branch + 1) -> bn: bn -> relu }
    } attend {
        avgpool -> attn { fc: conv 8 k1 -> relu -> out: conv 32 k1 }
    }""")
    ops = net.ops
    assert ops.nodes["paths.1.conv"].attrs["dilation"] == 2
    inputs = ops.inputs("select")
    assert inputs.branches == (
        "paths.0.0",
        "paths.1.0",
    )  # the ReLUs, numbered in their groups and inputs.weights == "attn.out"
    assert ops.nodes[ops.inputs("avgpool").main].kind == "add"  # the branches' sum (`merge = sum` is `add`)


def test_a_label_names_the_merge_and_a_name_cannot_be_both_a_container_and_a_module():
    net = net_of("    mix: branches(2, merge = product) { conv 16 k3 }")
    assert net.ops.nodes["mix"].kind == "product"
    assert codes("network n {\n input 16x8x8\n convs: conv 16 k3\n convs[0]: conv 16 k3\n}") == ["E0206"]
    assert codes("network n {\n input 16x8x8\n convs[0]: conv 16 k3\n convs: conv 16 k3\n}") == ["E0206"]
    assert codes("network n {\n input 16x8x8\n forward[0]: conv 16 k3\n}") == ["E0210"]


# ---- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, code",
    [
        ("branches(3, split = true) { conv 8 k3 }", "E0408"),  # 16 channels in 3 shares
        ("branches(2, merge = sum) { conv 8 * (branch + 1) k3 }", "E0409"),  # 8 + 16 channels
        ("branches(2, merge = concat) { conv 8 k3 s=(branch + 1) }", "E0404"),  # 8x8 and 4x4
        ("branches(2, merge = select) { conv 8 k3 } attend { avgpool -> conv 8 k1 }", "E0409"),  # 8 logits, not 16
        ("branches(2, merge = select, groups = 3) { conv 8 k3 } attend { avgpool -> conv 16 k1 }", "E0409"),
        ("branches(2, merge = select) { conv 8 k3 }", "E0208"),  # no attend
        ("branches(2) { conv 8 k3 } attend { conv 16 k1 }", "E0208"),  # attend without select
        ("branches(2, carry = true) { conv 8 k3 }", "E0208"),  # carry without split
        ("branches(2, split = true, carry = true) { conv 8 k3 }", "E0208"),  # branch 0 has nothing to carry
        ("branches(2) { }", "E0208"),  # both branches are the input
        ("branches(2, merge = select) { conv 8 k3 } attend { }", "E0208"),  # attend without ops
        ("branches(0) { conv 8 k3 }", "E0303"),
        ("branches(2, merge = add) { conv 8 k3 }", "E0302"),
        ("branches(2, stack = true) { conv 8 k3 }", "E0203"),
        ("branches(2, groups = 2) { conv 8 k3 }", "E0203"),  # groups: select only
        ("branches(split = true) { conv 8 k3 }", "E0204"),
        ("branches(2, split = true, split = false) { conv 8 k3 }", "E0205"),
        ("convs[-1]: conv 8 k3", "E0303"),
        ("branches(2) { conv 8 k3 -> relu } -> conv 8 k3 d=branch", "E0201"),  # `branch` is the body's only
    ],
)
def test_mistakes_are_located_errors(body, code):
    assert codes(f"network n {{\n    input 16x8x8\n    {body}\n}}") == [code]


def test_check_reports_a_branch_error_at_its_line_with_exit_1(tmp_path, capsys):
    spec = tmp_path / "bad.res"
    spec.write_text("network n {\n    input 30x8x8\n    branches(4, split = true) { conv 8 k3 }\n}\n")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "error[E0408]" in err and "bad.res:3:5" in err and "Traceback" not in err


# ---- the compiled module -------------------------------------------------------------------------


def test_sum_product_and_concat_compute_what_they_say():
    for merge, combine in [
        ("sum", lambda a, b: a + b),
        ("product", lambda a, b: a * b),
        ("concat", lambda a, b: torch.cat([a, b], 1)),
        ("max", torch.maximum),
    ]:
        net = net_of(f"    branches(2, merge = {merge}) {{ convs[branch]: conv 16 k3 -> relu }}")
        model, x = runtime_matches_static(net)
        with torch.no_grad():
            a, b = torch.relu(model.convs[0](x)), torch.relu(model.convs[1](x))
            assert torch.allclose(model(x), combine(a, b), atol=1e-6), merge


@pytest.mark.parametrize("count, groups", [(1, 1), (2, 1), (2, 2), (4, 2), (3, 4)])
def test_select_is_timms_radix_softmax(count, groups):
    """The select merge against ResNeSt's arithmetic written out: logits [groups][n][C/groups],
    softmax over the n splits (sigmoid for one), weighted sum."""
    width = 8 * groups
    net = net_of(
        f"""
    conv {width * count} k3 g={groups * count} -> relu
    branches({count}, split = true, merge = select, groups = {groups}) {{ }} attend {{
        avgpool -> fc1: conv 32 k1 g={groups} bias -> relu -> fc2: conv {width * count} k1 g={groups} bias
    }}""",
        input_shape=f"{4 * groups * count}x6x6",
    )
    model, x = runtime_matches_static(net)
    with torch.no_grad():
        h = torch.relu(model.conv1(x))
        batch = h.shape[0]
        logits = model.fc2(torch.relu(model.fc1(h.reshape(batch, count, width, 6, 6).sum(1).mean((2, 3), True))))
        if count > 1:
            weights = logits.view(batch, groups, count, -1).transpose(1, 2).softmax(1).reshape(batch, -1)
        else:
            weights = torch.sigmoid(logits).reshape(batch, -1)
        expected = (h.reshape(batch, count, width, 6, 6) * weights.view(batch, count, width, 1, 1)).sum(1)
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_select_on_vectors_and_per_position_logits():
    net = net_of(
        """
    branches(2, merge = select) { fc 6 } attend { fc 12 }""",
        input_shape="10",
    )
    runtime_matches_static(net)
    net = net_of("""
    branches(3, merge = select) { conv 4 k1 d=(branch + 1) } attend { conv 12 k1 }""")
    runtime_matches_static(net)


def test_the_res2net_block_trains_exports_and_its_containers_run_alone():
    net = net_of("    b: res2(4, first = repetition == 0) x2", blocks=RES2)
    model, x = runtime_matches_static(net)
    with torch.no_grad():
        assert torch.allclose(model.b[1](model.b[0](x)), model(x))
    model.train()
    model(x).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    exported = torch.export.export(model.eval(), (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x))
    with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; `compile --emit torchscript` too
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x))


def test_python_eject_writes_branches_as_block_classes_that_load_timms_weights(tmp_path):
    """A `branches` construct is a block class with a loop over its branches; the file needs torch
    alone, and computes what timm's skresnet18 computes with timm's weights."""
    import subprocess
    import sys

    import timm
    from test_family import randomise_norms

    out = tmp_path / "sk.py"
    assert main(["compile", "skresnet18", "--emit", "python", "-o", str(out), "--input", "3x64x64"]) == 0
    source = out.read_text()
    assert "class SelectiveKernel(nn.Module):" in source and "Flat(nn.Module)" not in source
    assert "import resdsl" not in source and "from resdsl" not in source
    reference = timm.create_model("skresnet18").eval()
    randomise_norms(reference)
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    torch.save(torch.randn(2, 3, 64, 64), tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(reference(torch.load(tmp_path / "x.pt")), tmp_path / "y.pt")
    check = (
        f"import sys, torch; sys.path.insert(0, {str(tmp_path)!r}); import sk\n"
        f"m = sk.build().eval(); m.load_state_dict(torch.load({str(tmp_path / 'w.pt')!r}), strict=True)\n"
        f"y = m(torch.load({str(tmp_path / 'x.pt')!r})); e = torch.load({str(tmp_path / 'y.pt')!r})\n"
        "print(float((y - e).abs().max() / e.abs().max()))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout) <= 1e-5
