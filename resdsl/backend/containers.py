"""The stage / block / group containers of a compiled network, callable on their own.

`model.layer1(x)`, `model.layer2[0](x)`, `model.layer2[0].downsample(x)` and
`nn.Sequential(*list(model.children())[:-2])(x)` compute what the whole
network computes at that point, as torchvision's containers do. A container
whose ops form a chain (one tensor comes in from outside, one goes out) gets
a forward that fx generates from the op graph, as the network's own forward
is: straight-line code over the container's own submodules (module.py builds
the graphs; this file holds the analysis and the classes). A container whose
ops do not form a chain cannot run on its own; calling it says why.

The network's top-level forward never calls the containers: it stays one
flat line per op, so its speed and torch.export / TorchScript graphs are
what they were.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from ..graph import FUNCTIONS, OpGraph  # FUNCTIONS: nodes that are functions in a forward, not modules


class ContainerError(RuntimeError):
    """A container was called on its own, but its ops do not form a chain."""


@dataclass(frozen=True)
class Region:
    """The ops below one container path (the whole network for path ""), in execution order,
    and the tensors that cross its border."""

    path: str
    members: tuple[str, ...]
    entries: tuple[str, ...]  # nodes outside it whose tensors its ops read
    exits: tuple[str, ...]  # its nodes whose tensors are read outside it, or returned by the network
    has_modules: bool  # False for a scope of merges alone: no Part is made for it

    @property
    def is_chain(self) -> bool:
        return len(self.entries) == 1 and len(self.exits) == 1

    def refusal(self) -> str:
        """Why the container cannot be called on its own (for a scope that is not a chain)."""
        why = []
        if len(self.entries) != 1:
            why.append(f"its ops read {len(self.entries)} tensors from outside it ({', '.join(self.entries)})")
        if len(self.exits) != 1:
            why.append(f"{len(self.exits)} of its tensors are used outside it ({', '.join(self.exits)})")
        return (
            f"container `{self.path}` cannot be called on its own: {' and '.join(why)}, so it has no "
            f"single input and output; call the network, or a container around this one"
        )


def regions(ops: OpGraph, output: str | tuple[str, ...]) -> dict[str, Region]:
    """Every container path (each dotted prefix of a node name) -> its Region; `output`: the node(s)
    the network returns (a container whose op is returned has that tensor used outside it)."""
    returned = {output} if isinstance(output, str) else set(output)
    members: dict[str, list[str]] = {}
    for name in ops.nodes:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            members.setdefault(".".join(parts[:depth]), []).append(name)
    found = {}
    for path, names in members.items():
        inside = set(names)
        entries = dict.fromkeys(u for v in names for u in ops.pred[v] if u not in inside)
        exits = [v for v in names if v in returned or any(w not in inside for w in ops.succ[v])]
        found[path] = Region(
            path, tuple(names), tuple(entries), tuple(exits), any(ops.nodes[v].kind not in FUNCTIONS for v in names)
        )
    return found


class Part(nn.Module):
    """A container that names a level of the spec in `print(model)`: a stage, a block, a group.

    A container whose ops form a chain is an instance of a subclass made by `chain_class`, whose
    forward is generated code; this class's own forward serves the others, and says why not.
    """

    def __init__(self, description: str, refusal: str = ""):
        super().__init__()
        self.description = description
        self.refusal = refusal

    @torch.jit.unused  # TorchScript compiles every submodule's forward; this one can only raise
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ContainerError(self.refusal)

    def extra_repr(self) -> str:
        return self.description

    def __getitem__(self, index: int | str) -> nn.Module:  # model.layer1[0], model.layer4[-1], as torchvision
        if isinstance(index, int) and index < 0:
            index += len(self)
        module = self._modules[str(index)]
        assert module is not None  # a container holds modules, never empty slots
        return module

    def __len__(self) -> int:
        return len(self._modules)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickling (torch.save(model), copy.deepcopy) names a chain class by its forward's source,
        since the class itself is made at run time and cannot be imported."""
        source = type(self).__dict__.get("code")
        if source is None:
            return super().__reduce_ex__(protocol)
        return _restore, (source,), self.__getstate__()


_CLASSES: dict[str, type[Part]] = {}  # forward source -> class; blocks of one shape share one


def chain_class(graph: fx.Graph) -> type[Part]:
    """The Part subclass whose forward is `graph`'s code (a graph over a container's own submodules)."""
    code = graph.python_code(root_module="self")
    return _class_for(code.src, code.globals)


def _class_for(source: str, globals_: dict[str, Any] | None = None) -> type[Part]:
    cls = _CLASSES.get(source)
    if cls is None:
        # The generated code names `torch` and fx's few helpers; an empty graph's code has the same
        # globals, so a class rebuilt from its source alone (unpickling) gets them too.
        namespace = {**fx.Graph().python_code(root_module="self").globals, **(globals_ or {})}
        filename = f"<resdsl container {len(_CLASSES)}>.py"
        # TorchScript reads a forward's source through linecache (inspect.getsource); an entry
        # with no mtime is never dropped by linecache.checkcache.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # no `annotations` future here
        cls = type("Part", (Part,), {"forward": namespace["forward"], "code": source, "__module__": __name__})
        _CLASSES[source] = cls
    return cls


def _restore(source: str) -> Part:
    """Unpickling a chain container: an empty instance of its class; pickle then sets its state."""
    cls = _class_for(source)
    return cls.__new__(cls)
