"""`resdsl compile --deploy --emit python`: the deployed network as one standalone flat class.

The deployed graph no longer follows the spec's block templates (its norms are folded, its sums of
branches are single convs), so it is written as eject_flat.py writes a block that has no class:
`__init__` builds every module at its node's path (`layer1.0.conv1`, `stages.0.0.reparam_conv`)
with plain containers on the way, so the state dict `--deploy --emit state` writes loads with
strict=True; `forward` is the straight-line code torch.fx generates from the deployed op graph, the
code the compiled deployed module runs.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from ..graph import FUNCTIONS
from ..ops import ALL
from .containers import Region
from .eject import HELPERS, refuse_points
from .eject_expr import class_name
from .eject_flat import FUNCTIONS_USED
from .eject_render import docstring, flat, module_source
from .module import _forward_graph, _inplace

if TYPE_CHECKING:
    from ..network import Network


def eject_deployed(net: Network) -> str:
    """Standalone PyTorch source for a deployed network (deploy_plan.Plan.deployed)."""
    from ..version import __version__

    refuse_points(net)
    ops = net.ops
    returned = frozenset(net.output_nodes)
    inplace = _inplace(ops, returned)
    whole = Region("", tuple(n for n in ops.nodes if n != "input"), ("input",), net.output_nodes, True)
    code = _forward_graph(ops, inplace, whole, {}, net).python_code(root_module="self")
    used = {FUNCTIONS_USED[g] for g in code.globals if g in FUNCTIONS_USED} | {"install_module"}
    lines = []
    for name, node in ops.nodes.items():
        if node.kind == "input" or node.kind in FUNCTIONS:
            continue
        shape = node.in_shape or ()
        call = module_source(ALL[node.kind].module(node.attrs, shape[0], len(shape), inplace.get(name, False)))
        if not call.func.startswith("nn."):
            used.add(call.func)
        lines.append(f"        install_module(self, {name!r}, {flat(call)})")
    forward = code.src.strip("\n")
    for alias, function in FUNCTIONS_USED.items():
        forward = forward.replace(alias, function)
    cls = (class_name(net.name) if net.name.isidentifier() else "Network") + "Deployed"
    stats = f"{net.params:,} parameters, {net.macs:,} multiply-accumulates on {'x'.join(map(str, net.input_shape))}"
    helpers = [inspect.getsource(HELPERS[h]).rstrip() for h in HELPERS if h in used]
    body = "\n".join(
        [
            f"class {cls}(nn.Module):",
            docstring(
                f"{net.name} in its deployed form (norms folded, sums of branches fused): {stats}. "
                "Its weights are in the state dict `resdsl compile --deploy --emit state` writes.",
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
    text = "\n".join(helpers + [body])
    imports = (["import operator", ""] if "operator." in text else []) + (
        ["import torch"] + (["import torch.nn.functional as F"] if "F." in text else []) + ["from torch import nn"]
    )
    build = "\n".join(
        [
            "def build() -> nn.Module:",
            docstring(f"{net.name}, deployed; load the weights with model.load_state_dict(state, strict=True).", 4),
            f"    return {cls}()",
        ]
    )
    doc = (
        f'"""{net.name} for inference, from {net.path.rsplit("/", 1)[-1]}: written by resdsl {__version__} '
        "(`resdsl compile --deploy --emit python`).\n\nNeeds torch alone; eval mode only (its batch norms "
        'are folded into the convs).\n"""'
    )
    return doc + "\n\n" + "\n\n\n".join(["\n".join(imports), *helpers, body, build]) + "\n"
