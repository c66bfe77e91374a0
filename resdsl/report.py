"""The `resdsl summary` table, drawn with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .network import Network
from .shapes import show_shape


def print_summary(net: Network, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    title = (f"{net.name}: {show_shape(net.input_shape)} -> {show_shape(net.output_shape)}, "
             f"{net.params:,} params, {net.macs:,} MACs ({net.macs / 1e9:.3f} GMACs)")
    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("block")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("% MACs", justify="right")
    stages = {s.name: s for s in net.stages}
    for part in net.parts:
        stage = stages.get(part.name)
        block = f"{stage.block} ×{stage.repeats}" + (f" /{stage.stride}" if stage.stride and stage.stride > 1 else "") \
            if stage else ""
        share = f"{100 * part.macs / net.macs:.1f}" if net.macs else "-"
        table.add_row(part.name, block, show_shape(part.output_shape), f"{part.params:,}", f"{part.macs:,}", share)
    table.add_section()
    table.add_row("total", "", show_shape(net.output_shape), f"{net.params:,}", f"{net.macs:,}", "100.0")
    console.print(table)
    projections = net.projections()
    if projections:
        inserted = Table(title="shortcuts inserted by the policy", title_justify="left")
        for column in ("at", "kind", "shortcut", "params", "MACs"):
            inserted.add_column(column, justify="right" if column in ("params", "MACs") else "left")
        for p in projections:
            inserted.add_row(p["merge"], p["kind"], f"{p['from']} -> {p['to']}", f"{p['params']:,}",
                             f"{p['macs']:,}")
        console.print(inserted)
    else:
        console.print("no shortcuts inserted")
