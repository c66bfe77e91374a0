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

Two layout rules, which tests/test_draw.py checks on Graphviz's coordinates:
a stage's or block's title is a plain-text node in the box's top row, not a
cluster label, because dot routes edges around nodes but straight through
cluster labels; and every edge into a box passes its entry point, right of
the title in that row. A block's entry point is the fork its shortcut leaves
from (a dot), so the shortcut runs down the block's right side, inside it.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import IO

import graphviz

from .errors import UsageError
from .files import write_atomically
from .graph import Node, Role
from .network import Network
from .ops import ALL
from .outputs import show_outputs, show_stride
from .units import format_count

LEVELS = ("network", "stage", "block", "op")
FORMATS = ("svg", "png", "pdf", "dot")
FONT = "Helvetica"
DPI = 96  # Graphviz's own default for bitmaps
DPI_RANGE = (24, 600)  # past 600, cairo's 32,767-pixel limit shrinks most drawings back anyway

# Shortcut kinds: (edge style, colour, legend text)
SHORTCUTS = {
    "identity": ("dashed", "#555555", "identity shortcut"),
    "projection": ("bold", "#d9730d", "1×1 projection (conv + BN)"),
    "zeropad": ("dotted", "#1f6fb2", "zero-padding (option A)"),
    "avgproj": ("bold", "#7b3fa0", "avg-pool + 1×1 projection (ResNet-D)"),
    "concat": ("dashed", "#2e8b57", "concatenation (dense)"),
    "written": ("bold", "#2e6b8b", "shortcut written by the block"),
    "attention": ("dashed", "#b03060", "attention logits (branches, merge = select)"),
    "upsample": ("bold", "#3f8f3f", "resized up to the main path (shortcut nearest, ...)"),
    "size": ("dotted", "#888888", "the size a resize takes"),
}
# Box colours: each op kind's own (`fill` in its definition, resdsl/ops/), and those of what is no op
FILL = {**{name: op.fill for name, op in ALL.items()}, "input": "#ffffff", "part": "#e8eef6", "folded": "#f2f2f2"}
INSERTED_FILL = "#fde0c5"


def dims(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def essentials(kind: str, attrs: dict, shape) -> str:
    """A short description of one op, as its definition labels it: `conv 3×3, 64, /2`."""
    if kind == "input":
        return f"input {dims(shape)}"
    op = ALL.get(kind)
    return op.label(attrs, len(shape) - 1 if shape else 2) if op is not None else kind


@dataclass
class _Box:
    """One drawn node: an op, or several ops collapsed into one."""

    id: str
    members: list[str] = field(default_factory=list)


@dataclass
class _Cluster:
    """A stage's or a block's box: its title, what it holds, and the point edges enter it by."""

    id: str
    title: str
    depth: int
    boxes: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    entry: str | None = None  # set when everything entering the box is one tensor


def _collapse(net: Network, level: str) -> dict[str, str]:
    """Op node -> the id of the box that shows it, at `level`."""
    ops = net.ops
    if level == "op":
        return {n: n for n in ops.nodes}
    if level in ("stage", "network"):
        stages = {s.name for s in net.stages}
        out = {}
        for n, d in ops.nodes.items():
            part = d.part
            out[n] = "input" if n == "input" else ("stages" if level == "network" and part in stages else part)
        return out
    # block level: the first block of each stage in full, the rest of the stage folded into one box
    out = {}
    for n, d in ops.nodes.items():
        stage, block = d.stage, d.block
        first = f"{stage}.0"
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
    clusters, inside = _clusters(net, boxes, level)

    # edges between boxes, in program order, one per pair of boxes
    links: list[tuple[str, str, str, str]] = []  # (from box, to box, style, shape)
    seen: set[tuple[str, str]] = set()
    for u, v, edge in ops.edges():
        a, b = where[u], where[v]
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            links.append((a, b, _edge_style(net, u, v, edge), dims(edge.get("shape"))))
    segments = _segments(net, links, clusters, inside)
    fanout = Counter(x for x, _ in segments if x.endswith("#in"))

    dot = graphviz.Digraph(
        net.name,
        graph_attr={
            "rankdir": "TB",
            "fontname": FONT,
            "fontsize": "16",
            "labelloc": "t",
            "labeljust": "c",
            "label": f"{net.name}: {dims(net.input_shape)} → {show_outputs(net.outputs, net.output_shape, dims)}, "
            f"{net.params:,} params, "
            f"{net.macs:,} MACs ({format_count(net.macs)})\n ",
            # polyline: a shortcut is a bracket beside its block; curved splines bulge out of the block's box
            "nodesep": "0.35",
            "ranksep": "0.35",
            "newrank": "true",
            "splines": "polyline",
        },
        node_attr={
            "fontname": FONT,
            "fontsize": "11",
            "shape": "box",
            "style": "rounded,filled",
            "margin": "0.12,0.05",
            "penwidth": "1",
        },
        edge_attr={"fontname": FONT, "fontsize": "9", "arrowsize": "0.6", "color": "#333333"},
    )
    attrs_of = {box.id: _box_attrs(net, box, stage_of) for box in boxes.values()}
    # a box only shortcut edges reach (a projection) is on a branch; the rest is the main path
    branch = {y for (_, y), attrs in segments.items() if "style" in attrs}
    branch -= {y for (_, y), attrs in segments.items() if "style" not in attrs}
    for box in boxes.values():
        if box.id not in branch:  # dot keeps edges within a group straight: the main path is one column
            attrs_of[box.id]["group"] = "main"
        if not inside[box.id]:
            dot.node(box.id, **attrs_of[box.id])
    for cluster in clusters.values():
        if cluster.depth == 0:
            _emit_cluster(dot, cluster, clusters, attrs_of, fanout)
    for (x, y), attrs in segments.items():
        dot.edge(x, y, **attrs)
    if net.output_form != "tensor":
        _outputs(dot, net, where)
    kinds = sorted({style for _, _, style, _ in links if style != "main"})  # each link ends in its own style
    inserted_shown = any(b.members == [b.id] and ops.nodes[b.id].inserted for b in boxes.values())
    if kinds or inserted_shown:
        _legend(dot, kinds, inserted_shown)
    return dot


def _clusters(
    net: Network, boxes: dict[str, _Box], level: str
) -> tuple[dict[str, _Cluster], dict[str, tuple[str, ...]]]:
    """The stage and block boxes (op and block levels), and the clusters around each drawn node."""
    clusters: dict[str, _Cluster] = {}
    inside: dict[str, tuple[str, ...]] = {}  # box -> its clusters, outermost first
    for box in boxes.values():
        path = _cluster_path(net, box, level)
        for depth, (cid, title) in enumerate(path):
            if cid not in clusters:
                clusters[cid] = _Cluster(cid, title, depth)
                if depth:
                    clusters[path[depth - 1][0]].children.append(cid)
        if path:
            clusters[path[-1][0]].boxes.append(box.id)
        inside[box.id] = tuple(cid for cid, _ in path)
    return clusters, inside


def _segments(
    net: Network,
    links: list[tuple[str, str, str, str]],
    clusters: dict[str, _Cluster],
    inside: dict[str, tuple[str, ...]],
) -> dict[tuple[str, str], dict[str, str]]:
    """The drawn edges: each link runs from its box through the entry point of every cluster it enters."""
    # A cluster entered by one tensor gets an entry point; one entered by several is entered directly.
    sources: dict[str, set[str]] = {}
    for a, b, _, _ in links:
        for cid in inside[b]:
            if cid not in inside[a]:
                sources.setdefault(cid, set()).add(a)
    for cid, found in sources.items():
        if len(found) == 1:
            clusters[cid].entry = f"{cid}#in"
    segments: dict[tuple[str, str], dict[str, str]] = {}
    for a, b, style, shape in links:
        entries = [clusters[c].entry for c in inside[b] if c not in inside[a]]
        chain = [a, *(entry for entry in entries if entry), b]
        for i, (x, y) in enumerate(zip(chain, chain[1:])):
            if (x, y) in segments:  # the trunk into a block, shared by its main path and its shortcut
                continue
            attrs = {"label": f" {shape} "} if i == 0 else {}  # a tensor is labelled once, where it leaves
            if y != b:  # a trunk: the box's input, on the main path; the arrow is drawn where the chain ends
                attrs.update(weight="10", arrowhead="none")
            elif style == "main":
                attrs["weight"] = "10"
            else:
                line, colour, _ = SHORTCUTS[style]
                attrs.update(style=line, color=colour, fontcolor=colour, weight="0")
                if x.endswith("#in"):  # leave the fork sideways, so that the main path keeps the centre
                    attrs["tailport"] = "e"
                if b in net.ops.nodes and net.ops.nodes[b].is_merge:
                    attrs["headport"] = "e"
            if x.endswith("#in"):  # meet at the entry point's centre, with no gap in the line
                attrs["tailclip"] = "false"
            if y.endswith("#in"):
                attrs["headclip"] = "false"
            segments[x, y] = attrs
    return segments


def _cluster_path(net: Network, box: _Box, level: str) -> tuple[tuple[str, str], ...]:
    """The (name, title) of the stage and block boxes around `box`, outermost first."""
    if level not in ("op", "block") or box.id == "input":
        return ()
    data = net.ops.nodes[box.members[0]]
    record = net.record
    path = []
    part = next((p for p in record.parts if p.name == data.stage and p.stage is not None), None)
    if part is not None:
        path.append((part.name, f"{part.name}: {part.description.replace(' /', ', /')}"))
    if data.block and not box.id.endswith(".1+"):
        path.append((data.block, f"{data.block} ({record.blocks[data.block].instance.called})"))
    return tuple(path)


def _emit_cluster(
    dot: graphviz.Digraph,
    cluster: _Cluster,
    clusters: dict[str, _Cluster],
    attrs_of: dict[str, dict[str, str]],
    fanout: dict[str, int],
) -> None:
    with dot.subgraph(name=f"cluster_{cluster.id}") as sub:
        sub.attr(
            label="",
            style="rounded,filled",
            color="#9aa5b1",
            margin="8",
            fillcolor="#f7f9fb" if cluster.depth else "#eef2f6",
        )
        title = f"{cluster.id}#title"
        with sub.subgraph() as row:  # the top row: the title, and on its right the entry point
            row.attr(rank="same")
            row.node(title, cluster.title, shape="plaintext", style="", fontsize="12", margin="0.02,0.02")
            if cluster.entry:
                # a visible dot where a shortcut forks off; elsewhere the main path runs straight through
                fork = fanout.get(cluster.entry, 0) > 1
                shape = (
                    {"shape": "point", "width": "0.07"}
                    if fork
                    else {"shape": "box", "width": "0.014", "height": "0.06", "fixedsize": "true", "penwidth": "0"}
                )
                row.node(cluster.entry, "", **shape, color="#333333", fillcolor="#333333", style="filled", group="main")
                row.edge(title, cluster.entry, style="invis")
        if not cluster.entry:  # nothing to sit beside: keep the title above the box's first node
            first = f"{cluster.children[0]}#title" if cluster.children else cluster.boxes[0]
            sub.edge(title, first, style="invis")
        for box_id in cluster.boxes:
            sub.node(box_id, **attrs_of[box_id])
        for child in cluster.children:
            _emit_cluster(sub, clusters[child], clusters, attrs_of, fanout)


def _box_attrs(net: Network, box: _Box, stage_of: dict) -> dict[str, str]:
    ops = net.ops
    members = [ops.nodes[m] for m in box.members]
    last = members[-1]
    params = sum(d.params for d in members)
    macs = sum(d.macs for d in members)
    if len(members) == 1 and box.id == box.members[0]:
        d = members[0]
        kind = d.kind
        if d.is_merge:  # its definition's symbol (`+`), in a small circle or a box
            op = ALL[kind]
            circle = op.circle
            return {
                "label": op.label(d.attrs),
                "shape": "circle" if circle else "box",
                "style": "filled",
                "fillcolor": op.fill,
                "width": "0.3",
                "fixedsize": "false",
                "fontsize": "12" if circle else "10",
            }
        lines = [essentials(kind, d.attrs, d.shape)]
        if kind != "input":  # the name inside its block (`conv1`, `downsample.0`), or the full name
            block = d.block
            lines.insert(0, box.id[len(block) + 1 :] if block and box.id.startswith(block + ".") else box.id)
        if params:
            lines.append(f"{params:,} params")
        attrs = {"label": "\n".join(lines), "fillcolor": FILL.get(kind, "#f4f4f4")}
        if d.inserted:
            attrs.update(
                fillcolor=INSERTED_FILL, color="#d9730d", penwidth="1.5", label=attrs["label"] + "\n(inserted)"
            )
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
        title, head, fill = (
            box.id,
            ", ".join(dict.fromkeys(essentials(d.kind, d.attrs, d.shape) for d in members if not d.is_merge)),
            FILL["part"],
        )
        if len(head) > 60:
            head = head[:57] + "…"
    lines = [title, head, f"→ {dims(last.shape)}", f"{params:,} params, {format_count(macs)} MACs"]
    projections = {d.merge for d in members if d.inserted and d.merge is not None}  # (an inserted op has a merge)
    if projections:
        kinds = sorted({_shortcut(ops.nodes[m]) for m in projections})
        lines.append(
            f"{len(projections)} shortcut{'s' if len(projections) > 1 else ''} inserted "
            f"({', '.join(kinds)}), {sum(d.params for d in members if d.inserted):,} params"
        )
    return {"label": "\n".join(lines), "fillcolor": fill}


def _outputs(dot: graphviz.Digraph, net: Network, where: dict[str, str]) -> None:
    """Several outputs: a white box per output (its key or index, shape and stride), each one rank below
    the box that makes its tensor, so a side output sits beside the trunk rather than under it."""
    for i, o in enumerate(net.outputs):
        key = o.key if o.key is not None else str(i)
        box = f"output/{key}"
        stride = show_stride(o.stride)
        dot.node(
            box,
            label=f"output {key}: {dims(o.shape)}" + (f", /{stride}" if stride != "-" else ""),
            fillcolor=FILL["input"],
            shape="box",
            style="rounded,filled,bold",
        )
        dot.edge(where[o.node], box, style="dashed", arrowhead="normal")


def _edge_style(net: Network, u: str, v: str, edge: dict) -> str:
    """ "main", or the kind of shortcut the edge belongs to."""
    ops = net.ops
    target = ops.nodes[v]
    if edge["role"] is Role.SHORTCUT:  # a residual add's planned shortcut, or `dense`'s concat
        return _shortcut(target) if ALL[target.kind].planned else target.kind
    if edge["role"] is Role.WEIGHTS:
        return "attention"
    if edge["role"] is Role.SIZE:  # a resize reads only the size of this tensor
        return "size"
    if target.inserted:
        assert target.merge is not None  # an inserted op feeds a merge
        return _shortcut(ops.nodes[target.merge])
    return "main"


def _shortcut(merge: Node) -> str:
    """The shortcut the plan chose for a merge (shape inference sets it on every planned merge)."""
    assert merge.shortcut is not None
    return merge.shortcut


def _legend(dot: graphviz.Digraph, kinds: list[str], inserted: bool) -> None:
    """One small table node: a line sample per shortcut kind drawn, and the inserted fill if any is shown."""
    gap = '<TD ROWSPAN="2" WIDTH="4"></TD>'
    rows = []
    for kind in kinds:
        line, colour, text = SHORTCUTS[kind]
        # The sample is the bottom border of a half-height cell beside text two cells high, so it sits
        # level with the text. One flat table, every cell with its own STYLE: Graphviz 2.43's xdot and
        # json writers crash on a dashed cell in a nested table followed by a bordered one.
        border = 'BORDER="2" STYLE="solid"' if line == "bold" else f'BORDER="1" STYLE="{line}"'
        rows.append(
            f'<TR><TD WIDTH="30" HEIGHT="7" SIDES="B" {border} COLOR="{colour}"></TD>{gap}'
            f'<TD ROWSPAN="2" ALIGN="LEFT"><FONT COLOR="{colour}">{html.escape(text)}</FONT></TD></TR>'
            '<TR><TD HEIGHT="7"></TD></TR>'
        )
    if inserted:
        rows.append(
            f'<TR><TD BGCOLOR="{INSERTED_FILL}" COLOR="#d9730d" BORDER="1" STYLE="solid" HEIGHT="11"></TD>'
            '<TD WIDTH="4"></TD><TD ALIGN="LEFT">inserted by the shortcut policy</TD></TR>'
        )
    dot.node(
        "legend",
        f'<<TABLE BORDER="1" COLOR="#9aa5b1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">{"".join(rows)}</TABLE>>',
        shape="plaintext",
        style="",
        fontsize="10",
        margin="0",
    )


def _check_dpi(dpi: int | None, fmt: str) -> int | None:
    """The dpi to give Graphviz: only bitmaps have one; SVG and PDF are vector graphics."""
    if dpi is None:
        return DPI if fmt == "png" else None
    if fmt != "png":
        raise UsageError(f"--dpi applies to .png only; .{fmt} has no pixels to size")
    if not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise UsageError(f"--dpi must be between {DPI_RANGE[0]} and {DPI_RANGE[1]}, not {dpi}")
    return dpi


def render(net: Network, out: str | os.PathLike, level: str = "op", dpi: int | None = None) -> str:
    """Write the diagram to `out`; the format is the suffix (.svg .png .pdf .dot). Returns the format.
    `dpi` sizes a .png (default 96); with any other format it is an error."""
    fmt = os.path.splitext(os.fspath(out))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot tell the format of {out}: use .svg, .png, .pdf or .dot")
    dpi = _check_dpi(dpi, fmt)
    dot = build(net, level)
    if dpi is not None:
        dot.graph_attr["dpi"] = str(dpi)
    data = dot.source.encode("utf-8") if fmt == "dot" else pipe(dot, fmt)

    def write(f: IO[bytes]) -> None:
        f.write(data)

    write_atomically(out, write)
    return fmt


def pipe(dot: graphviz.Digraph, fmt: str) -> bytes:
    try:
        return dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UsageError(
            f"drawing .{fmt} needs Graphviz's `dot` program, which is not installed: "
            "apt-get install graphviz (Debian/Ubuntu) or brew install graphviz; "
            "or write .dot, which needs no Graphviz"
        ) from None
