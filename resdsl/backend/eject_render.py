"""What an ejected class is made of, and how it is laid out as text.

__init__ is a list of `Assign` (the module, or a constructor parameter, at a path below self),
`Container` (a named group: an nn.Sequential), `Line` and `If`; forward a list of `Run`
(`dst = self.<path>(src)`), `Line`, `If` and `Loop`. Constructor calls are `CallText`, laid out
in torchvision's style by `fmt`; a merge's line comes from its op's FunctionCall (`function_source`).
Decided here, once the whole class is known: a group whose modules are all built unconditionally
is one `nn.Sequential(...)` (by position, or by name through an OrderedDict; otherwise it is
filled with `add_module`) and is called whole where forward runs its children one after the
other; a child is reached as `self.g[1]` only where positions and names agree; a width that sizes
two modules or more becomes a local variable (`hoist`).
"""

from __future__ import annotations

import ast as pyast
import textwrap
from dataclasses import dataclass
from typing import Any

from ..ops import FunctionCall, ModuleCall
from .eject_expr import Py, py_string

WIDTH = 120  # torchvision's line length
Path = tuple[str, ...]
# PyTorch's own defaults: arguments equal to them are left out.
TORCH_DEFAULTS = {
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "groups": 1,
    "bias": True,
    "eps": 1e-5,
    "momentum": 0.1,
    "ceil_mode": False,
    "count_include_pad": True,
    "inplace": False,
}
POOLS = ("nn.MaxPool2d", "nn.AvgPool2d")
PARAMETER = "nn.Parameter"  # a bare parameter's constructor (layer scale): no nn.Sequential can hold it


@dataclass
class Assign:  # __init__: the module (or a parameter, or None) at `path`
    path: Path
    ctor: CallText | str
    split: bool = False  # one argument a line (a stage's blocks)


@dataclass
class Container:  # __init__: a named group, an nn.Sequential
    path: Path
    items: list


@dataclass
class Line:  # `text` with `{0}`, `{1}` standing for the modules at `refs`
    text: str
    refs: tuple = ()


@dataclass
class If:
    test: str
    then: list
    orelse: list
    refs: tuple = ()


@dataclass
class Loop:  # forward: a `for` loop over the branches of a `branches` construct
    header: str
    items: list


@dataclass
class Run:  # forward: `dst = self.<path>(src)`
    path: Path
    src: str
    dst: str


# ---- modules and functions as source --------------------------------------------------------


def _text(value: Any) -> str:
    return value.text if isinstance(value, Py) else repr(value)


def _same(value: Any, other: Any) -> bool:
    if isinstance(value, Py):
        if isinstance(other, Py):
            return value.text == other.text
        return value.const and value.value == other and type(value.value) is type(other)
    if isinstance(other, Py):
        return _same(other, value)
    return value == other and type(value) is type(other)


def module_source(call: ModuleCall) -> CallText:
    """A module description as source: the first `positional` arguments bare, the rest as keywords,
    leaving out those equal to PyTorch's defaults (a pool's stride defaults to its kernel)."""
    values = dict(call.args)
    defaults = {**TORCH_DEFAULTS, **dict(call.defaults)}
    out: list = []
    for i, (name, value) in enumerate(call.args):
        text = _text(value)
        if i < call.positional:
            out.append(text)
        elif name == "stride" and call.constructor in POOLS:
            if not _same(value, values["kernel_size"]):
                out.append((name, text))
        elif not (name in defaults and _same(value, defaults[name])):
            out.append((name, text))
    return CallText(call.constructor, tuple(out))


_OPERATORS = {"operator.add": "+", "operator.mul": "*"}


def function_source(
    call: FunctionCall,
    operands: list[str],
    weights: str | None,
    dst: str,
    inplace: bool = False,
    listed: str | None = None,
) -> tuple[str, set[str]]:
    """The forward line of a merge or a channel slice (its op's FunctionCall), and what it needs;
    `listed` names a list that holds the operands (the branches of a loop)."""
    extra = [_text(a) for a in call.args] + [f"{k}={_text(v)}" for k, v in call.kwargs]
    module, _, function = call.function.partition(".")
    used = {function} if module == "layers" else {"torch"} if module == "torch" else set()
    name = function if module == "layers" else call.function
    if call.inputs == "list":
        first = [weights] if call.weights_first else []
        operand_list = listed or "[" + ", ".join(operands) + "]"
        return f"{dst} = {name}({', '.join([w for w in first if w] + [operand_list] + extra)})", used
    if call.inputs == "one":
        return f"{dst} = {name}({', '.join([operands[0]] + extra)})", used
    if inplace and call.inplace and operands[0] == dst and len(operands) == 2:
        return f"{dst} {_OPERATORS[call.function]}= {operands[1]}", used
    if call.function in _OPERATORS:
        return f"{dst} = {f' {_OPERATORS[call.function]} '.join(operands)}", used
    out = operands[0]
    for operand in operands[1:]:
        out = f"{name}({', '.join([out, operand] + extra)})"
    return f"{dst} = {out}", used


# ---- calls, laid out --------------------------------------------------------------------------


@dataclass(frozen=True)
class CallText:
    """`func(arg, ..., key=value)`, where an argument may itself be a CallText (e.g. a downsample)."""

    func: str
    args: tuple  # str | CallText | tuple[str, str | CallText] (a keyword argument)


def fmt(node: str | CallText, indent: int = 0, width: int = 120, used: int = 0, split: bool = False) -> str:
    """Source for `node` on a line indented by `indent` after `used` other characters. In order of
    preference: one line; a last argument that is an nn.Sequential opened at the end of the line
    (torchvision's `downsample=nn.Sequential(` style); the arguments packed under the opening
    parenthesis; one argument a line. `split` asks for the last."""
    if isinstance(node, str):
        return node
    one = flat(node)
    if not split and indent + used + len(one) <= width:
        return one
    pad = " " * (indent + 4)
    if node.func == "[for":
        return f"[\n{pad}{fmt(node.args[0], indent + 4, width)}\n{pad}for {node.args[1]}\n{' ' * indent}]"
    if node.func == "(" and node.args:  # a pair such as ("conv", nn.Conv2d(...)): the last item wrapped
        head = "(" + "".join(flat(a) + ", " for a in node.args[:-1])
        return head + fmt(node.args[-1], indent, width, used + len(head)) + ")"
    if node.func in BRACKETS:
        opening, closing = BRACKETS[node.func]
        lines = [pad + _arg(a, indent + 4, width) + "," for a in node.args]
        return opening + "\n" + "\n".join(lines) + "\n" + " " * indent + closing
    last = node.args[-1] if node.args else None
    value = last[1] if isinstance(last, tuple) else last
    sequential = isinstance(value, CallText) and value.func == "nn.Sequential"
    alone = isinstance(value, CallText) and len(node.args) == 1  # `nn.ModuleList([`, `OrderedDict([`
    if not split and isinstance(value, CallText) and value.args and (sequential or alone):
        head = (
            f"{node.func}("
            + "".join(_flat_arg(a) + ", " for a in node.args[:-1])
            + (f"{last[0]}=" if isinstance(last, tuple) else "")
        )
        if indent + used + len(head) + len(value.func) + 1 <= width:
            # torchvision's downsample: the Sequential one module a line; anything else as it fits
            return head + fmt(value, indent, width, used + len(head), split=sequential and not alone) + ")"
    if not split:
        packed = _packed(node, indent + used + len(node.func) + 1, width)
        if packed is not None:
            return packed
    pad = " " * (indent + 4)
    lines = [pad + _arg(a, indent + 4, width) + "," for a in node.args]
    return f"{node.func}(\n" + "\n".join(lines) + "\n" + " " * indent + ")"


def _packed(node: CallText, column: int, width: int) -> str | None:
    """The arguments filled into lines that start under the opening parenthesis, if that fits in 3 lines."""
    lines, current = [], ""
    for arg in (_flat_arg(a) for a in node.args):
        if current and column + len(current) + len(arg) + 1 > width:
            lines.append(current.rstrip())
            current = ""
        current += arg + ", "
    lines.append(current[:-2] + ")")
    if len(lines) > 3 or any(column + len(line) > width for line in lines):
        return None
    return f"{node.func}(" + ("\n" + " " * column).join(lines)


BRACKETS = {"[": ("[", "]"), "(": ("(", ")")}  # a CallText with these as `func` is a list or tuple display


def flat(node: str | CallText) -> str:
    """`node` on one line."""
    if isinstance(node, str):
        return node
    if node.func == "[for":  # a list comprehension: [element for clause]
        return f"[{flat(node.args[0])} for {node.args[1]}]"
    opening, closing = BRACKETS.get(node.func, (node.func + "(", ")"))
    return f"{opening}{', '.join(_flat_arg(a) for a in node.args)}{closing}"


def _flat_arg(arg) -> str:
    return f"{arg[0]}={flat(arg[1])}" if isinstance(arg, tuple) else flat(arg)


def _arg(arg, indent: int, width: int) -> str:
    if isinstance(arg, tuple):
        key, value = arg
        return f"{key}={fmt(value, indent, width, used=len(key) + 1)}"
    return fmt(arg, indent, width)


# ---- classes, laid out ------------------------------------------------------------------------


def _dump(text: str) -> str | None:
    try:
        return pyast.dump(pyast.parse(text, mode="eval").body)
    except SyntaxError:
        return None


def hoist(items: list, taken: set[str], out: str | None = None) -> tuple[list, list[str]]:
    """Widths that size two modules or more, worked out once in a local variable as torchvision's
    `width = int(planes * (base_width / 64.0)) * groups`: (the items using it, the assignments)."""
    counts: dict[str, int] = {}
    texts: dict[str, str] = {}
    for call in _calls(items):
        for arg in call.args:
            text = arg[1] if isinstance(arg, tuple) else arg
            if isinstance(text, str) and text:
                try:
                    node = pyast.parse(text, mode="eval").body
                except SyntaxError:
                    continue
                names = {n.id for n in pyast.walk(node) if isinstance(n, pyast.Name)}
                if isinstance(node, pyast.BinOp) and names and "branch" not in names:  # not the loop's variable
                    key = pyast.dump(node)
                    counts[key] = counts.get(key, 0) + 1
                    texts[key] = text
    chosen: dict[str, str] = {}
    out_key = _dump(out) if out else None
    for key, count in counts.items():
        if count >= 2:
            wanted = ("out_channels",) if key == out_key else ("width", "mid_channels")
            chosen[key] = next(
                n
                for n in (*wanted, *(f"{wanted[-1]}{i}" for i in range(2, 99)))
                if n not in taken and n not in chosen.values()
            )
    if not chosen:
        return items, []

    class Replace(pyast.NodeTransformer):
        def visit_BinOp(self, node: pyast.BinOp) -> pyast.AST:
            key = pyast.dump(node)
            if key in chosen:
                return pyast.Name(chosen[key], pyast.Load())
            return self.generic_visit(node)

    def text_of(text: str) -> str:
        try:
            return pyast.unparse(Replace().visit(pyast.parse(text, mode="eval")).body)
        except SyntaxError:
            return text

    def call_of(call: CallText | str) -> CallText | str:
        if not isinstance(call, CallText):
            return call
        args = tuple(
            (a[0], call_of(a[1]) if isinstance(a[1], CallText) else text_of(a[1]))
            if isinstance(a, tuple)
            else call_of(a)
            if isinstance(a, CallText)
            else text_of(a)
            for a in call.args
        )
        return CallText(call.func, args)

    def walk(items: list) -> list:
        return [
            Assign(i.path, call_of(i.ctor), i.split)
            if isinstance(i, Assign)
            else If(text_of(i.test), walk(i.then), walk(i.orelse), i.refs)
            if isinstance(i, If)
            else i
            for i in items
        ]

    return walk(items), [f"{name} = {texts[key]}" for key, name in chosen.items()]


def _calls(items: list):
    for item in items:
        if isinstance(item, Assign) and isinstance(item.ctor, CallText):
            yield from _nested(item.ctor)
        elif isinstance(item, If):
            yield from _calls(item.then)
            yield from _calls(item.orelse)


def _nested(call: CallText):
    yield call
    for arg in call.args:
        value = arg[1] if isinstance(arg, tuple) else arg
        if isinstance(value, CallText):
            yield from _nested(value)


def nest(items: list) -> list:
    """Modules below a group moved into the group's Container, made where the group is first needed
    (before an `if` that adds to it: the `if` then adds its modules to the container by path)."""
    out: list = []
    found: dict[Path, Container] = {}

    def container(path: Path) -> Container:
        if path not in found:
            made = found[path] = Container(path[-1:], [])
            (out if len(path) == 1 else container(path[:-1]).items).append(made)
        return found[path]

    for item in items:
        if isinstance(item, Assign) and len(item.path) > 1:
            container(item.path[:-1]).items.append(Assign(item.path[-1:], item.ctor, item.split))
        elif isinstance(item, If):
            for path in _deep(item):
                container(path[:-1])
            out.append(item)
        else:
            out.append(item)
    return out


def _deep(item: If) -> list[Path]:
    """The paths of modules below a group that an `if` (and the `if`s inside it) makes."""
    found = []
    for child in item.then + item.orelse:
        if isinstance(child, Assign) and len(child.path) > 1:
            found.append(child.path)
        elif isinstance(child, If):
            found += _deep(child)
    return found


def _children(items: list, prefix: Path, into: dict[Path, list[str]]) -> None:
    for item in items:
        if isinstance(item, Container):
            path = prefix + item.path
            into.setdefault(path, []).extend(c.path[0] for c in item.items if isinstance(c, (Assign, Container)))
            _children(item.items, path, into)
        elif isinstance(item, If):
            for path in _deep(item):
                names = into.setdefault(path[:-1], [])
                if path[-1] not in names:
                    names.append(path[-1])


class Layout:
    def __init__(self, init: list):
        self.items = nest(init)
        self.children: dict[Path, list[str]] = {}
        _children(self.items, (), self.children)
        self.built: set[Path] = set()  # groups built whole, as an nn.Sequential: forward may call them whole

    def numbered(self, path: Path) -> bool:
        return self.children.get(path) == [str(i) for i in range(len(self.children.get(path, [])))]

    def ref(self, path: Path) -> str:
        out = "self"
        for i, part in enumerate(path):
            if part == "[branch]":  # a module of the loop over branches: the loop's own
                out += "[branch]"
            elif part.isdigit() and self.numbered(path[:i]):
                out += f"[{part}]"
            elif part.isidentifier():
                out += f".{part}"
            else:
                out += f".get_submodule({py_string(part)})"
        return out

    def line(self, item: Line) -> str:
        return item.text.format(*(self.ref(p) for p in item.refs))

    # ---- __init__ ---------------------------------------------------------------------------
    def init(self, indent: int) -> list[str]:
        return self._init(self.items, (), indent)

    def _init(self, items: list, prefix: Path, indent: int) -> list[str]:
        out: list[str] = []
        pad = " " * indent
        for item in items:
            if isinstance(item, Assign):
                out += self.assign(prefix + item.path, item.ctor, indent, item.split)
            elif isinstance(item, Container):
                path = prefix + item.path
                built = self.sequential(item, path)
                if built is not None:
                    out += self.assign(path, built, indent)
                else:
                    out += self.assign(path, "nn.Sequential()", indent)
                    out += self._init(item.items, path, indent)
            elif isinstance(item, Line):
                out.append(pad + self.line(item))
            else:
                out += self.condition(item, indent, lambda items, i: self._init(items, prefix, i))
        return out

    def assign(self, path: Path, ctor: CallText | str, indent: int, split: bool = False) -> list[str]:
        pad = " " * indent
        if isinstance(ctor, CallText) and ctor.func == PARAMETER and not (len(path) == 1 and path[0].isidentifier()):
            # a bare parameter (layer scale) below a group, or under a name `self.` cannot take
            head = f"{self.ref(path[:-1])}.register_parameter({py_string(path[-1])}, "
            return (pad + head + fmt(ctor, indent, WIDTH, len(head) + 1, split) + ")").split("\n")
        if len(path) == 1 and path[0].isidentifier():
            head = f"self.{path[0]} = "
            return (pad + head + fmt(ctor, indent, WIDTH, len(head), split)).split("\n")
        # a nested child, or a name Python cannot write after `self.` (a quoted `"block1-0"`)
        head = f"{self.ref(path[:-1])}.add_module({py_string(path[-1])}, "
        return (pad + head + fmt(ctor, indent, WIDTH, len(head) + 1, split) + ")").split("\n")

    def sequential(self, container: Container, path: Path) -> CallText | None:
        """`nn.Sequential(a, b, ...)` (children numbered 0, 1, ... in order) or `nn.Sequential(OrderedDict(
        [("conv", a), ...]))` if the group's children are all built here, unconditionally."""
        if any(not isinstance(c, (Assign, Container)) for c in container.items) or [
            c.path[0] for c in container.items
        ] != self.children.get(path):
            return None
        args: list = []
        for child in container.items:
            if isinstance(child, Assign) and isinstance(child.ctor, CallText) and child.ctor.func != PARAMETER:
                args.append(child.ctor)
            elif isinstance(child, Container) and (inner := self.sequential(child, path + child.path)) is not None:
                args.append(inner)
            else:
                return None
        self.built.add(path)
        if self.numbered(path):
            return CallText("nn.Sequential", tuple(args))
        pairs = tuple(CallText("(", (py_string(c.path[0]), a)) for c, a in zip(container.items, args))
        return CallText("nn.Sequential", (CallText("OrderedDict", (CallText("[", pairs),)),))

    def condition(self, item: If, indent: int, render) -> list[str]:
        pad = " " * indent
        test = item.test.format(*(self.ref(p) for p in item.refs))
        then, orelse = render(item.then, indent + 4), render(item.orelse, indent + 4)
        inline = self.inline(item, test, indent)
        if inline is not None:
            return [inline]
        if not then and not orelse:
            return []
        if not then:
            then, orelse, test = orelse, then, _negate(test)
        return [f"{pad}if {test}:", *then] + ([f"{pad}else:", *orelse] if orelse else [])

    def inline(self, item: If, test: str, indent: int) -> str | None:
        """`self.aa = nn.AvgPool2d(2) if stride == 2 else None`, where that is the whole `if`."""
        if (
            len(item.then) == 1
            and len(item.orelse) == 1
            and all(isinstance(i, Assign) for i in item.then + item.orelse)
        ):
            made, empty = item.then[0], item.orelse[0]
            if made.path == empty.path and empty.ctor == "None" and isinstance(made.ctor, CallText):
                text = self.assign(made.path, f"{flat(made.ctor)} if {test} else None", indent)
                if len(text) == 1 and len(text[0]) <= WIDTH:
                    return text[0]
        return None

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, items: list, indent: int) -> list[str]:
        out: list[str] = []
        pad = " " * indent
        for item in self.whole(items):
            if isinstance(item, Run):
                out.append(f"{pad}{item.dst} = {self.ref(item.path)}({item.src})")
            elif isinstance(item, Line):
                out.append(pad + self.line(item))
            elif isinstance(item, Loop):
                out += [pad + item.header] + self.forward(item.items, indent + 4)
            else:
                out += self.condition(item, indent, self.forward)
        return out

    def whole(self, items: list) -> list:
        """Runs of every child of a group built whole, in order and one into the next: one call of the group."""
        out: list = []
        i = 0
        while i < len(items):
            item = items[i]
            group = item.path[:-1] if isinstance(item, Run) else ()
            names = self.children.get(group, [])
            if group in self.built and names and item.path[-1] == names[0]:
                n = len(names)
                run = items[i : i + n]
                if len(run) == n and all(
                    isinstance(r, Run) and r.path == group + (names[k],) and (k == 0 or r.src == run[k - 1].dst)
                    for k, r in enumerate(run)
                ):
                    out.append(Run(group, item.src, run[-1].dst))
                    i += n
                    continue
            out.append(item)
            i += 1
        return out if out == items else self.whole(out)


def _negate(test: str) -> str:
    if test.endswith(" is not None"):
        return test[: -len(" is not None")] + " is None"
    if test.endswith(" is None"):
        return test[: -len(" is None")] + " is not None"
    return f"not ({test})"


def docstring(text: str, indent: int) -> str:
    """A docstring at `indent`, its long lines wrapped (a comment's own line breaks are kept)."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    pad = " " * indent
    lines = [
        part
        for line in text.split("\n")
        for part in (textwrap.wrap(line, WIDTH - indent - 3) if line.strip() else [""])
    ]
    if len(lines) == 1 and indent + len(lines[0]) + 6 <= WIDTH:
        return f'{pad}"""{lines[0]}"""'
    return "\n".join([f'{pad}"""{lines[0]}'] + [pad + line if line else "" for line in lines[1:]] + [f'{pad}"""'])


def define(name: str, args: list[str], indent: int) -> list[str]:
    pad = " " * indent
    one = f"{pad}def {name}({', '.join(args)}):"
    if len(one) <= WIDTH:
        return [one]
    lines, current = [], f"{pad}def {name}("
    for arg in args:
        piece = arg + ", "
        if len(current) + len(piece) > WIDTH:
            lines.append(current.rstrip())
            current = pad + " " * (len(name) + 5)
        current += piece
    return lines + [current.rstrip(", ") + "):"]
