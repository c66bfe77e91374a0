"""`resdsl compile --emit python`: a standalone PyTorch file, written from the checked network's record.

The file needs torch alone and reads as one would write it by hand, in torchvision's style:

- one class per block template, specialised to this network (eject_class.py): its constructor
  takes the input channels (`inplanes`), the parameters that vary between the template's calls
  here, and `downsample=None` where the shape checker inserts a shortcut; the parameters that
  are the same in every call are constants, so ResNet-50's `Bottleneck` takes
  `(inplanes, planes, stride=1, downsample=None)` and has no branch it never takes;
- a network class taking `num_classes` that builds the stem, stages and head with the values
  the spec gives, and passes each block the shortcut module the shape checker decided on;
- `build(num_classes) -> nn.Module`, initialised as torchvision does.

Everything is read from the record (resdsl/record.py): the templates, each call's arguments,
the names and modules of what it made. A block whose template cannot be written as one class
(say a stage inside a block) is written as a flat class of its own, the rest of the network
keeping its block classes. Assign names are the elaborator's, so state dicts load strictly.
"""

from __future__ import annotations

import ast as pyast
import inspect
import keyword
import os
import re
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import syntax as ast
from ..evaluation import evaluate
from ..ops import ALL
from ..record import BlockRecord
from ..values import Value, same_value
from . import layers
from .eject_class import ClassWriter, Live, Tensor
from .eject_expr import Py, Unsupported, ast_names, class_name, constant, identifier, name, substitute
from .eject_flat import flat_class
from .eject_render import CallText, Layout, define, docstring, hoist, module_source

if TYPE_CHECKING:
    from ..network import Network

# The classes and functions of backend/layers.py, copied into the file that uses them.
HELPERS = {
    key: value
    for key, value in vars(layers).items()
    if (isinstance(value, type) or inspect.isfunction(value)) and value.__module__ == layers.__name__
}
# Names the classes' own code uses, which a parameter must not shadow.
RESERVED = (
    {"self", "x", "out", "y", "identity", "inplanes", "nn", "torch", "F", "OrderedDict", "super", "int", "max", "min"}
    | {"zip", "total", "attention", "splits", "branches", "branch", "part", "path"}
    | {f"branch{i}" for i in range(64)}
    | {f"identity{i}" for i in range(2, 64)}
)


@dataclass
class BlockClass:
    """A block template's class: its name, constructor parameters and what its calls give."""

    name: str
    template: ast.Template
    params: list[tuple[str, str, str | None]]  # (parameter, Python name, default source or None: required)
    computed: dict[str, ast.Expr]  # parameters whose default the class computes when not given
    slots: list[tuple[str, tuple[str, ...]]]  # (constructor parameter, module path) of inserted shortcuts
    out: Py | None  # output channels, in the constructor's names
    source: str = ""


class Ejector:
    def __init__(self, net: Network):
        self.net, self.record = net, net.record
        self.symbols = net.blocks
        self.classes: dict[int, BlockClass | None] = {}  # template -> its class (None: written flat)
        self.order: list[str] = []  # class sources, in the order they are needed
        self.taken = set(HELPERS) | {"F", "nn", "torch", "math", "operator", "OrderedDict", "build"}
        self.uses: set[str] = set()  # what the file needs: helpers of backend/layers.py, torch, OrderedDict
        self.flat_reasons: list[str] = []  # `template: why` for each template written flat

    def fresh(self, text: str) -> str:
        out, n = text, 1
        while out in self.taken or keyword.iskeyword(out):  # `block none` is no class `None`
            n += 1
            out = f"{text}{n}" if not keyword.iskeyword(text) else f"{text}Block{n}"
        self.taken.add(out)
        return out

    def class_ref(self, block: str) -> str:
        """A block name as a Python value (a parameter holding a block, passed on): its class."""
        definition = self.net.definitions.get(block)
        info = self.classes.get(id(definition)) if isinstance(definition, ast.Template) else None
        return info.name if info is not None else class_name(block)

    # ---- block classes ------------------------------------------------------------------------
    def class_for(self, template: ast.Template) -> BlockClass | None:
        key = id(template)
        if key not in self.classes:
            try:
                self.classes[key] = self.write_class(template)
            except Unsupported as exc:
                self.classes[key] = None
                self.flat_reasons.append(f"{template.name}: {exc}")
        return self.classes[key]

    def write_class(self, template: ast.Template) -> BlockClass:
        uses = self.record.uses(template)
        envs = [u.instance.arguments for u in uses]
        empty = [u.in_shape is None for u in uses]
        if any(empty) and not all(empty):
            raise Unsupported("calls that made no op beside calls that did")
        ranks = {len(u.in_shape) if u.in_shape else 3 for u in uses}
        if len(ranks) != 1:
            raise Unsupported(f"block `{template.name}` used on both feature maps and vectors")
        taken = set(RESERVED)
        free: dict[str, str] = {}
        params: list[tuple[str, str, str | None]] = []
        computed: dict[str, ast.Expr] = {}
        derived: list[tuple[str, str, ast.Param]] = []
        for p in template.params:
            if all(same_value(env[p.name], envs[0][p.name]) for env in envs):
                continue  # the same in every call: a constant of this class
            py_name = identifier(p.name, taken)
            taken.add(py_name)
            free[p.name] = py_name
            follows = (
                p.default is not None
                and ast_names(p.default)
                and all(_evaluates_to(p.default, env, self.symbols, env[p.name]) for env in envs)
            )
            if follows:
                derived.append((p.name, py_name, p))
            else:
                params.append((p.name, py_name, None if p.default is None else "?"))
        writer = ClassWriter(self, [Live(u.instance.arguments, u.events, u.path + ".") for u in uses], free, "out")
        ev = writer.ev
        signature: list[tuple[str, str, str | None]] = []
        lines: list[str] = []
        for p_name, py_name, default in params:
            param = next(p for p in template.params if p.name == p_name)
            if param.default is None:
                signature.append((p_name, py_name, None))
                continue
            if default is not None and not any(
                _evaluates_to(param.default, env, self.symbols, env[p_name]) for env in envs
            ):
                default = None  # every call gives its own value: the default is never used here
            if default is None:
                signature.append((p_name, py_name, None))
            elif not (ast_names(param.default) & set(free)):
                signature.append((p_name, py_name, ev(param.default).text))
            else:  # a default computed from other parameters that vary
                signature.append((p_name, py_name, "None"))
                computed[p_name] = param.default
                lines += [f"if {py_name} is None:", f"    {py_name} = {ev(param.default).text}"]
        written: dict[str, str] = {}
        for p_name, py_name, param in derived:  # worked out from the others, as torchvision's `width`
            assert param.default is not None  # derived parameters are those a default gives
            value = ev(param.default)
            same = value.node.id if isinstance(value.node, pyast.Name) else written.get(value.text)
            if same is not None:  # the same as another parameter: that one's name
                free[p_name] = same
            else:
                lines.append(f"{py_name} = {value.text}")
                written[value.text] = py_name
        entry = Tensor("x", name("inplanes", tuple(u.in_shape[0] if u.in_shape else None for u in uses)), ranks.pop())
        out = writer.body(template.body, entry)
        cls = BlockClass(
            self.fresh(class_name(template.name)), template, signature, computed, writer.slots, out.channels
        )
        self.uses |= writer.uses
        cls.source = self.class_source(cls, writer, lines, out)
        body = cls.source.split("super().__init__()", 1)[1]
        unused = [p for p in cls.params if not re.search(rf"\b{p[1]}\b", body) and p[0] not in cls.computed]
        if unused:  # a parameter that varies but sizes nothing here (a pruned model's `planes`): not taken
            cls.params = [p for p in cls.params if p not in unused]
            cls.source = self.class_source(cls, writer, lines, out)
        self.order.append(cls.source)
        return cls

    def class_source(self, cls: BlockClass, writer: ClassWriter, lines: list[str], out: Tensor) -> str:
        args = ["self", "inplanes"]
        slots = [f"{param}=None" for param, _ in cls.slots]
        keyword_only = seen_default = False
        placed = False
        for p_name, py_name, default in cls.params:
            if default is None:
                if seen_default and not keyword_only:
                    args.append("*")
                    keyword_only = True
                args.append(py_name)
            else:
                seen_default = True
                args.append(f"{py_name}={default}")
            if p_name == "stride" and not keyword_only:  # torchvision's order: (inplanes, planes, stride, downsample)
                args += slots
                placed = True
        if not placed:
            args += slots
        # the comment's first sentence: the rest describes options this class may have been written without
        comment = " ".join(self.comment(cls.template).split())
        first = comment.split(". ")[0].rstrip(".") + "." if comment else f"The `{cls.template.name}` block."
        uses = len(self.record.uses(cls.template))
        doc = (
            f"{first}\n\nWritten for the {uses} call{'s' if uses > 1 else ''} of `{cls.template.name}` in "
            f"{self.net.name}: what they agree on is a constant here."
        )
        source = [f"class {cls.name}(nn.Module):", docstring(doc, 4), ""]
        source += define("__init__", args, 4)
        source.append("        super().__init__()")
        init, hoisted = hoist(
            writer.init,
            {a.split("=")[0] for a in args} | RESERVED | set(writer.free.values()),
            out.channels.text if out.channels is not None else None,
        )
        source += ["        " + line for line in lines + hoisted]
        layout = Layout(init)
        source += layout.init(8)
        source += ["", "    def forward(self, x):"] + layout.forward(writer.fwd, 8) + [f"        return {out.var}"]
        return "\n".join(source)

    def construct(
        self, blocks: list[BlockRecord], writer: ClassWriter, el: ast.Call, t: Tensor
    ) -> tuple[CallText | str, Py | None]:
        """The constructor call of a nested block (one per live call of `writer`) and its output width."""
        templates = {id(b.instance.template) for b in blocks}
        if len(templates) != 1:
            raise Unsupported("a call whose block differs between the calls")
        cls = self.class_for(blocks[0].instance.template)
        if cls is None:
            if not writer.network:
                raise Unsupported(f"`{blocks[0].instance.template.name}`, written flat, inside a block")
            return CallText(self.flat(blocks[0]), ()), None
        given = _given(blocks[0].instance.template, el)
        if t.channels is None:
            raise Unsupported("a block call after `flatten`")
        args: list = [t.channels.text]
        values: dict[str, str] = {}
        substitutions: dict[str, Py] = {"inplanes": t.channels}
        for p_name, py_name, default in cls.params:
            wanted = tuple(b.instance.arguments[p_name] for b in blocks)
            if writer.network:
                value = constant(wanted[0], 1, self.class_ref)
                if default is not None and p_name not in cls.computed and value.text == default:
                    continue
                if p_name in cls.computed and _evaluates_to(
                    cls.computed[p_name], blocks[0].instance.arguments, self.symbols, wanted[0]
                ):
                    continue
            elif p_name in given and not (p_name == "stride" and el.repeat is not None):
                value = writer.ev(given[p_name])
                if not all(same_value(a, b) for a, b in zip(value.samples, wanted)):
                    raise Unsupported(f"an argument of `{cls.name}` the call's expression does not give")
            else:
                param = next(p for p in cls.template.params if p.name == p_name)
                if param.default is None or not all(
                    _evaluates_to(param.default, b.instance.arguments, self.symbols, w) for b, w in zip(blocks, wanted)
                ):
                    raise Unsupported(f"an argument of `{cls.name}` given by a `defaults` statement or an alias")
                continue
            values[py_name] = value.text
            substitutions[py_name] = value
        positional = True
        for _, py_name, default in cls.params:
            if py_name not in values:
                positional = False
                continue
            positional = positional and default is None
            args.append(values[py_name] if positional else (py_name, values[py_name]))
        for slot, rel in cls.slots:
            if writer.network:
                full = blocks[0].path + "." + ".".join(rel)
                if full in self.record.shortcuts:
                    args.append((slot, self.shortcut_module(self.record.shortcuts[full])))
            else:
                path = tuple(blocks[0].path[len(writer.lives[0].prefix) :].split(".")) + rel
                outer = identifier("_".join(path), set(writer.free.values()) | RESERVED)
                writer.slots.append((outer, path))
                args.append((slot, outer))
        width = None
        if not writer.network and cls.out is not None:
            width = substitute(cls.out, substitutions, tuple(b.out_shape[0] for b in blocks if b.out_shape))
        return CallText(cls.name, tuple(args)), width

    def shortcut_module(self, nodes: tuple[str, ...]) -> CallText:
        """`ZeroPadShortcut(2, 16)`, or an nn.Sequential of the projection; a slot the graph leaves
        empty (ResNet-D at stride 1: no pool in slot 0, as timm) holds an nn.Identity."""
        ops = self.net.ops
        calls = []
        for n in nodes:
            node = ops.nodes[n]
            shape = node.in_shape or ()
            call = module_source(ALL[node.kind].module(node.attrs, shape[0], len(shape), False))
            if not call.func.startswith("nn."):
                self.uses.add(call.func)
            calls.append(call)
        if len(nodes) == 1 and not nodes[0].rpartition(".")[2].isdigit():
            return calls[0]
        slots = [int(n.rpartition(".")[2]) for n in nodes]
        return CallText("nn.Sequential", tuple([CallText("nn.Identity", ())] * slots[0] + calls))

    def flat(self, block: BlockRecord) -> str:
        """A flat class for one call of a block that has no class (eject_flat.py)."""
        cls = self.fresh(class_name(block.instance.template.name) + "Flat")
        source, used = flat_class(self.net, block, cls)
        self.uses |= used
        self.order.append(source)
        return cls

    # ---- the network ------------------------------------------------------------------------------
    def comment(self, definition: ast.Definition) -> str:
        """The comment lines just above a definition in its .res file."""
        lines = self.net.sources.get(definition.span.path, "").splitlines()[: definition.span.line - 1]
        found = []
        for line in reversed(lines):
            if not line.strip().startswith("#"):
                break
            found.append(line.strip()[1:].strip())
        return "\n".join(reversed(found))

    def network_class(self, symbolic: bool) -> tuple[str, str, dict]:
        net = self.net
        free, ctor = {}, {}
        if symbolic:
            free["classes"] = "num_classes"
            ctor["num_classes"] = net.parameters["classes"]
        live = Live(dict(net.parameters), self.record.events, "")
        writer = ClassWriter(self, [live], free, "x", network=True)
        shape = net.input_shape
        out = writer.body(net.template.body, Tensor("x", constant(shape[0], 1), len(shape)))
        if live.pos != len(live.events):  # pragma: no cover - every event is met once
            raise Unsupported("events the walk did not meet")
        self.uses |= writer.uses
        cls = self.fresh(class_name(net.name) if net.name.isidentifier() else "Network")
        stats = f"{net.params:,} parameters, {net.macs:,} multiply-accumulates on {'x'.join(map(str, shape))}"
        comment = self.comment(net.definitions.get(net.name, net.template))
        lines = [
            f"class {cls}(nn.Module):",
            docstring((comment + "\n\n" if comment else "") + f"{net.name}: {stats}.", 4),
            "",
        ]
        lines += define("__init__", ["self"] + [f"{k}={v!r}" for k, v in ctor.items()], 4)
        lines.append("        super().__init__()")
        layout = Layout(writer.init)
        lines += layout.init(8)
        lines += ["", "    def forward(self, x):"] + layout.forward(writer.fwd, 8) + [f"        return {out.var}"]
        return cls, "\n".join(lines), ctor


def _evaluates_to(expr: ast.Expr, env: dict[str, Value], symbols: frozenset[str], want: Value) -> bool:
    try:
        return same_value(evaluate(expr, env, symbols), want)
    except Exception:
        return False


def _given(template: ast.Template, call: ast.Call) -> dict[str, ast.Expr]:
    """The call's arguments by parameter (positional ones in the template's order, as binding.py)."""
    from ..calls import SHORTHANDS

    names = [p.name for p in template.params]
    found = {}
    positional = [a for a in call.args if a.name is None]
    for param, arg in zip(names, positional):
        found[param] = arg.value
    for arg in call.args:
        if arg.name is not None:
            found[SHORTHANDS.get(arg.name, arg.name)] = arg.value
    return found


def _points(node: object) -> ast.Output | ast.Tap | None:
    """The first `output` statement or `from` element in a body or element, nested bodies included."""
    if node is None or isinstance(node, ast.Tap):
        return node
    if isinstance(node, ast.Body):
        for stmt in node.statements:
            if isinstance(stmt, ast.Output):
                return stmt
            for link in stmt.links if isinstance(stmt, ast.Chain) else ():
                found = _points(link.element)
                if found is not None:
                    return found
        return None
    for attr in ("body", "shortcut", "then", "orelse", "attend"):  # groups, sections, merges, if, branches
        found = _points(getattr(node, attr, None))
        if found is not None:
            return found
    return None


def refuse_points(net: Network) -> None:
    """`--emit python` writes one tensor through each class's forward: a network with several outputs
    or a `from` is refused where the spec writes it (E0213), before anything is written."""
    from ..errors import Diagnostic, SpecError

    templates = [net.template, *dict.fromkeys(b.instance.template for b in net.record.blocks.values())]
    for template in templates:
        found = _points(template.body)
        if isinstance(found, ast.Output) and net.output_form == "tensor":
            continue  # `output x` alone, and no `from`: the one tensor the body ends with
        if found is not None:
            what = "several outputs" if isinstance(found, ast.Output) else "a chain that starts `from` a point"
            raise SpecError(
                [
                    Diagnostic(
                        "E0213",
                        f"`--emit python` cannot write {what} yet",
                        found.span,
                        help="compile to --emit pt2, torchscript, onnx or state, which take every output",
                    )
                ],
                net.sources,
            )


def eject(net: Network, model=None) -> str:
    """Standalone PyTorch source for `net` (`model`, the compiled module, is not needed)."""
    from ..version import __version__

    refuse_points(net)
    ej = Ejector(net)
    symbolic = isinstance(net.parameters.get("classes"), int) and not isinstance(net.parameters.get("classes"), bool)
    try:
        name, network, ctor = ej.network_class(symbolic)
    except Unsupported:
        if not symbolic:
            raise
        ej = Ejector(net)  # `classes` sizes more than the head: the class takes no num_classes
        name, network, ctor = ej.network_class(False)
    spec = os.path.basename(net.path)
    helpers = [inspect.getsource(HELPERS[h]).rstrip() for h in HELPERS if h in ej.uses]
    text = "\n".join(helpers + ej.order + [network])
    # isort's order, as ruff checks it: the standard library, then torch, `import` before `from`
    standard = [
        line
        for needed, line in (
            ("math.", "import math"),
            ("operator.", "import operator"),
            ("OrderedDict(", "from collections import OrderedDict"),
        )
        if needed in text
    ]
    third = (
        (["import torch"] if "torch." in text else [])
        + (["import torch.nn.functional as F"] if "F." in text else [])
        + ["from torch import nn"]
    )
    imports = standard + ([""] if standard else []) + third
    params = ", ".join(f"{k}={v!r}" for k, v in ctor.items())
    zeroed = ", and 0 where the spec says zero_init (the blocks do that)" if "nn.init.zeros_" in text else ""
    if "nn.Conv2d(" in text or "Conv2d" in text:
        how = f"convolutions Kaiming normal (fan_out), BatchNorm weight 1 and bias 0{zeroed}"
        init = [
            f"    model = {name}({', '.join(ctor)})",
            "    for m in model.modules():",
            "        if isinstance(m, nn.Conv2d):",
            '            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
            "    return model",
        ]
    else:  # no convolution: PyTorch's own initialisation is torchvision's
        how = f"PyTorch's defaults, BatchNorm weight 1 and bias 0{zeroed}"
        init = [f"    return {name}({', '.join(ctor)})"]
    flat = sorted(ej.flat_reasons)
    note = (
        "\n\n" + "\n".join(textwrap.wrap("Written flat (no class of their own): " + "; ".join(flat) + ".", 100))
        if flat
        else ""
    )
    doc = (
        f'"""{net.name}, from {spec}: written by resdsl {__version__} (`resdsl compile --emit python`).\n\n'
        "Needs torch alone. Assign names are resdsl's (and torchvision's or timm's, where those have\n"
        f'the model), so their state dicts load with strict=True.{note}\n"""'
    )
    build = "\n".join(
        [
            f"def build({params}) -> nn.Module:",
            docstring(f"{net.name}, initialised as torchvision does: {how}.", 4),
            *init,
        ]
    )
    return doc + "\n\n" + "\n\n\n".join(["\n".join(imports), *helpers, *ej.order, network, build]) + "\n"
