"""A flat class for one block call whose template has no class (eject.py): that block only.

`__init__` builds every module of the call at its path below the block (`paths.0.conv`), with
plain nn.Module containers on the way, so state dicts load with strict=True; `forward` is the
straight-line code torch.fx generates from the call's part of the op graph, the code the compiled
network's container for that block runs. The sizes are the call's own: the class says so.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from ..graph import FUNCTIONS
from ..ops import ALL
from ..record import BlockRecord
from . import layers
from .containers import regions
from .eject_render import docstring, flat, module_source
from .module import _forward_graph, _inplace

if TYPE_CHECKING:
    from ..network import Network

# What a generated forward may call besides torch and operator: fx names a function by module and name.
FUNCTIONS_USED = {
    f"resdsl_backend_layers_{name}": name
    for name, fn in vars(layers).items()
    if inspect.isfunction(fn) and fn.__module__ == layers.__name__
}


def flat_class(net: Network, block: BlockRecord, cls: str) -> tuple[str, set[str]]:
    """(source of the class, the helpers it needs) for the call `block`."""
    ops = net.ops
    template = block.instance.template.name
    if block.output is None:  # a call that made no op: the identity
        return "\n".join(
            [
                f"class {cls}(nn.Module):",
                docstring(f"The `{template}` block at `{block.path}`: it makes no op here.", 4),
                "",
                "    def forward(self, x):",
                "        return x",
            ]
        ), set()
    scope = regions(ops, net.output)[block.path]
    if not scope.is_chain:  # pragma: no cover - a block call reads one tensor and gives one
        raise AssertionError(scope.refusal())
    inplace = _inplace(ops)
    graph = _forward_graph(ops, inplace, scope, {})
    code = graph.python_code(root_module="self")
    used: set[str] = {FUNCTIONS_USED[g] for g in code.globals if g in FUNCTIONS_USED}
    lines = []
    prefix = block.path + "."
    for name in scope.members:
        node = ops.nodes[name]
        if node.kind in FUNCTIONS:
            continue
        shape = node.in_shape or ()
        described = ALL[node.kind].parameter(node.attrs, shape[0], len(shape))
        if described is not None:  # a bare parameter of its container (layer scale)
            made = f"nn.Parameter(torch.full({tuple(described.shape)!r}, {described.fill!r}))"
            lines.append(f"        install_module(self, {name[len(prefix) :]!r}, {made})")
            continue
        call = module_source(ALL[node.kind].module(node.attrs, shape[0], len(shape), inplace.get(name, False)))
        if not call.func.startswith("nn."):
            used.add(call.func)
        lines.append(f"        install_module(self, {name[len(prefix) :]!r}, {flat(call)})")
        if node.attrs.get("zero_init"):
            lines.append(f"        nn.init.zeros_(self.get_submodule({name[len(prefix) :]!r}).weight)")
    forward = code.src.strip("\n")
    for alias, function in FUNCTIONS_USED.items():
        forward = forward.replace(alias, function)
    source = "\n".join(
        [
            f"class {cls}(nn.Module):",
            docstring(
                f"The `{template}` block at `{block.path}`, written flat: its template has no class here, "
                "so this class builds that one call's modules.",
                4,
            ),
            "",
            "    def __init__(self):",
            "        super().__init__()",
            *lines,
            "",
            "\n".join("    " + line if line else line for line in forward.splitlines()),
        ]
    )
    used.add("install_module")
    return source, used
