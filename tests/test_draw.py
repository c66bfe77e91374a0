"""Diagrams: DOT structure per level, shortcut styles, folded repeats, formats, determinism, no `dot`."""

import os
import re
import subprocess
import sys

import pytest

import resdsl
from resdsl import draw
from resdsl.cli import main

SPECS = [n for n in resdsl.library.bundled_names() if n != "blocks"]


def nodes(source: str) -> set[str]:
    return set(re.findall(r'^\s*"?([\w.+]+)"? \[', source, re.M)) - {"graph", "node", "edge"}


def edges(source: str) -> list[tuple[str, str, str]]:
    return [(a, b, rest) for a, b, rest in re.findall(r'^\s*"?([\w.+]+)"? -> "?([\w.+]+)"? ?(\[.*\])?$', source, re.M)]


def test_op_level_shows_every_op_in_stage_and_block_clusters():
    net = resdsl.load("resnet18")
    source = draw.build(net, "op").source
    shown = {n for n in nodes(source) if not n.startswith("legend_")}
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
    assert {n for n in nodes(stage) if not n.startswith("legend")} == {"input", "stem", "layer1", "layer2", "layer3",
                                                                       "layer4", "head"}
    assert [(a, b) for a, b, _ in edges(stage)] == [("input", "stem"), ("stem", "layer1"), ("layer1", "layer2"),
                                                    ("layer2", "layer3"), ("layer3", "layer4"), ("layer4", "head")]
    assert "basic ×6, /2" in stage and "6,822,400 params" in stage and "→ 256×14×14" in stage
    assert "21,797,672 params" in stage  # the title
    network = draw.build(net, "network").source
    assert {n for n in nodes(network) if not n.startswith("legend")} == {"input", "stem", "stages", "head"}
    assert "layer3: basic ×6" in network


@pytest.mark.parametrize("name,kind,style", [
    ("resnet20", "zeropad", "dotted"), ("resnet50", "projection", "bold"), ("resnet50d", "avgproj", "bold"),
    ("resnet18", "identity", "dashed"), ("densenet_cifar", "concat", "dashed"),
])
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
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_draws_at_every_level(name):
    net = resdsl.load(name)
    for level in draw.LEVELS:
        assert draw.build(net, level).source.startswith("digraph")


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<svg"), (".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                          (".dot", b"digraph")])
def test_formats(tmp_path, suffix, magic):
    out = tmp_path / f"r20{suffix}"
    assert main(["draw", "resnet20", "--level", "stage", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert magic in data[:300]


def test_without_dot_only_dot_output_works(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no `dot` on PATH
    run = lambda out: subprocess.run([sys.executable, "-m", "resdsl", "draw", "resnet20", "-o", str(out)],  # noqa
                                     capture_output=True, text=True, env=env, cwd=os.getcwd(), timeout=60)
    svg = run(tmp_path / "x.svg")
    assert svg.returncode == 2 and "apt-get install graphviz" in svg.stderr and "Traceback" not in svg.stderr
    assert not (tmp_path / "x.svg").exists()
    dot = run(tmp_path / "x.dot")
    assert dot.returncode == 0 and (tmp_path / "x.dot").read_text().startswith("digraph")


def test_draw_never_imports_torch_and_jupyter_gets_svg():
    code = ("import sys; from resdsl.cli import main; import resdsl;"
            "main(['draw', 'resnet18', '--level', 'stage', '-o', sys.argv[1]]);"
            "bundle = resdsl.load('resnet18')._repr_mimebundle_();"
            "print('torch' in sys.modules, bundle['image/svg+xml'].lstrip()[:5])")
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, "-c", code, os.path.join(folder, "r.svg")], capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["False", "<?xml"]


def test_unknown_format_is_a_usage_error(tmp_path, capsys):
    assert main(["draw", "resnet20", "-o", str(tmp_path / "x.jpg")]) == 2
    assert ".svg, .png, .pdf or .dot" in capsys.readouterr().err
