"""Architecture diagrams from the spec, with Graphviz. The only module that imports graphviz.

Every level is the op graph with some nodes collapsed into one:

    op       every op, stages and blocks as nested boxes
    block    each stage's first block in full, its other repetitions folded (×5)
    stage    one box per part: stem, each stage, head
    network  stem, all stages in one box, head: one short column

The main path runs top to bottom; each shortcut is a side edge that rejoins
at its merge, styled by kind and named in the legend; auto-inserted
projections are filled orange. Output is deterministic: the same spec gives
byte-identical DOT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import graphviz

from .files import write_atomically
from .library import UsageError
from .network import Network

LEVELS = ("network", "stage", "block", "op")
FORMATS = ("svg", "png", "pdf", "dot")
FONT = "Helvetica"

# Shortcut kinds: (edge style, colour, legend text)
SHORTCUTS = {
    "identity": ("dashed", "#555555", "identity shortcut"),
    "projection": ("bold", "#d9730d", "1×1 projection (conv + BN)"),
    "zeropad": ("dotted", "#1f6fb2", "zero-padding (option A)"),
    "avgproj": ("bold", "#7b3fa0", "avg-pool + 1×1 projection (ResNet-D)"),
    "concat": ("dashed", "#2e8b57", "concatenation (dense)"),
}
FILL = {"conv": "#dbe9f6", "bn": "#eeeeee", "relu": "#fdf1d6", "gelu": "#fdf1d6", "silu": "#fdf1d6",
        "sigmoid": "#fdf1d6", "maxpool": "#e3f1df", "avgpool": "#e3f1df", "fc": "#f6dde3", "se": "#efe3f6",
        "dropout": "#f4f4f4", "flatten": "#f4f4f4", "identity": "#f4f4f4", "zeropad": "#fde0c5",
        "input": "#ffffff", "part": "#e8eef6", "folded": "#f2f2f2"}
INSERTED_FILL = "#fde0c5"


def dims(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def essentials(kind: str, attrs: dict, shape) -> str:
    """A short description of one op: `conv 3×3, 64, /2`."""
    if kind == "conv":
        k = attrs["kernel"]
        extra = "".join([f", /{attrs['stride']}" if attrs["stride"] > 1 else "",
                         f", groups {attrs['groups']}" if attrs["groups"] > 1 else "",
                         f", dilation {attrs['dilation']}" if attrs["dilation"] > 1 else ""])
        return f"conv {k}×{k}, {attrs['out']}{extra}"
    if kind == "bn":
        return "batch norm" + (" (zero-init)" if attrs.get("zero_init") else "")
    if kind in ("maxpool", "avgpool"):
        if attrs.get("kernel") is None:
            return "global avg pool"
        k = attrs["kernel"]
        return f"{kind[:3]} pool {k}×{k}" + (f", /{attrs['stride']}" if attrs["stride"] > 1 else "")
    if kind == "fc":
        return f"fc, {attrs['out']}"
    if kind == "se":
        return "squeeze-excite" + (f", /{attrs['ratio']}" if attrs.get("hidden") is None else f", {attrs['hidden']}")
    if kind == "zeropad":
        return f"zero-pad, /{attrs['stride']}, +{attrs['channels']} ch"
    if kind == "dropout":
        return f"dropout {attrs['p']:g}"
    if kind == "input":
        return f"input {dims(shape)}"
    return {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "sigmoid": "sigmoid", "flatten": "flatten",
            "identity": "identity"}.get(kind, kind)


@dataclass
class _Box:
    """One drawn node: an op, or several ops collapsed into one."""

    id: str
    members: list[str] = field(default_factory=list)
    title: str = ""
    clusters: tuple[tuple[str, str], ...] = ()  # (cluster id, label) outermost first


def _collapse(net: Network, level: str) -> dict[str, str]:
    """Op node -> the id of the box that shows it, at `level`."""
    ops = net.ops
    if level == "op":
        return {n: n for n in ops.nodes}
    if level in ("stage", "network"):
        stages = {s.name for s in net.stages}
        out = {}
        for n, d in ops.nodes.items():
            part = d["part"]
            out[n] = "input" if n == "input" else ("stages" if level == "network" and part in stages else part)
        return out
    # block level: the first block of each stage in full, the rest of the stage folded into one box
    out = {}
    for n, d in ops.nodes.items():
        stage, block = d["stage"], d["block"]
        first = f"{stage}.0" if stage else None
        if stage and block and block != first and not block.startswith(first + "."):
            out[n] = f"{stage}.1+"
        else:
            out[n] = n
    return out


def build(net: Network, level: str = "op") -> graphviz.Digraph:
    if level not in LEVELS:
        raise UsageError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    ops = net.ops
    where = _collapse(net, level)
    boxes: dict[str, _Box] = {}
    for n in ops.nodes:
        boxes.setdefault(where[n], _Box(where[n])).members.append(n)
    stage_of = {s.name: s for s in net.stages}

    dot = graphviz.Digraph(net.name, graph_attr={
        "rankdir": "TB", "fontname": FONT, "fontsize": "16", "labelloc": "t", "labeljust": "c",
        "label": f"{net.name}: {dims(net.input_shape)} → {dims(net.output_shape)}, {net.params:,} params, "
                 f"{net.macs:,} MACs ({count(net.macs)})\n ",
        "nodesep": "0.35", "ranksep": "0.35", "newrank": "true", "splines": "spline", "compound": "true"},
        node_attr={"fontname": FONT, "fontsize": "11", "shape": "box", "style": "rounded,filled", "margin": "0.12,0.05",
                   "penwidth": "1"},
        edge_attr={"fontname": FONT, "fontsize": "9", "arrowsize": "0.6", "color": "#333333"})

    # nodes, grouped into nested clusters (stages and blocks) at the op and block levels
    tree: dict = {}
    for box in boxes.values():
        attrs = _box_attrs(net, box, level, stage_of)
        path = _cluster_path(net, box, level)
        node = tree
        for cluster in path:
            node = node.setdefault(cluster, {})
        node.setdefault(None, []).append((box.id, attrs))
    _emit_tree(dot, tree, net)

    # edges, in program order; one per pair of boxes
    seen: set[tuple[str, str]] = set()
    kinds_used: set[str] = set()
    for u, v, edge in ops.edges():
        a, b = where[u], where[v]
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        style = _edge_style(net, u, v, edge)
        attrs = {"label": " " + dims(edge.get("shape")) + " "}
        if style == "main":
            attrs.update(weight="10")
        else:
            kinds_used.add(style)
            line, colour, _ = SHORTCUTS[style]
            attrs.update(style=line, color=colour, fontcolor=colour, weight="0")
        dot.edge(a, b, **attrs)
    inserted_shown = any(b.members == [b.id] and ops.nodes[b.id]["inserted"] for b in boxes.values())
    if kinds_used or inserted_shown:
        _legend(dot, sorted(kinds_used), inserted_shown)
    return dot


def _cluster_path(net: Network, box: _Box, level: str) -> tuple[tuple[str, str], ...]:
    if level not in ("op", "block") or box.id == "input":
        return ()
    data = net.ops.nodes[box.members[0]]
    stage, block = data["stage"], data["block"]
    path = []
    if stage:
        s = next(s for s in net.stages if s.name == stage)
        stride = f", /{s.stride}" if s.stride and s.stride > 1 else ""
        path.append((f"cluster_{stage}", f"{stage}: {s.block} ×{s.repeats}{stride}"))
    if block and not box.id.endswith(".1+"):
        path.append((f"cluster_{block}", f"{block} ({data['block_type']})"))
    return tuple(path)


def _emit_tree(dot: graphviz.Digraph, tree: dict, net: Network) -> None:
    for box_id, attrs in tree.get(None, []):
        dot.node(box_id, **attrs)
    for key, subtree in tree.items():
        if key is None:
            continue
        cluster_id, label = key
        depth = cluster_id.count(".")
        with dot.subgraph(name=cluster_id) as sub:
            sub.attr(label=label, style="rounded,filled", color="#9aa5b1", fillcolor="#f7f9fb" if depth else "#eef2f6",
                     fontname=FONT, fontsize="12", labeljust="l", margin="10")
            _emit_tree(sub, subtree, net)


def _box_attrs(net: Network, box: _Box, level: str, stage_of: dict) -> dict[str, str]:
    ops = net.ops
    members = [ops.nodes[m] for m in box.members]
    last = members[-1]
    params = sum(d["params"] for d in members)
    macs = sum(d["macs"] for d in members)
    if len(members) == 1 and box.id == box.members[0]:
        d = members[0]
        kind = d["kind"]
        if kind in ("add", "concat"):
            return {"label": "+" if kind == "add" else "concat", "shape": "circle" if kind == "add" else "box",
                    "style": "filled", "fillcolor": "#ffffff", "width": "0.3", "fixedsize": "false",
                    "fontsize": "12" if kind == "add" else "10"}
        lines = [essentials(kind, d.get("attrs", {}), d.get("shape"))]
        if kind != "input":  # the name inside its block (`conv1`, `downsample.0`), or the full name
            block = d.get("block")
            lines.insert(0, box.id[len(block) + 1:] if block and box.id.startswith(block + ".") else box.id)
        if params:
            lines.append(f"{params:,} params")
        attrs = {"label": "\n".join(lines), "fillcolor": FILL.get(kind, "#f4f4f4")}
        if d["inserted"]:
            attrs.update(fillcolor=INSERTED_FILL, color="#d9730d", penwidth="1.5",
                         label=attrs["label"] + "\n(inserted)")
        return attrs
    # a collapsed box: a part, a stage or a folded run of blocks
    if box.id.endswith(".1+"):
        stage = stage_of[box.id[:-3]]
        title = f"{stage.name}.1 … {stage.name}.{stage.repeats - 1}" if stage.repeats > 2 else f"{stage.name}.1"
        head = f"{stage.block} ×{stage.repeats - 1}"
        fill = FILL["folded"]
    elif box.id in stage_of:
        stage = stage_of[box.id]
        title = box.id
        head = f"{stage.block} ×{stage.repeats}" + (f", /{stage.stride}" if stage.stride and stage.stride > 1 else "")
        fill = FILL["part"]
    elif box.id == "stages":
        title = "stages"
        head = "\n".join(f"{s.name}: {s.block} ×{s.repeats}" for s in net.stages)
        fill = FILL["part"]
    else:
        title, head, fill = box.id, ", ".join(dict.fromkeys(essentials(d["kind"], d.get("attrs", {}), d.get("shape"))
                                                            for d in members if d["kind"] not in ("add", "concat"))
                                              ), FILL["part"]
        if len(head) > 60:
            head = head[:57] + "…"
    lines = [title, head, f"→ {dims(last.get('shape'))}", f"{params:,} params, {count(macs)} MACs"]
    projections = {d["merge"] for d in members if d["inserted"]}
    if projections:
        kinds = sorted({ops.nodes[m]["shortcut"] for m in projections})
        lines.append(f"{len(projections)} shortcut{'s' if len(projections) > 1 else ''} inserted "
                     f"({', '.join(kinds)}), {sum(d['params'] for d in members if d['inserted']):,} params")
    return {"label": "\n".join(lines), "fillcolor": fill}


def _edge_style(net: Network, u: str, v: str, edge: dict) -> str:
    """"main", or the kind of shortcut the edge belongs to."""
    ops = net.ops
    target = ops.nodes[v]
    if target["kind"] == "concat" and edge["role"] == "shortcut":
        return "concat"
    if target["kind"] == "add" and edge["role"] == "shortcut":
        return target["shortcut"]
    if target["inserted"]:
        return ops.nodes[target["merge"]]["shortcut"]
    return "main"


def _legend(dot: graphviz.Digraph, kinds: list[str], inserted: bool) -> None:
    with dot.subgraph(name="cluster_legend") as legend:
        legend.attr(label="legend", style="rounded", color="#9aa5b1", fontname=FONT, fontsize="11", labeljust="l")
        previous = None
        for kind in kinds:
            line, colour, text = SHORTCUTS[kind]
            a, b = f"legend_{kind}_a", f"legend_{kind}_b"
            legend.node(a, "", shape="point", width="0.05")
            legend.node(b, text, shape="plaintext", style="", fontsize="10", fontcolor=colour)
            legend.edge(a, b, style=line, color=colour, arrowsize="0.5")
            if previous:
                legend.edge(previous, a, style="invis")
            previous = b
        if inserted:
            legend.node("legend_inserted", "inserted by the shortcut policy", fillcolor=INSERTED_FILL,
                        color="#d9730d", fontsize="10")
            if previous:
                legend.edge(previous, "legend_inserted", style="invis")


def render(net: Network, out: str | os.PathLike, level: str = "op") -> str:
    """Write the diagram to `out`; the format is the suffix (.svg .png .pdf .dot). Returns the format."""
    fmt = os.path.splitext(os.fspath(out))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot tell the format of {out}: use .svg, .png, .pdf or .dot")
    dot = build(net, level)
    if fmt == "dot":
        data = dot.source.encode("utf-8")
    else:
        data = pipe(dot, fmt)
    write_atomically(out, lambda f: f.write(data))
    return fmt


def pipe(dot: graphviz.Digraph, fmt: str) -> bytes:
    try:
        return dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UsageError(f"drawing .{fmt} needs Graphviz's `dot` program, which is not installed: "
                         "apt-get install graphviz (Debian/Ubuntu) or brew install graphviz; "
                         "or write .dot, which needs no Graphviz") from None
