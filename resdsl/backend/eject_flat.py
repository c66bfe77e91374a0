"""`compile --emit python` for specs the block classes cannot express yet: one flat, standalone class.

eject.py writes one class per block template, which is how one writes a network by hand. Some
constructs have no such form yet (`branches`, dotted or indexed names, shortcuts a block writes),
and for those the file holds one class instead:

- `__init__` builds every module at its path in the spec (`layer1.0.convs.2`), with plain
  `nn.Module` containers on the way, so state dicts (timm's too) load with strict=True;
- `forward` is the straight-line code torch.fx generates from the op graph, the same code
  `Network.to_torch()` runs;
- the layer classes and functions of backend/layers.py it needs are copied in, so it needs torch alone.

The sizes are the network's, not expressions of the templates' parameters: the file is this one
network, and says so. The class and `build` take `num_classes`, as the block classes' network class
does, where the network's `classes` only sizes modules (found by checking the network at another
`classes` and comparing: `_num_classes`).
"""

from __future__ import annotations

import inspect
import keyword
import os
import re
from typing import TYPE_CHECKING

from . import layers
from .eject_expr import flat, is_int
from .eject_ops import render_call
from .eject_render import docstring
from .module import FUNCTIONS, _inplace, module_call

if TYPE_CHECKING:
    from ..network import Network

# What the generated forward may refer to besides `torch`: fx names a function by its module and name.
FUNCTIONS_USED = {f"resdsl_backend_layers_{name}": name for name, fn in vars(layers).items()
                  if inspect.isfunction(fn) and fn.__module__ == layers.__name__}


def eject_flat(net: "Network", reason: str) -> str:
    """Standalone source for `net` as one class; `reason` says why the block classes could not be written."""
    from ..version import __version__
    from .module import to_torch

    model = to_torch(net)
    code = model.graph.python_code(root_module="self")
    unknown = set(code.globals) - {"inf", "nan", "NoneType", "torch", "device", "fx_pytree", "pytree"} - \
        set(FUNCTIONS_USED)
    assert not unknown, f"the generated forward refers to {unknown}"  # pragma: no cover - a new kind of node
    inplace = _inplace(net.ops)
    lines, zero_init, used = [], [], set()
    for name, data in net.ops.nodes.items():
        if data.kind == "input" or data.kind in FUNCTIONS:
            continue
        call = render_call(module_call(data.kind, data.attrs, data.in_shape, inplace.get(name, False)))
        if not call.func.startswith("nn."):
            used.add(call.func)
        lines.append(f"        _install(self, {name!r}, {flat(call)})")
        if data.attrs.get("zero_init"):
            zero_init.append(name)
    functions = {FUNCTIONS_USED[g] for g in code.globals if g in FUNCTIONS_USED}
    helpers = [inspect.getsource(getattr(layers, h)).rstrip() for h in sorted(used | functions)]
    aliases = [f"{g} = {FUNCTIONS_USED[g]}" for g in sorted(code.globals) if g in FUNCTIONS_USED]
    source_text = "\n".join(helpers)
    imports = ["import math"] * ("math." in source_text) + ["from typing import List"] * ("List[" in source_text) + \
        ["", "import torch"] + ["import torch.nn.functional as F"] * ("F." in source_text) + ["from torch import nn"]
    spec = os.path.basename(net.path)
    doc = (f'"""{net.name}, from {spec}: written by resdsl {__version__} (`resdsl compile --emit python`).\n\n'
           f"One flat class: the spec uses {reason}, which resdsl cannot write as block classes yet, so\n"
           "the modules sit at the spec's paths in plain containers and `forward` is straight-line code.\n"
           "Needs torch alone. Module names are resdsl's (and timm's or torchvision's, where those have the\n"
           'model), so their state dicts load with strict=True.\n"""')
    install = "\n".join([
        "def _install(root: nn.Module, path: str, module: nn.Module) -> None:",
        docstring("Put `module` at the dotted `path` of `root`, making plain containers on the way.", 4),
        '    *parents, leaf = path.split(".")',
        "    for part in parents:",
        "        if part not in root._modules:",
        "            root.add_module(part, nn.Module())",
        "        root = root._modules[part]",
        "    root.add_module(leaf, module)"])
    cls = net.name[:1].upper() + net.name[1:] if net.name.isidentifier() else "Network"
    while keyword.iskeyword(cls) or cls in used | functions or cls in ("F", "nn", "torch", "math", "List"):
        cls += "Net"  # `network none` is no class `None`, nor a helper's name
    body = code.src.strip("\n").replace("def forward(self, x):", "def forward(self, x: torch.Tensor) -> torch.Tensor:")
    classes = _num_classes(net, lines)
    ctor = "" if classes is None else f"num_classes={net.parameters['classes']!r}"
    lines = lines if classes is None else classes
    klass = "\n".join([f"class {cls}(nn.Module):",
                       docstring(f"{net.name}: {net.params:,} parameters, {net.macs:,} MACs at "
                                 f"{'x'.join(map(str, net.input_shape))}.", 4),
                       "", f"    def __init__(self{', ' + ctor if ctor else ''}):", "        super().__init__()", *lines,
                       "",
                       "\n".join("    " + line if line else line for line in body.splitlines())])
    zero = [f"    for name in {zero_init!r}:", "        nn.init.zeros_(model.get_submodule(name).weight)"] \
        if zero_init else []
    build = "\n".join([
        f"def build({ctor}) -> nn.Module:",
        docstring(f"{net.name}, initialised as torchvision does: convolutions Kaiming normal (fan_out), "
                  "BatchNorm weight 1 and bias 0" + (", and 0 where the spec says zero_init." if zero_init else "."), 4),
        f"    model = {cls}({'num_classes' if ctor else ''})",
        "    for m in model.modules():",
        "        if isinstance(m, nn.Conv2d):",
        '            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
        "        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):",
        "            nn.init.ones_(m.weight)",
        "            nn.init.zeros_(m.bias)",
        *zero,
        "    return model"])
    parts = ["\n".join(imports).lstrip("\n"), *helpers] + (["\n".join(aliases)] if aliases else []) + \
        [install, klass, build]
    return doc + "\n\n" + "\n\n\n".join(parts) + "\n"


# A whole number standing alone in an `_install` line (not part of a name such as `layer1.0.conv1`).
_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def _num_classes(net: "Network", lines: list[str]) -> list[str] | None:
    """The `_install` lines with `num_classes` where the network's `classes` is, or None where the
    file cannot take it. The network is checked again at another `classes` (its other parameters as
    they are, as the block classes' network class does): the lines that change must change only in
    numbers that are `classes` there and the other value here; the forward must not change."""
    from ..errors import SpecError
    from ..pipeline import compile_text
    classes = net.parameters.get("classes")
    if not is_int(classes) or net.path not in net.sources:
        return None
    for other in (classes + 1, classes * 2 + 1):
        params = {**net.parameters, "classes": other}
        try:
            again = compile_text(net.sources[net.path], net.path, network=net.name, input_shape=net.input_shape,
                                 params=params)
        except SpecError:  # a requirement on `classes`, say: try another value
            continue
        if list(again.ops.nodes) != list(net.ops.nodes) or _forward_source(again) != _forward_source(net):
            return None
        out = []
        for mine, theirs in zip(lines, _install_lines(again)):
            a, b = _NUMBER.split(mine), _NUMBER.split(theirs)
            if len(a) != len(b) or a[::2] != b[::2]:
                return None
            for i in range(1, len(a), 2):
                if a[i] != b[i]:
                    if (int(a[i]), int(b[i])) != (classes, other):
                        return None
                    a[i] = "num_classes"
            out.append("".join(a))
        return out
    return None


def _install_lines(net: "Network") -> list[str]:
    inplace = _inplace(net.ops)
    return [f"        _install(self, {name!r}, "
            f"{flat(render_call(module_call(data.kind, data.attrs, data.in_shape, inplace.get(name, False))))})"
            for name, data in net.ops.nodes.items() if data.kind != "input" and data.kind not in FUNCTIONS]


def _forward_source(net: "Network") -> str:
    """The forward torch.fx writes for `net`, without building its modules (module.to_torch's)."""
    from .containers import Scope
    from .module import _forward_graph
    ops = net.ops
    whole = Scope("", tuple(n for n in ops.nodes if n != "input"), ("input",), (net.output,), True)
    return _forward_graph(ops, _inplace(ops), whole, {}).python_code(root_module="self").src
