"""The `resdsl summary` table, drawn with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .graph import show_shape
from .network import Network
from .outputs import show_outputs, show_stride
from .units import format_count


def heading(net: Network) -> list[str]:
    """The summary's first line, as phrases: the line `resdsl check` prints, without `ok`."""
    return [
        f"{net.name}: {show_shape(net.input_shape)} -> {show_outputs(net.outputs, net.output_shape)}",
        f"{net.params:,} params",
        f"{net.macs:,} MACs ({format_count(net.macs)})",
    ]


def wrap_phrases(phrases: list[str], width: int) -> list[str]:
    """Join phrases with ", " into lines of at most `width` columns, breaking only between phrases
    (a table title wraps at the table's width, which splits `4,089,184,256 MACs (4.09 G)` mid-phrase)."""
    lines: list[str] = []
    for phrase in phrases:
        if lines and len(lines[-1]) + 2 + len(phrase) + 1 <= width:  # +1: the comma that may follow
            lines[-1] += f", {phrase}"
        else:
            if lines:
                lines[-1] += ","
            lines.append(phrase)
    return lines


def print_summary(net: Network, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    for line in wrap_phrases(heading(net), console.width):
        console.print(line, overflow="ignore", crop=False, soft_wrap=True, highlight=False)
    table = Table()
    table.add_column("part")
    table.add_column("block")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("% MACs", justify="right")
    for part in net.record.parts:  # the stem, the stages (their block ×repeats), the head
        share = f"{100 * part.macs / net.macs:.1f}" if net.macs else "-"
        table.add_row(
            part.name, part.description, show_shape(part.output_shape), f"{part.params:,}", f"{part.macs:,}", share
        )
    table.add_section()
    several = net.output_form != "tensor"
    total = "" if several else show_shape(net.output_shape)  # several: the table below lists them
    table.add_row("total", "", total, f"{net.params:,}", f"{net.macs:,}", "100.0")
    console.print(table)
    if several:
        print_outputs(net, console)
    projections = net.projections()
    if projections:
        inserted = Table(title="shortcuts inserted by the policy", title_justify="left")
        for column in ("at", "kind", "shortcut", "params", "MACs"):
            inserted.add_column(column, justify="right" if column in ("params", "MACs") else "left")
        for p in projections:
            inserted.add_row(p["merge"], p["kind"], f"{p['from']} -> {p['to']}", f"{p['params']:,}", f"{p['macs']:,}")
        console.print(inserted)
    else:
        console.print("no shortcuts inserted")


def print_outputs(net: Network, console: Console) -> None:
    """What the network returns, in order: a list's index or a dict's key, the point, its tensor."""
    title = "outputs (an OrderedDict)" if net.output_form == "dict" else "outputs (a list)"
    table = Table(title=title, title_justify="left")
    for column in ("key" if net.output_form == "dict" else "index", "point", "node", "shape", "channels", "stride"):
        table.add_column(column, justify="right" if column in ("channels", "stride", "index") else "left")
    for i, o in enumerate(net.outputs):
        node = o.node if o.node != o.point else ""
        key = o.key if o.key is not None else str(i)
        table.add_row(key, o.point, node, show_shape(o.shape), f"{o.channels:,}", show_stride(o.stride))
    console.print(table)
