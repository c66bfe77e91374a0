"""Lays out what `Body` collected (eject_body.py) as the lines of __init__ and forward.

Decided here, once the whole class is known: a named group whose children are
numbered 0, 1, ... in order is built in one `nn.Sequential(...)` (otherwise it
is filled with `add_module`), and a child is reached as `self.g[1]` only where
positions and names agree (otherwise `self.g.get_submodule("1")`).
"""

from __future__ import annotations

import textwrap

from .eject_ir import Container, If, Line, Loop, Module, Path, Run
from .eject_expr import Call, flat, fmt, py_string

WIDTH = 120  # torchvision's line length


class Layout:
    def __init__(self, labelled: set[Path]):
        self.labelled = labelled  # groups whose children are not all numbered in order

    def ref(self, path: Path) -> str:
        out = "self"
        for i, part in enumerate(path):
            if part.isdigit() and path[:i] not in self.labelled:
                out += f"[{part}]"
            elif part.isidentifier():
                out += f".{part}"
            else:
                out += f".get_submodule({py_string(part)})"
        return out

    def line(self, item: Line) -> str:
        return item.text.format(*(self.ref(p) for p in item.refs))

    # ---- __init__ ---------------------------------------------------------------------------
    def init(self, items: list, indent: int) -> list[str]:
        out: list[str] = []
        pad = " " * indent
        for item in items:
            if isinstance(item, Module):
                out += self.assign(item.path, item.ctor, indent, item.split)
            elif isinstance(item, Container):
                built = self.sequential(item)
                if built is not None:
                    call, after = built
                    out += self.assign(item.path, call, indent)
                    out += self.init(after, indent)
                else:
                    out += self.assign(item.path, "nn.Sequential()", indent)
                    out += self.init(item.items, indent)
            elif isinstance(item, Line):
                out.append(pad + self.line(item))
            elif isinstance(item, Loop):
                out.append(pad + item.header)
                out += self.init(item.items, indent + 4)
            else:
                out += self.condition(item, indent, self.init)
        return out

    def assign(self, path: Path, ctor: "Call | str", indent: int, split: bool = False) -> list[str]:
        pad = " " * indent
        if len(path) == 1:
            head = f"self.{path[0]} = "
            return (pad + head + fmt(ctor, indent, WIDTH, len(head), split)).split("\n")
        head = f"{self.ref(path[:-1])}.add_module({py_string(path[-1])}, "
        return (pad + head + fmt(ctor, indent, WIDTH, len(head) + 1, split) + ")").split("\n")

    def sequential(self, container: Container) -> tuple[Call, list] | None:
        """`nn.Sequential(a, b, ...)` and the lines that follow it (zero-inits), if the group's
        children are numbered in order and made unconditionally; else None."""
        children = [i for i in container.items if not isinstance(i, Line)]
        after = [i for i in container.items if isinstance(i, Line)]
        if [getattr(c, "path", (None,))[-1] for c in children] != [str(i) for i in range(len(children))]:
            return None
        args: list = []
        for child in children:
            if isinstance(child, Module) and isinstance(child.ctor, Call):
                args.append(child.ctor)
            elif isinstance(child, Container) and (inner := self.sequential(child)) is not None:
                args.append(inner[0])
                after += inner[1]
            else:
                return None
        return Call("nn.Sequential", tuple(args)), after

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
        """`self.se = SqueezeExcite(...) if se_ratio > 0 else None`, where that is the whole `if`."""
        if len(item.then) == 1 and len(item.orelse) == 1 and all(isinstance(i, Module) for i in item.then +
                                                                   item.orelse):
            made, empty = item.then[0], item.orelse[0]
            if made.path == empty.path and empty.ctor == "None" and isinstance(made.ctor, Call):
                text = self.assign(made.path, f"{flat(made.ctor)} if {test} else None", indent)
                if len(text) == 1 and len(text[0]) <= WIDTH:
                    return text[0]
        return None

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, items: list, indent: int) -> list[str]:
        out: list[str] = []
        pad = " " * indent
        for item in items:
            if isinstance(item, Run):
                out.append(f"{pad}{item.dst} = {self.ref(item.path)}({item.src})")
            elif isinstance(item, Line):
                out.append(pad + self.line(item))
            else:
                out += self.condition(item, indent, self.forward)
        return out


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
    lines = [part for line in text.split("\n")
             for part in (textwrap.wrap(line, WIDTH - indent - 3) if line.strip() else [""])]
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
