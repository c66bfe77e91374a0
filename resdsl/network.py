"""The checked network: the result of the pipeline (pipeline.py), what every later stage takes.

It sits low in the dependency order: it imports nothing above graph, errors and values
at run time. `to_torch()` and the Jupyter display reach the backend and draw on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import Diagnostic, Span
from .graph import OpGraph, Shape, show_shape
from .outputs import Output, form
from .values import Symbol, Value

if TYPE_CHECKING:  # annotations only: the types of the stages that fill a Network
    from . import syntax as ast
    from .analysis import PartCost
    from .elaborate import BlockInstance, StageInfo


@dataclass(frozen=True, eq=False)
class Network:
    """A checked network: the graph with shapes and costs, and its totals.

    `graph` is a networkx.DiGraph, one node per op (and `input`, and one per
    residual merge), in execution order. Node attributes: kind, attrs, shape,
    in_shape, params, macs, span, trace, stage, block, block_type, part,
    inserted (and merge, for an inserted shortcut op); merge nodes also carry
    policy and shortcut. Edges carry role ("main" / "shortcut") and shape.
    """

    name: str
    ops: OpGraph = field(repr=False)
    output: str = field(repr=False)  # the node whose tensor the network returns (several: the first's)
    span: Span = field(repr=False)  # the network's definition
    input_shape: Shape
    output_shape: Shape  # several outputs: the first's
    params: int
    macs: int
    parameters: dict[str, Value] = field(repr=False)
    stages: tuple[StageInfo, ...] = field(repr=False)
    parts: tuple[PartCost, ...] = field(repr=False)
    path: str = field(repr=False)
    sources: dict[str, str] = field(repr=False)
    template: ast.Template = field(repr=False)  # the network's definition (aliases followed)
    instances: tuple[BlockInstance, ...] = field(repr=False)  # every block call, in program order
    warnings: tuple[Diagnostic, ...] = field(default=(), repr=False)  # valid, but probably not what was meant
    definitions: dict[str, ast.Definition] = field(default_factory=dict, repr=False)  # blocks and networks by name
    # what the network returns, in order (outputs.py): one entry, or the `output` statement's
    outputs: tuple[Output, ...] = field(default=(), repr=False)

    @property
    def output_form(self) -> str:
        """ "tensor", "list" or "dict" (an OrderedDict): what the compiled module returns (outputs.form)."""
        return form(self.outputs)

    @property
    def output_nodes(self) -> tuple[str, ...]:
        """The nodes whose tensors the network returns, in order (its one `output` without a statement)."""
        return tuple(o.node for o in self.outputs) or (self.output,)

    @property
    def blocks(self) -> frozenset[str]:
        """The names that are blocks here (a bare block name in an expression is that block)."""
        return frozenset(name for name, d in self.definitions.items() if d.kind == "block")

    @cached_property
    def graph(self):
        """The networkx.DiGraph, built on first use (check and summary never need networkx)."""
        return self.ops.to_networkx()

    @cached_property
    def record(self):
        """The network as written: parts, block instances and the ops each made (resdsl.record)."""
        from .record import build_record

        return build_record(self)

    def to_torch(self):
        """An executable torch.nn.Module (a torch.fx GraphModule); see resdsl.backend."""
        from .backend import to_torch

        return to_torch(self)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """Jupyter shows the stage-level diagram inline (text if Graphviz's `dot` is missing)."""
        text = f"{self.name}: {self.params:,} params, {self.macs:,} MACs"
        try:
            from .draw import build, pipe

            return {"image/svg+xml": pipe(build(self, "stage"), "svg").decode("utf-8"), "text/plain": text}
        except Exception:  # no graphviz: a notebook still shows something useful
            return {"text/plain": text}

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def projections(self) -> list[dict[str, Any]]:
        """The shortcuts resdsl inserted: one entry per merge, with their cost."""
        found: dict[str, dict[str, Any]] = {}
        for node, data in self.ops.nodes.items():
            if data.inserted:
                assert data.merge is not None  # an inserted shortcut op names the merge it feeds
                merge = self.ops.nodes[data.merge]
                entry = found.setdefault(
                    data.merge,
                    {
                        "merge": data.merge,
                        "kind": merge.shortcut,
                        "part": data.part,
                        "from": show_shape(data.in_shape),
                        "to": show_shape(merge.shape),
                        "nodes": [],
                        "params": 0,
                        "macs": 0,
                    },
                )
                entry["nodes"].append(node)
                entry["params"] += data.params
                entry["macs"] += data.macs
        return list(found.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "parameters": {k: _json_value(v) for k, v in self.parameters.items()},
            "parts": [
                {
                    "name": p.name,
                    "params": p.params,
                    "macs": p.macs,
                    "output_shape": list(p.output_shape) if p.output_shape else None,
                    "inserted_params": p.inserted_params,
                    "inserted_macs": p.inserted_macs,
                }
                for p in self.parts
            ],
            "stages": [
                {"name": s.name, "block": s.block, "repeats": s.repeats, "stride": s.stride, "shortcut": s.policy}
                for s in self.stages
            ],
            "projections": self.projections(),
            "output_form": self.output_form,
            "outputs": [o.to_json() for o in self.outputs],
        }


def _json_value(value: Value) -> Any:
    """A parameter as JSON: numbers, booleans and lists as themselves; a block or policy by its name."""
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Symbol):
        return value.name
    return value
