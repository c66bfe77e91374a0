"""The `branches` construct in an ejected class: one loop over the branches, or the branches one by one.

Where every branch makes the same modules, `branch` being a variable of their arguments
(`d=(branch + 1)`), the branches are one nn.ModuleList built by a comprehension and run by a
loop, as timm's SelectiveKernel; otherwise (Res2Net's last branch is another) each branch is
written out with `branch` a constant. `BranchWriter` is the part of the class writer
(eject_class.ClassWriter) that does this; it declares what it uses of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import syntax as ast
from ..errors import Span
from ..graph import Node
from ..ops import ALL, FunctionCall
from ..record import Event
from ..values import Value
from .eject_expr import Evaluator, Py, Unsupported, constant, py_string
from .eject_render import Assign, CallText, If, Line, Loop, Path, Run, function_source

if TYPE_CHECKING:
    from .eject import Ejector

MARK = "[branch]"  # the path component of a module named after the loop's branch: `paths.[branch].conv`


@dataclass
class Live:
    """One call being followed: its values, and how far through its recorded events the walk is."""

    env: dict[str, Value]
    events: tuple[Event, ...]
    prefix: str  # its module path and a dot ("" for the network)
    pos: int = 0

    def next(self) -> Event | None:
        return self.events[self.pos] if self.pos < len(self.events) else None


@dataclass(frozen=True)
class Tensor:
    var: str
    channels: Py | None  # None after a flatten, where the width is the record's
    rank: int
    fresh: bool = False  # made by a conv or BN: `out += identity` may write into it, as torchvision
    owned: bool = False  # nothing else reads it: an activation may work in place


class BranchWriter:
    """The branches part of eject_class.ClassWriter, which supplies the members declared here."""

    ej: Ejector
    lives: list[Live]
    free: dict[str, str]
    write: str
    init: list
    fwd: list
    slots: list
    uses: set
    carries: dict
    looping: bool

    @property
    def ev(self) -> Evaluator:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def known(self, expr: ast.Expr, what: str) -> Any:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def body(self, body: ast.Body, t: Tensor) -> Tensor:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def pop(self, span: Span, block: bool = False) -> list[Event]:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def pop_nodes(self, span: Span) -> list[Node]:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def channels(self, computed: Py | None, recorded: list[int]) -> Py:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def function(
        self,
        call: FunctionCall,
        operands: list[str],
        weights: str | None,
        dst: str,
        inplace: bool = False,
        listed: str | None = None,
    ) -> None:
        raise NotImplementedError  # pragma: no cover - ClassWriter

    def branches(self, el: ast.Branches, t: Tensor) -> Tensor:
        """Written out branch by branch (`branch` is a constant in each), each into its own variable."""
        args = {a.name: a.value for a in el.args if a.name is not None}
        count = self.known(next(a.value for a in el.args if a.name is None), "a number of branches")
        split = "split" in args and self.known(args["split"], "`split`")
        before = self.write
        looped = self.loop(el, t, count, split, args) if count > 1 else None
        if looped is not None:  # one loop over an nn.ModuleList of the branches, as timm's SelectiveKernel
            listed, one = looped
            outputs = [replace(one, var=f"{listed}[{i}]") for i in range(count)]
        else:
            listed, outputs = None, self.unrolled(el, t, count, split, args)
        weights = None
        if el.attend is not None:
            total = outputs[0]
            if count > 1:
                self.function(
                    forward(self.pop_nodes(el.span)[0]), [o.var for o in outputs], None, "total", listed=listed
                )
                total = Tensor("total", outputs[0].channels, t.rank)
            self.write = "attention"
            weights = self.body(el.attend, total).var
            self.write = before
        nodes = self.pop_nodes(el.span)
        call = forward(nodes[0])
        self.function(call, [o.var for o in outputs], weights, self.write, listed=listed)
        channels = outputs[0].channels
        widths = [o.channels for o in outputs if o.channels is not None]
        if call.function == "torch.cat" and channels is not None and len(widths) == count:  # side by side
            channels = channels * count if len({w.text for w in widths}) == 1 else sum(widths[1:], channels)
        return Tensor(self.write, self.channels(channels, [n.shape[0] for n in nodes if n.shape]), t.rank, owned=True)

    def unrolled(
        self, el: ast.Branches, t: Tensor, count: int, split: bool | tuple[int, ...], args: dict
    ) -> list[Tensor]:
        """The branches written out one by one (`branch` a constant in each), each into its own variable."""
        outputs: list[Tensor] = []
        before = self.write
        for index in range(count):
            for live in self.lives:
                live.env = {**live.env, "branch": index}
            source = t
            var = f"branch{index}"
            if split:  # equal shares of the channels (E0408 otherwise), as timm's torch.split, or given sizes
                self.pop(el.span)
                if index == 0:
                    self.uses.add("torch")
                    how = list(split) if isinstance(split, tuple) else None
                    self.fwd.append(
                        Line(f"splits = torch.split({t.var}, {how}, 1)")
                        if how
                        else Line(f"splits = torch.chunk({t.var}, {count}, 1)")
                    )
                width = (
                    constant(split[index], len(self.lives)) if isinstance(split, tuple) else _share(t.channels, count)
                )
                source = Tensor(f"splits[{index}]", width, t.rank)
            if "carry" in args:  # Res2Net: this branch's share plus the previous branch's output
                source = self.carry(self.ev(args["carry"]), el, source, outputs, var)
            self.write = var
            out = self.body(el.body, replace(source, owned=False))
            if out.var != var:
                self.fwd.append(Line(f"{var} = {out.var}"))
            outputs.append(replace(out, var=var))
        self.write = before
        for live in self.lives:
            live.env = {k: v for k, v in live.env.items() if k != "branch"}
        return outputs

    def loop(
        self, el: ast.Branches, t: Tensor, count: int, split: bool | tuple[int, ...], args: dict
    ) -> tuple[str, Tensor] | None:
        """The branches as one loop, where every branch makes the same modules with `branch` as a
        variable (`d=(branch + 1)`): (the list of the branches' outputs, one of them); None if not."""
        if "carry" in args or isinstance(split, tuple):  # the first branch has nothing to carry; shares differ
            return None
        sizes = set()
        for live in self.lives:
            end = live.pos
            while end < len(live.events) and not _branch_merge(live.events[end], el):
                end += 1
            sizes.add((end - live.pos) / count)
        size = sizes.pop() if len(sizes) == 1 else 0.5
        if size != int(size):
            return None
        size = int(size)
        saved = (
            self.lives,
            [live.pos for live in self.lives],
            len(self.init),
            len(self.fwd),
            list(self.slots),
            set(self.uses),
            self.free,
            self.write,
        )
        outer = self.lives
        self.lives = [
            Live({**live.env, "branch": b}, live.events, live.prefix, live.pos + b * size)
            for live in outer
            for b in range(count)
        ]
        self.free = {**self.free, "branch": "branch"}
        self.looping = True
        try:
            source = replace(t, channels=_repeat(t.channels, count), owned=False)
            if split:
                self.pop(el.span)
                source = Tensor("part", _share(source.channels, count), t.rank)
            self.write = "y"
            out = self.body(el.body, source)
            if any(
                live.pos != start + (i % count + 1) * size
                for i, (live, start) in enumerate(zip(self.lives, [p for p in saved[1] for _ in range(count)]))
            ):
                raise Unsupported("branches that make different ops")
            listed = self.looped(el, count, split, t, source, out, saved[2], saved[3])
            one = Tensor(listed + "[0]", _first(out.channels, count), t.rank, owned=True)
        except Unsupported:
            self.lives, self.init[saved[2] :], self.fwd[saved[3] :] = saved[0], [], []
            for live, pos in zip(saved[0], saved[1]):
                live.pos = pos
            self.slots[:], self.uses, self.free, self.write = saved[4], saved[5], saved[6], saved[7]
            self.looping = False
            return None
        self.looping = False
        self.lives, self.free, self.write = outer, saved[6], saved[7]
        for live, pos in zip(outer, saved[1]):
            live.pos = pos + count * size
        return listed, one

    def looped(
        self,
        el: ast.Branches,
        count: int,
        split: bool | tuple[int, ...],
        t: Tensor,
        source: Tensor,
        out: Tensor,
        init_mark: int,
        fwd_mark: int,
    ) -> str:
        """Lay the loop's modules out as one nn.ModuleList and its forward as a comprehension or loop."""
        made, fwd = self.init[init_mark:], self.fwd[fwd_mark:]
        del self.init[init_mark:], self.fwd[fwd_mark:]
        if split:
            self.uses.add("torch")
            self.fwd.append(Line(f"splits = torch.chunk({t.var}, {count}, 1)"))
        if not made:
            if out.var != source.var or not split:
                raise Unsupported("branches without modules")
            return "splits"
        if any(not isinstance(m, Assign) or MARK not in m.path for m in made):
            raise Unsupported("branches whose modules are not all below one name per branch")
        lists: dict[Path, list] = {}  # one nn.ModuleList per name (`convs[branch]`, `bns[branch]`: timm's Res2Net)
        for m in made:
            at = m.path.index(MARK)
            lists.setdefault(m.path[:at], []).append((m.path[at + 1 :], m.ctor))
        for path, modules in lists.items():
            one = branch_module(modules, self.uses)
            self.init.append(
                Assign(path, CallText("nn.ModuleList", (CallText("[for", (one, f"branch in range({count})")),)))
            )
        parts = "splits" if split else None
        runs = [r for r in fwd if isinstance(r, Run)]
        prefix, modules = next(iter(lists.items()))
        at = len(prefix)
        chain = (
            len(lists) == 1
            and len(runs) == len(fwd)
            and runs
            and runs[0].src == source.var
            and runs[-1].dst == out.var
            and all(r.src == runs[i - 1].dst for i, r in enumerate(runs) if i)
            and [r.path[at + 1 :] for r in runs] == [path for path, _ in modules]
        )
        name = "branches"
        if chain:  # every branch is one call of its module
            over = f"path, part in zip({{0}}, {parts}, strict=True)" if parts else "path in {0}"
            call = f"path({'part' if parts else t.var})"
            self.fwd.append(Line(f"{name} = [{call} for {over}]", (prefix,)))
        else:
            header = f"for branch, part in enumerate({parts}):" if parts else f"for branch in range({count}):"
            self.fwd += [Line(f"{name} = []"), Loop(header, fwd + [Line(f"{name}.append({out.var})")])]
        return name

    def carry(self, carry: Py, el: ast.Branches, source: Tensor, outputs: list[Tensor], var: str) -> Tensor:
        """The carry of one branch: in every call (a line), in none, or in some (a flag set in __init__)."""
        taken = [bool(s) for s in carry.samples]
        if not any(taken):
            return source
        outer = self.lives
        self.lives = [live for live, k in zip(outer, taken) if k]
        node = self.pop_nodes(el.span)[0]
        self.lives = outer
        line, used = function_source(forward(node), [source.var, outputs[-1].var], None, var)
        self.uses |= used
        if all(taken):
            self.fwd.append(Line(line))
        else:
            flag = self.carries.setdefault(carry.text, "carry" if not self.carries else f"carry{len(self.carries) + 1}")
            if not any(isinstance(i, Line) and i.text.startswith(f"self.{flag} = ") for i in self.init):
                self.init.append(Line(f"self.{flag} = {carry.text}"))
            self.fwd.append(If(f"self.{flag}", [Line(line)], [Line(f"{var} = {source.var}")]))
        return Tensor(var, source.channels, source.rank)


def _branch_merge(event: Event, el: ast.Branches) -> bool:
    """The merge of a `branches` construct (where its branches end), not a chunk or a carry."""
    node = event.node
    return event.span == el.span and node is not None and ALL[node.kind].merge and not node.attrs.get("carry")


def _repeat(p: Py | None, count: int) -> Py | None:
    return None if p is None else Py(p.node, tuple(s for s in p.samples for _ in range(count)), p.const)


def _first(p: Py | None, count: int) -> Py | None:
    """One branch's width per call, from the loop's (one per call and branch), if it is not the branch's."""
    if p is None:
        return None
    if "branch" in p.text.replace("branches", ""):
        raise Unsupported("branches of different widths")
    return Py(p.node, p.samples[::count], p.const)


def branch_module(modules: list[tuple[Path, CallText | str]], uses: set[str]) -> CallText | str:
    """One branch's modules as one expression: the module itself, or an nn.Sequential of them by name."""
    if len(modules) == 1 and modules[0][0] == ():
        return modules[0][1]
    groups: dict[str, list] = {}
    for path, ctor in modules:
        if not path:
            raise Unsupported("a branch that is a module and has modules below it")
        groups.setdefault(path[0], []).append((path[1:], ctor))
    children = [(key, branch_module(items, uses)) for key, items in groups.items()]
    if [key for key, _ in children] == [str(i) for i in range(len(children))]:
        return CallText("nn.Sequential", tuple(c for _, c in children))
    uses.add("OrderedDict")
    return CallText(
        "nn.Sequential",
        (
            CallText(
                "OrderedDict",
                (CallText("[", tuple(CallText("(", (py_string(key), child)) for key, child in children)),),
            ),
        ),
    )


def _share(channels: Py | None, count: int) -> Py | None:
    """One branch's share of the channels (`split = true`)."""
    return None if channels is None else channels // count


def forward(node: Node) -> FunctionCall:
    """The function a merge's or slice's forward calls (its op's definition)."""
    call = ALL[node.kind].forward(node.attrs, node.shape or ())
    assert call is not None, node.kind
    return call
