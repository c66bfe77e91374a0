"""`resdsl compile --emit python`: a standalone PyTorch source file, written from the spec's templates.

The file needs torch alone and reads as one would write it by hand, in
torchvision's style:

- one class per block template (`basic` -> `Basic`), whose constructor takes
  the block's input channels and the template's own parameters, with their
  defaults, plus `downsample=None`; every size is an expression of those
  parameters, so the class is right for any valid values, not only the ones
  the network uses;
- a network class taking `num_classes` (the spec's `classes` parameter) that
  builds its stem, stages and head with the values the spec gives, and passes
  each block the shortcut module the shape checker decided on;
- `build(num_classes) -> nn.Module`, initialised as torchvision does.

Module names are the elaborator's, so the state dicts of `to_torch()`, and of
torchvision and timm where they have the model, load with strict=True. The
classes are written from the block templates and the arguments bound at each
call (`Network.instances`), not read back from the flattened op graph: a
graph only shows the values that happened to be used.
"""

from __future__ import annotations

import inspect
import keyword
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .. import syntax as ast
from ..elaborate import BlockInstance
from ..parse import parse_module
from ..errors import EvalError
from ..values import evaluate
from .eject_body import Body
from .eject_expr import (UNKNOWN, Call, Sym, Unsupported, class_name, free_names, identifier, literal, py_value,
                         negate, py_string, same_value, translate)
from .eject_ir import Names, Path, Place, Symbolic, Tensor, settled
from .eject_ops import helpers_in, shortcut_call, shortcut_paths
from .eject_render import Layout, define, docstring
from . import layers
from .module import ALIASING

if TYPE_CHECKING:
    from ..network import Network

# The classes an op definition may name as its module (backend/layers.py), copied into the file that uses them.
HELPERS = {name: cls for name, cls in vars(layers).items()
           if isinstance(cls, type) and cls.__module__ == layers.__name__}
# Names the classes' own code uses, which a parameter must not shadow.
RESERVED = {"self", "in_channels", "residual", "nn", "torch", "F", "partial", "range", "channels", "super"}


@dataclass
class ClassInfo:
    name: str
    template: ast.Template
    params: dict[str, str]                       # the template's parameter -> its Python name
    flagged: bool                                # takes `residual=True`: some use is in a plain network
    slots: list[tuple[str, Path]] = field(default_factory=list)  # shortcut parameters and their modules
    source: str = ""


class Ejector:
    def __init__(self, net: "Network"):
        self.net, self.ops = net, net.ops
        self.definitions = _definitions(net)
        self.symbols = frozenset(n for n, d in self.definitions.items() if d.kind == "block")
        self.instances = {i.path: i for i in net.instances}
        self.shortcuts = shortcut_paths(self.ops)
        self.first: dict[str, str] = {}  # module path -> its first and last op node
        self.last: dict[str, str] = {}
        for name in self.ops.nodes:
            parts = name.split(".")
            for k in range(1, len(parts)):
                prefix = ".".join(parts[:k])
                self.first.setdefault(prefix, name)
                self.last[prefix] = name
        self.classes: dict[int, ClassInfo] = {}
        self.order: list[ClassInfo] = []
        self.taken = set(HELPERS) | {"F", "nn", "torch", "partial"}  # module-level names of the file
        self.uses: set[str] = set()
        self.summaries: dict[tuple, Tensor] = {}
        self.caller_residuals: dict[int, bool] = {}

    # ---- templates -------------------------------------------------------------------------
    def is_block(self, name: str) -> bool:
        return name in self.symbols

    def resolve(self, name: str) -> tuple[ast.Template, dict[str, ast.Expr | None]]:
        """Follow aliases, as the elaborator does: (template, default expression by parameter)."""
        definition = self.definitions[name]
        if isinstance(definition, ast.Template):
            return definition, {p.name: p.default for p in definition.params}
        template, defaults = self.resolve(definition.target)
        defaults = dict(defaults)
        names = [p.name for p in template.params]
        for i, arg in enumerate(definition.args):
            defaults[arg.name if arg.name is not None else names[i]] = arg.value
        return template, defaults

    def class_ref(self, name: str) -> str:
        """A block name as a Python value: its class, or `partial(Class, ...)` for an alias with new defaults."""
        template, defaults = self.resolve(name)
        info = self.class_for(template)
        changed = [(p, defaults[p.name]) for p in template.params if defaults[p.name] is not p.default]
        if not changed:
            return info.name
        if any(free_names(expr) & set(info.params) for _, expr in changed):
            raise Unsupported(f"the alias `{name}` passed as a value, whose defaults use other parameters")
        self.uses.add("partial")
        args = ", ".join(f"{info.params[p.name]}={translate(e, {}, self.class_ref).arg()}" for p, e in changed)
        return f"partial({info.name}, {args})"

    def class_for(self, template: ast.Template) -> ClassInfo:
        """The class of a block template, written the first time it is asked for."""
        info = self.classes.get(id(template))
        if info is not None:
            return info
        uses = [i for i in self.net.instances if i.template is template]
        name = class_name(template.name)
        while name in self.taken or keyword.iskeyword(name):  # `block none` is no class `None`
            name += "Block"
        self.taken.add(name)
        params: dict[str, str] = {}
        for p in template.params:  # `downsample...` and `residual` are the constructor's own
            params[p.name] = identifier(p.name + ("_" if p.name.startswith("downsample") else ""),
                                        RESERVED | set(params.values()))
        flagged = any(i.policy == "none" for i in uses) and self.caller_residual(template)
        info = self.classes[id(template)] = ClassInfo(name, template, params, flagged)
        sample = uses[0] if uses else None  # the use whose values decide `//` against `/`
        entries = {len(self.ops.nodes[self.first[i.path]].in_shape) for i in uses if i.path in self.first}
        if len(entries) > 1:
            raise Unsupported(f"block `{template.name}` is used on both feature maps and vectors")
        rank = entries.pop() if entries else 3
        channels = self.ops.nodes[self.first[sample.path]].in_shape[0] if sample and sample.path in self.first \
            else UNKNOWN
        env = {p: Sym(py, sample=_sample(uses, p)) for p, py in params.items()}
        entry = Tensor("x", Sym("in_channels", sample=channels), rank)
        body = Body(self, env, network=False, write="out", flagged=flagged)
        out = body.body(template.body, entry, Place((), Names.fresh(), None))
        hoist = self.hoisted(body, out, set(params.values()))
        if hoist:  # written again, with the local variables
            body = Body(self, env, network=False, write="out", flagged=flagged, hoist=hoist)
            out = body.body(template.body, entry, Place((), Names.fresh(), None))
        info.slots = body.slots
        self.uses |= body.uses
        info.source = self.class_source(info, body, env, out)
        self.order.append(info)
        return info

    @staticmethod
    def hoisted(body: Body, out: Tensor, params: set[str]) -> dict[str, str]:
        """Channel expressions of the parameters alone that size three modules or more -> their variable:
        `out_channels` for the block's output width, `mid_channels` (2, 3, ...) for the others."""
        found: dict[str, str] = {}
        for text, count in body.counts.items():
            names = set(re.findall(r"[A-Za-z_]\w*", text)) - {"if", "else", "and", "or", "not", "in", "True", "False"}
            if count >= 3 and names <= params | {"in_channels"}:
                last = out.channels is not None and out.channels.text == text
                found[text] = identifier("out_channels" if last else "mid_channels", params | set(found.values()))
        return found

    def caller_residual(self, template: ast.Template) -> bool:
        """Does the template (or a block it calls) have a residual governed by its caller's policy?"""
        key = id(template)
        if key not in self.caller_residuals:
            self.caller_residuals[key] = False
            self.caller_residuals[key] = self._walk(template.body, True)
        return self.caller_residuals[key]

    def _walk(self, body: ast.Body, caller: bool) -> bool:
        for stmt in body.statements:
            if isinstance(stmt, ast.Shortcut):
                caller = False  # the rest of this body has the block's own policy
            elif isinstance(stmt, ast.Chain) and any(self._reaches(link.element, caller) for link in stmt.links):
                return True
        return False

    def _reaches(self, el, caller: bool) -> bool:
        if isinstance(el, ast.Residual):
            return el.merge == "add" and caller or self._walk(el.body, caller)
        if isinstance(el, ast.Cond):
            return self._walk(el.then, caller) or (self._reaches(el.orelse, caller) if isinstance(el.orelse, ast.Cond)
                                                   else el.orelse is not None and self._walk(el.orelse, caller))
        if isinstance(el, (ast.Group, ast.Section)):
            return self._walk(el.body, caller)
        if isinstance(el, ast.Branches):
            return self._walk(el.body, caller) or el.attend is not None and self._walk(el.attend, caller)
        if isinstance(el, ast.Call) and caller and not (el.repeat is not None and el.repeat.shortcuts):
            return self.is_block(el.name) and self.caller_residual(self.resolve(el.name)[0])
        return False

    def summary(self, template: ast.Template, env: dict[str, Sym], channels: Sym, rank: int) -> Tensor:
        """What a block call gives, in the caller's terms: its output channels as an expression."""
        key = (id(template), tuple((k, v.text) for k, v in env.items()), channels.text, rank)
        if key not in self.summaries:
            body = Body(self, env, network=False, write="out")
            self.summaries[key] = body.body(template.body, Tensor("x", channels, rank), Place((), Names.fresh(), None))
        return self.summaries[key]

    # ---- instances, in the network class -----------------------------------------------------
    def instance(self, path: str) -> BlockInstance:
        if path not in self.instances:  # pragma: no cover - the elaborator records every call
            raise Unsupported(f"no block instance at {path}")
        return self.instances[path]

    def graph_tensor(self, path: str, var: str, given: Tensor) -> Tensor:
        """What a block or stage of the network gives: its shape, and whether the tensor is its own
        (a block of Identity or Dropout alone hands back its input, which an in-place op must not touch).
        A block that made no op (an empty body, or an `if` that chose none) is the identity: `given`."""
        if path not in self.last:
            return replace(given, var=var)
        node = self.last[path]
        shape = self.ops.nodes[node].shape
        while self.ops.nodes[node].kind in ALIASING:
            node = self.ops.main_input(node)
        return Tensor(var, literal(shape[0]), len(shape), owned=node.startswith(path + "."))

    def arguments(self, info: ClassInfo, values: dict[str, str]) -> list:
        """Constructor arguments in signature order: leading required ones by position, the rest by name."""
        out: list = []
        positional = True
        for p in info.template.params:
            if p.name not in values:
                positional = False
                continue
            positional = positional and p.default is None
            out.append(values[p.name] if positional else (info.params[p.name], values[p.name]))
        return out

    def instance_call(self, inst: BlockInstance, channels: Sym) -> Call:
        """`Basic(16, 32, stride=2, downsample=ZeroPadShortcut(2, 16))`: the arguments that differ from
        the class's defaults, and the shortcut modules the shape checker inserted in this block."""
        info = self.class_for(inst.template)
        values = {}
        for p in inst.template.params:
            value = inst.arguments[p.name]
            if p.default is None or not same_value(self.default(p, inst.arguments), value):
                values[p.name] = py_value(value, self.class_ref)
        args = [channels.arg()] + self.arguments(info, values)
        covered = set()
        for param, rel in info.slots:
            full = ".".join((inst.path,) + rel)
            covered.add(full)
            if full in self.shortcuts:
                call = shortcut_call(self.ops, full, self.shortcuts[full])
                self.uses.update(helpers_in(call))
                args.append((param, call))
        missing = [s for s in self.shortcuts if s.startswith(inst.path + ".") and s not in covered]
        if missing:
            raise Unsupported(f"the shortcut {missing[0]}, in a repetition of a stage inside a block")
        if info.flagged and inst.policy == "none":
            args.append(("residual", "False"))
        return Call(info.name, tuple(args))

    def default(self, param: ast.Param, arguments: dict) -> object:
        try:
            return evaluate(param.default, arguments, self.symbols)
        except EvalError:  # pragma: no cover - the elaborator evaluated it already
            return UNKNOWN

    # ---- sources -----------------------------------------------------------------------------
    def class_source(self, info: ClassInfo, body: Body, env: dict[str, Sym], out: Tensor) -> str:
        template = info.template
        signature, computed = ["self", "in_channels"], []
        keyword_only = seen_default = False
        for p in template.params:
            py = info.params[p.name]
            if p.default is None:
                if seen_default and not keyword_only:
                    signature.append("*")  # a required parameter after one with a default
                    keyword_only = True
                signature.append(py)
                continue
            seen_default = True
            if free_names(p.default) & set(info.params):  # a default computed from other parameters
                signature.append(f"{py}=None")
                computed += [f"if {py} is None:", f"    {py} = {translate(p.default, env, self.class_ref).text}"]
            else:
                signature.append(f"{py}={translate(p.default, {}, self.class_ref).text}")
        signature += [f"{param}=None" for param, _ in info.slots] + (["residual=True"] if info.flagged else [])
        lines = [f"class {info.name}(nn.Module):", docstring(self.comment(template) or
                                                             f"The `{template.name}` block.", 4), ""]
        lines += define("__init__", signature, 4)
        lines.append("        super().__init__()")
        lines += ["        " + line for line in computed + self.requirements(template, env)]
        if info.flagged:
            lines.append("        self.residual = residual  # False: a plain network's block, no shortcut")
        lines += [f"        {var} = {text}" for text, var in body.hoist.items()]
        layout = Layout(body.labelled)
        lines += layout.init(body.init, 8)
        lines += ["", "    def forward(self, x):"] + layout.forward(settled(body.fwd), 8) + [f"        return {out.var}"]
        return "\n".join(lines)

    def requirements(self, template: ast.Template, env: dict[str, Sym]) -> list[str]:
        """`require` as torchvision's BasicBlock checks its arguments: `raise ValueError(...)`."""
        lines = []
        for stmt in template.body.statements:
            if isinstance(stmt, ast.Require):
                failed = negate(stmt.test, env, self.class_ref)
                if not (failed.const and not failed.sample):
                    message = stmt.message or f"{template.name}: a requirement does not hold"
                    lines += [f"if {failed.text}:", f"    raise ValueError({py_string(message)})"]
        return lines

    def comment(self, template: ast.Definition) -> str:
        """The comment lines just above a definition in its .res file."""
        lines = self.net.sources.get(template.span.path, "").splitlines()[:template.span.line - 1]
        found = []
        for line in reversed(lines):
            if not line.strip().startswith("#"):
                break
            found.append(line.strip()[1:].strip())
        return "\n".join(reversed(found))

    def network_class(self, symbolic: bool) -> tuple[str, str, dict]:
        """(class name, source, constructor defaults) of the network class."""
        net = self.net
        env = {k: literal(v) for k, v in net.parameters.items()}
        ctor = {}
        if symbolic:
            env["classes"] = Sym("num_classes", sample=net.parameters["classes"])
            ctor["num_classes"] = net.parameters["classes"]
        body = Body(self, env, network=True, write="x", symbolic=frozenset({"classes"} if symbolic else ()))
        shape = net.input_shape
        out = body.body(net.template.body, Tensor("x", literal(shape[0]), len(shape)),
                        Place((), Names.fresh(taken=("input",)), "B"))
        name = class_name(net.name)
        while name in self.taken or keyword.iskeyword(name):  # `network true` is no class `True`
            name += "Net"
        stats = (f"{net.params:,} parameters, {net.macs:,} multiply-accumulates on "
                 f"{'x'.join(map(str, shape))}")
        comment = self.comment(self.definitions.get(net.name, net.template))
        doc = (comment + "\n\n" if comment else "") + f"{net.name}: {stats}."
        lines = [f"class {name}(nn.Module):", docstring(doc, 4), ""]
        lines += define("__init__", ["self"] + [f"{k}={v!r}" for k, v in ctor.items()], 4)
        lines.append("        super().__init__()")
        lines += ["        " + line for line in self.requirements(net.template, env)]
        layout = Layout(body.labelled)
        lines += layout.init(body.init, 8)
        lines += ["", "    def forward(self, x):"] + layout.forward(settled(body.fwd), 8) + [f"        return {out.var}"]
        self.uses |= body.uses
        return name, "\n".join(lines), ctor


def _sample(uses: list[BlockInstance], param: str) -> object:
    """The value of `param` the class is written for: the first use's, unless another use passes a float
    there. A float decides for all: the class then divides with `/` and turns sizes into ints with
    `int()`, which is right for whole numbers too (`b(8)` and `b(8.0)` are the same block in the spec)."""
    values = [u.arguments[param] for u in uses if param in u.arguments]
    return next((v for v in values if _has_float(v)), values[0] if values else UNKNOWN)


def _has_float(value: object) -> bool:
    return isinstance(value, float) or isinstance(value, tuple) and any(_has_float(v) for v in value)


def _definitions(net: "Network") -> dict[str, ast.Definition]:
    """Every block and network of the spec and the files it uses, parsed again from the sources the
    network was checked from (no file is read)."""
    found: dict[str, ast.Definition] = {}
    for path, text in net.sources.items():
        try:
            module = parse_module(text, path)
        except Exception:  # `--set` values are sources too, and no module
            continue
        for definition in module.definitions:
            found.setdefault(definition.name, definition)
    return found


def eject(net: "Network", model=None) -> str:
    """Standalone PyTorch source for `net` (`model`, the compiled module, is not needed)."""
    from ..version import __version__
    ej = Ejector(net)
    try:
        try:
            name, network, ctor = ej.network_class(symbolic="classes" in net.parameters)
        except Symbolic:  # `classes` reaches where a constant is needed: the class takes no num_classes
            name, network, ctor = ej.network_class(symbolic=False)
    except Unsupported as exc:  # a construct the block classes cannot express yet: one flat class
        from .eject_flat import eject_flat
        return eject_flat(net, str(exc))
    spec = os.path.basename(net.path)
    helpers = [inspect.getsource(HELPERS[h]).rstrip() for h in HELPERS if h in ej.uses]
    imports = (["from functools import partial", ""] if "partial" in ej.uses else []) + \
        (["import math", ""] if any("math." in h for h in helpers) else []) + \
        (["import torch"] if "torch" in ej.uses or ej.uses & set(HELPERS) else []) + \
        (["import torch.nn.functional as F"] if any("F." in h for h in helpers) else []) + ["from torch import nn"]
    params = ", ".join(f"{k}={v!r}" for k, v in ctor.items())
    made = "".join(c.source for c in ej.order) + network
    zeroed = ", and 0 where the spec says zero_init (the blocks do that)" if "nn.init.zeros_" in made else ""
    if "nn.Conv2d(" in made or ej.uses & set(HELPERS):
        how = f"convolutions Kaiming normal (fan_out), BatchNorm weight 1 and bias 0{zeroed}"
        init = [f"    model = {name}({', '.join(ctor)})",
                "    for m in model.modules():",
                "        if isinstance(m, nn.Conv2d):",
                '            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
                "    return model"]
    else:  # no convolution: PyTorch's own initialisation is torchvision's
        how = f"PyTorch's defaults, BatchNorm weight 1 and bias 0{zeroed}"
        init = [f"    return {name}({', '.join(ctor)})"]
    doc = (f'"""{net.name}, from {spec}: written by resdsl {__version__} (`resdsl compile --emit python`).\n\n'
           "Needs torch alone. Module names are resdsl's (and torchvision's or timm's, where those have\n"
           'the model), so their state dicts load with strict=True.\n"""')
    build = "\n".join([f"def build({params}) -> nn.Module:",
                       docstring(f"{net.name}, initialised as torchvision does: {how}.", 4), *init])
    return doc + "\n\n" + "\n\n\n".join(["\n".join(imports), *helpers, *(c.source for c in ej.order), network,
                                         build]) + "\n"
