"""Diagrams: DOT structure per level, shortcut styles, folded repeats, formats, determinism, no `dot`;
and the layout itself, on Graphviz's coordinates: no edge through a box's title, shortcuts inside their block."""

import json
import os
import re
import subprocess
import sys

import pytest
from family import LEFT_TO_TEST_FAMILY, SEVERAL_OUTPUTS

import resdsl
from resdsl import draw
from resdsl.cli import main
from resdsl.units import format_count

# timm's family: its representatives (family.py) stand for the rest, whose constructs they share
SPECS = [
    n
    for n in resdsl.library.bundled_names()
    if n != "blocks" and n not in LEFT_TO_TEST_FAMILY and n not in SEVERAL_OUTPUTS  # test_outputs.py draws those
]


def nodes(source: str) -> set[str]:
    return set(re.findall(r'^\s*"?([\w.+]+)"? \[', source, re.M)) - {"graph", "node", "edge"}


def edges(source: str) -> list[tuple[str, str, str]]:
    return [(a, b, rest) for a, b, rest in re.findall(r'^\s*"?([\w.+]+)"? -> "?([\w.+]+)"? ?(\[.*\])?$', source, re.M)]


def test_op_level_shows_every_op_in_stage_and_block_clusters():
    net = resdsl.load("resnet18")
    source = draw.build(net, "op").source
    shown = {n for n in nodes(source) if n != "legend"}
    assert shown == set(net.ops.nodes)
    for cluster in ("cluster_layer1", "cluster_layer1.0", "cluster_layer4.1"):
        assert f"subgraph {cluster} " in source or f'subgraph "{cluster}" ' in source
    assert 'label=" 64×56×56 "' in source  # shapes on edges


def test_block_level_expands_the_first_block_and_folds_the_rest():
    net = resdsl.load("resnet50")
    source = draw.build(net, "block").source
    shown = nodes(source)
    assert "layer3.0.conv2" in shown and "layer3.1.conv2" not in shown
    assert "layer3.1+" in shown
    assert "bottleneck ×5" in source  # layer3 has 6: one expanded, five folded
    assert "layer3.1 … layer3.5" in source
    assert ("layer3.0.relu3", "layer3.1+") in [(a, b) for a, b, _ in edges(source)]


def test_stage_and_network_levels():
    net = resdsl.load("resnet34")
    stage = draw.build(net, "stage").source
    assert {n for n in nodes(stage) if not n.startswith("legend")} == {
        "input",
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "head",
    }
    assert [(a, b) for a, b, _ in edges(stage)] == [
        ("input", "stem"),
        ("stem", "layer1"),
        ("layer1", "layer2"),
        ("layer2", "layer3"),
        ("layer3", "layer4"),
        ("layer4", "head"),
    ]
    assert "basic ×6, /2" in stage and "6,822,400 params" in stage and "→ 256×14×14" in stage
    assert "21,797,672 params" in stage  # the title
    network = draw.build(net, "network").source
    assert {n for n in nodes(network) if not n.startswith("legend")} == {"input", "stem", "stages", "head"}
    assert "layer3: basic ×6" in network


@pytest.mark.parametrize(
    "name,kind,style",
    [
        ("resnet20", "zeropad", "dotted"),
        ("resnet50", "projection", "bold"),
        ("resnet50d", "avgproj", "bold"),
        ("resnet18", "identity", "dashed"),
        ("densenet_cifar", "concat", "dashed"),
    ],
)
def test_shortcut_kinds_have_their_own_style_and_a_legend_entry(name, kind, style):
    source = draw.build(resdsl.load(name), "block").source
    colour = draw.SHORTCUTS[kind][1]
    assert re.search(rf'color="{colour}".*style={style}|style={style}.*color="{colour}"', source)
    assert draw.SHORTCUTS[kind][2] in source  # the legend names it


def test_inserted_projections_are_marked():
    source = draw.build(resdsl.load("resnet50"), "op").source
    assert source.count("(inserted)") == 8  # conv + bn, in each of the four stages
    assert "inserted by the shortcut policy" in source


def test_dot_is_deterministic_across_processes():
    code = "import resdsl; from resdsl import draw; print(draw.build(resdsl.load('resnet50d'), 'op').source)"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1


@pytest.mark.parametrize(
    "suffix,magic", [(".svg", b"<svg"), (".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")]
)
def test_formats(tmp_path, suffix, magic):
    out = tmp_path / f"r20{suffix}"
    assert main(["draw", "resnet20", "--level", "stage", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert magic in data[:300]


def test_without_dot_only_dot_output_works(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no `dot` on PATH

    def run(out):
        return subprocess.run(
            [sys.executable, "-m", "resdsl", "draw", "resnet20", "-o", str(out)],
            capture_output=True,
            text=True,
            env=env,
            cwd=os.getcwd(),
            timeout=60,
        )

    svg = run(tmp_path / "x.svg")
    assert svg.returncode == 2 and "apt-get install graphviz" in svg.stderr and "Traceback" not in svg.stderr
    assert not (tmp_path / "x.svg").exists()
    dot = run(tmp_path / "x.dot")
    text = (tmp_path / "x.dot").read_text()
    assert dot.returncode == 0 and text.startswith("digraph") and text.rstrip().endswith("}")
    assert "layer3" in text and " -> " in text  # the network itself, not an empty graph


def test_draw_never_imports_torch_and_jupyter_gets_svg():
    code = (
        "import sys; from resdsl.cli import main; import resdsl;"
        "main(['draw', 'resnet18', '--level', 'stage', '-o', sys.argv[1]]);"
        "bundle = resdsl.load('resnet18')._repr_mimebundle_();"
        "print('torch' in sys.modules, bundle['image/svg+xml'].lstrip()[:5])"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [sys.executable, "-c", code, os.path.join(folder, "r.svg")], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["False", "<?xml"]


def test_unknown_format_is_a_usage_error(tmp_path, capsys):
    assert main(["draw", "resnet20", "-o", str(tmp_path / "x.jpg")]) == 2
    assert ".svg, .png, .pdf or .dot" in capsys.readouterr().err


# --- what the drawing says: parsed from the DOT statements -------------------------------------------

_ID = r'"(?:[^"\\]|\\.)*"|[^\s\[\]";{}=:]+'


def _unquote(name: str) -> str:
    return name[1:-1].replace('\\"', '"') if name.startswith('"') else name


def _attrs(text: str) -> dict[str, str]:
    return {k: _unquote(v) for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|<.*>|[^\s"<\]]+)', text or "", re.S)}


def statements(dot) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """Nodes and edges of a graphviz.Digraph, one body item per statement (labels may span lines)."""
    nodes, links = {}, []
    for item in dot.body:
        edge = re.fullmatch(rf"\s*({_ID})(?::\w+)? -> ({_ID})(?::\w+)?(?: \[(.*)\])?\s*", item, re.S)
        node = re.fullmatch(rf"\s*({_ID})(?: \[(.*)\])?\s*", item, re.S)
        if edge:
            links.append((_unquote(edge[1]), _unquote(edge[2]), _attrs(edge[3])))
        elif node and node[1] not in ("graph", "node", "edge"):
            nodes[_unquote(node[1])] = _attrs(node[2])
    return nodes, links


HELPER = re.compile(r"#|^legend")  # titles, entry points and forks (`layer1.0#in`), the legend


def expected_boxes(net, level: str) -> dict[str, str]:
    """Op -> the box that must show it, worked out from the spec's own fields."""
    stages = {s.name for s in net.stages}
    out = {}
    for n, d in net.ops.nodes.items():
        if level == "op":
            out[n] = n
        elif level == "stage":
            out[n] = d.part
        elif level == "network":
            out[n] = "stages" if d.part in stages else d.part
        else:
            first = f"{d.stage}.0"
            folded = d.stage and d.block and not (d.block + ".").startswith(first + ".")
            out[n] = f"{d.stage}.1+" if folded else n
    return out


def drawn_links(nodes, links) -> list[tuple[str, str]]:
    """(box, box) for every visible path between real boxes, following edges through helper nodes."""
    visible = [(a, b) for a, b, attrs in links if attrs.get("style") != "invis"]
    onward: dict[str, list[str]] = {}
    for a, b in visible:
        onward.setdefault(a, []).append(b)
    found = []

    def follow(start: str, at: str) -> None:
        for nxt in onward.get(at, []):
            if HELPER.search(nxt):
                follow(start, nxt)
            else:
                found.append((start, nxt))

    for box in nodes:
        if not HELPER.search(box):
            follow(box, box)
    assert all(onward.get(b) for a, b in visible if HELPER.search(b)), "an edge ends at a helper node"
    return found


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_draws_at_every_level(name):
    net = resdsl.load(name)
    ops = net.ops
    for level in draw.LEVELS:
        dot = draw.build(net, level)
        nodes, links = statements(dot)
        where = expected_boxes(net, level)
        shown = {n: a for n, a in nodes.items() if not HELPER.search(n)}
        assert set(shown) == set(where.values()), level
        # each pair of boxes an op edge joins is drawn once, and nothing else is
        want = list(dict.fromkeys((where[u], where[v]) for u, v, _ in ops.edges() if where[u] != where[v]))
        assert sorted(drawn_links(nodes, links)) == sorted(want), level
        label = dot.graph_attr["label"]
        assert f"{net.params:,} params" in label and f"{net.macs:,} MACs ({format_count(net.macs)})" in label
        assert f"{draw.dims(net.input_shape)} → {draw.dims(net.output_shape)}" in label
        for box, attrs in shown.items():  # every box is labelled with what it is
            first = attrs["label"].split("\n")[0]
            if level in ("op", "block") and box in ops.nodes and box != "input":
                d = ops.nodes[box]
                name = box[len(d.block) + 1 :] if d.block else box  # `conv1` inside layer1.0
                assert first == (draw.essentials(d.kind, d.attrs, d.shape) if d.is_merge else name), box
            elif level == "stage" or (level == "network" and box != "stages"):
                assert first == box or box == "input"
            elif level == "network":
                assert all(f"{s.name}: {s.block} ×{s.repeats}" in attrs["label"] for s in net.stages)
            elif box.endswith(".1+"):  # block level: the folded repeats
                assert first.startswith(box[:-1])
        if level == "op":  # each tensor is labelled with its shape where it leaves its op
            for a, b, attrs in links:
                if not HELPER.search(a) and attrs.get("style") != "invis":
                    assert attrs["label"] == f" {draw.dims(ops.nodes[a].shape)} ", (a, b)
        if level in ("stage", "network"):  # a legend only for the shortcuts of merges outside the stages (a decoder's)
            outside = any(d.is_merge and d.stage is None for d in ops.nodes.values())
            assert [n for n in nodes if HELPER.search(n) and not (outside and n == "legend")] == []


def test_counts_read_as_in_the_rest_of_the_tool():
    net = resdsl.load("resnet20")
    stage = draw.build(net, "stage")
    assert stage.graph_attr["label"].rstrip().endswith(f"MACs ({format_count(net.macs)})")  # (40.6 M)
    layer1 = next(p for p in net.parts if p.name == "layer1")
    assert f"{layer1.params:,} params, {format_count(layer1.macs)} MACs" in stage.source  # 9.44 M
    assert not hasattr(draw, "count")


# --- where Graphviz puts things: dot -Tjson coordinates, in points, y upwards -------------------------


def layout(net, level: str) -> dict:
    source = draw.build(net, level).source
    run = subprocess.run(["dot", "-Tjson"], input=source, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def texts(ops: list[dict]) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Every text an xdot op list draws, with its box (x0, y0, x1, y1)."""
    out, size = [], 14.0
    for op in ops:
        if op["op"] == "F":
            size = op["size"]
        elif op["op"] == "T":
            (x, y), w = op["pt"], op["width"]
            x0 = {"l": x, "c": x - w / 2, "r": x - w}[op["align"]]
            out.append((op["text"], (x0, y - 0.2 * size, x0 + w, y + 0.75 * size)))
    return out


def points(edge: dict, arrows: bool = True) -> list[tuple[float, float]]:
    """Points along an edge as drawn: its Bézier curves sampled finely, then its arrowheads."""
    out = []
    for op in edge.get("_draw_", []) + (edge.get("_hdraw_", []) + edge.get("_tdraw_", []) if arrows else []):
        p = op.get("points", [])
        if op["op"] in "bB":
            for i in range(0, len(p) - 3, 3):
                (x0, y0), (x1, y1), (x2, y2), (x3, y3) = p[i : i + 4]
                for k in range(65):
                    t = k / 64
                    a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3
                    out.append((a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3))
        elif op["op"] in "pPL":
            out.extend(map(tuple, p))
    return out


def inside(point, box, slack: float = 0.0) -> bool:
    x, y = point
    return box[0] - slack <= x <= box[2] + slack and box[1] - slack <= y <= box[3] + slack


class Drawn:
    """A laid-out drawing: nodes by name, clusters by name, visible edges with their points."""

    def __init__(self, net, level: str):
        graph = layout(net, level)
        objects = graph["objects"]
        count = graph.get("_subgraph_cnt", 0)
        self.nodes = {o["_gvid"]: o for o in objects[count:]}
        self.name = {g: o["name"] for g, o in self.nodes.items()}
        self.clusters = {o["name"]: o for o in objects[:count] if o["name"].startswith("cluster")}
        drawn = [e for e in graph.get("edges", []) if "_draw_" in e]  # invisible edges are not drawn
        self.edges = [(self.name[e["tail"]], self.name[e["head"]], points(e)) for e in drawn]
        self.curves = {(self.name[e["tail"]], self.name[e["head"]]): points(e, arrows=False) for e in drawn}
        self.texts = [t for o in objects for t in texts(o.get("_ldraw_", []))]

    def members(self, cluster: str) -> set[str]:
        return {self.name[g] for g in self.clusters[cluster].get("nodes", [])}

    def bb(self, cluster: str) -> tuple[float, float, float, float]:
        return tuple(map(float, self.clusters[cluster]["bb"].split(",")))


LAID_OUT = [
    ("resnet18", "op"),
    ("resnet50", "block"),
    ("resnet20", "block"),
    ("resnet50", "op"),
    ("resnet20", "op"),
    ("plain20", "op"),
    ("densenet_cifar", "block"),
    ("resnet50d", "block"),
    ("preact_resnet18", "op"),
    ("mlp_resnet", "op"),
]


@pytest.mark.parametrize("name,level", LAID_OUT)
def test_no_edge_crosses_a_box_title(name, level):
    net = resdsl.load(name)
    drawn = Drawn(net, level)
    heads = tuple(f"{s.name}: " for s in net.stages) + tuple(f"{d.block} (" for d in net.ops.nodes.values() if d.block)
    titles = [(text, box) for text, box in drawn.texts if text.startswith(heads)]
    assert len(titles) >= len(net.stages), titles  # every stage's box is titled
    for tail, head, line in drawn.edges:
        for text, box in titles:
            shrunk = (box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1)
            assert not any(inside(p, shrunk) for p in line), f"{tail} -> {head} crosses the title {text!r}"


@pytest.mark.parametrize("name,level", LAID_OUT)
def test_shortcuts_stay_inside_their_block_without_snaking(name, level):
    net = resdsl.load(name)
    ops = net.ops
    drawn = Drawn(net, level)
    merges = [n for n in drawn.name.values() if n in ops.nodes and ops.nodes[n].kind in ("add", "concat")]
    assert merges or name == "plain20"
    for merge in merges:
        block = f"cluster_{ops.nodes[merge].block}"
        box = drawn.bb(block)
        side = [(tail, line) for tail, head, line in drawn.edges if head == merge and tail != ops.main_input(merge)]
        assert len(side) == 1, merge
        tail, line = side[0]
        assert all(inside(p, box, slack=1) for p in line), f"the shortcut into {merge} leaves {block}"
        line = drawn.curves[tail, merge]  # without the arrowhead, whose outline doubles back
        ys = [y for _, y in line]
        assert all(b <= a + 0.5 for a, b in zip(ys, ys[1:])), f"the shortcut into {merge} turns back up"
        steps = [b - a for (a, _), (b, _) in zip(line, line[1:]) if abs(b - a) > 0.2]
        turns = sum(1 for a, b in zip(steps, steps[1:]) if (a > 0) != (b > 0))
        assert turns <= 1, f"the shortcut into {merge} snakes ({turns} turns)"
    for block in drawn.clusters:  # and whatever runs between two ops of a block stays in it
        members, box = drawn.members(block), drawn.bb(block)
        for tail, head, line in drawn.edges:
            if tail in members and head in members:
                assert all(inside(p, box, slack=1) for p in line), f"{tail} -> {head} leaves {block}"


LEGEND = {kind: text for kind, (_, _, text) in draw.SHORTCUTS.items()} | {"inserted": "inserted by the shortcut policy"}


@pytest.mark.parametrize(
    "name,level,kinds",
    [
        ("resnet20", "block", {"identity", "zeropad", "inserted"}),
        ("resnet20", "op", {"identity", "zeropad", "inserted"}),
        ("resnet50", "op", {"identity", "projection", "inserted"}),
        ("resnet50", "block", {"projection", "inserted"}),
        ("densenet_cifar", "op", {"concat"}),
        ("resnet50d", "op", {"identity", "avgproj", "inserted"}),
        ("plain20", "op", set()),
        ("resnet50", "stage", set()),
    ],
)
def test_the_legend_lists_what_the_picture_shows_compactly(name, level, kinds):
    net = resdsl.load(name)
    source = draw.build(net, level).source
    assert {k for k, text in LEGEND.items() if text in source} == kinds
    drawn_kinds = {k for k, (_, colour, _) in draw.SHORTCUTS.items() if re.search(rf'-> .*color="{colour}"', source)}
    assert drawn_kinds == kinds - {"inserted"}
    if kinds:  # one row per entry, not a tall stack: about a line of 10-point text each
        ys = sorted(box[1] for text, box in Drawn(net, level).texts if text in LEGEND.values())
        assert len(ys) == len(kinds) and ys[-1] - ys[0] <= 17 * (len(kinds) - 1)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_dpi_scales_a_png(tmp_path):
    sizes = {}
    for dpi in (None, 48, 96, 192):
        out = tmp_path / f"r20-{dpi}.png"
        dpi_args = ["--dpi", str(dpi)] if dpi else []
        assert main(["draw", "resnet20", "--level", "stage", "-o", str(out), *dpi_args]) == 0
        sizes[dpi] = png_size(out)
    assert sizes[None] == sizes[96]  # the default
    for dpi in (48, 192):
        for axis in (0, 1):
            assert abs(sizes[dpi][axis] - sizes[96][axis] * dpi / 96) <= 2, (dpi, sizes)


@pytest.mark.parametrize(
    "value,message",
    [
        ("0", "between 24 and 600, not 0"),
        ("-150", "between 24 and 600"),
        ("100000", "between 24 and 600"),
        ("lots", "invalid int value"),
    ],
)
def test_a_bad_dpi_is_a_usage_error(tmp_path, capsys, value, message):
    out = tmp_path / "x.png"
    assert main(["draw", "resnet20", "--level", "stage", "--dpi", value, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("suffix", [".svg", ".pdf", ".dot"])
def test_dpi_is_only_for_png(tmp_path, capsys, suffix):
    out = tmp_path / f"x{suffix}"
    assert main(["draw", "resnet20", "--level", "stage", "--dpi", "150", "-o", str(out)]) == 2
    assert "--dpi applies to .png only" in capsys.readouterr().err and not out.exists()


def test_every_op_kind_has_a_fill_colour():
    from resdsl.ops import ALL

    assert set(ALL) <= set(draw.FILL)
