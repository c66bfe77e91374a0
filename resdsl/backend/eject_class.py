"""One ejected class: a block template specialised to its calls in one network, or the network.

`ClassWriter` walks the template's statements once over all its calls in the record
(resdsl/record.py) at the same time, as partial evaluation: what the calls agree on is a
constant (an `if` on constants keeps only its branch), what varies is a constructor parameter
(eject_expr.py). It does not name or size anything itself: each op, merge and nested call it
meets is the next event of every live call (`Live`), whose recorded name and module the walk
checks its expressions against, so the class computes what the compiled network does, call by
call, or the walk raises Unsupported and that block is written flat (eject.py).
"""

from __future__ import annotations

import ast as py
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .. import syntax as ast
from ..errors import Span
from ..graph import FUNCTIONS, Node
from ..ops import ALL, OPS, PARAMETERS, FunctionCall, ModuleCall, match_options
from ..record import BlockRecord, Event
from ..values import Symbol, same_value
from .eject_branches import MARK, BranchWriter, Live, Tensor, forward
from .eject_expr import Evaluator, Py, Unsupported, constant, identifier, negate, py_string
from .eject_render import Assign, CallText, If, Line, Path, Run, flat, function_source, module_source

if TYPE_CHECKING:
    from .eject import Ejector


@dataclass
class ClassWriter(BranchWriter):
    ej: Ejector
    lives: list[Live]
    free: dict[str, str]  # varying parameter -> its Python name
    write: str  # the variable ops write: `out` in a block, `x` in the network
    network: bool = False
    init: list = field(default_factory=list)
    fwd: list = field(default_factory=list)
    slots: list = field(default_factory=list)  # (constructor parameter, module path) of inserted shortcuts
    uses: set = field(default_factory=set)  # helper classes and functions the class needs
    taps: dict = field(default_factory=dict)  # label -> the variable kept for `residual(project_from = ...)`
    depth: int = 0
    flags: int = 0
    carries: dict = field(default_factory=dict)  # a carry's test -> the attribute forward reads it from
    looping: bool = False  # inside the loop over branches: names may follow `branch`

    # ---- values -----------------------------------------------------------------------------
    @property
    def ev(self) -> Evaluator:
        return Evaluator([live.env for live in self.lives], self.free, self.ej.symbols, self.ej.class_ref)

    def known(self, expr: ast.Expr, what: str) -> Any:
        value = self.ev(expr)
        if not value.const:
            raise Unsupported(f"{what} that varies between the calls")
        return value.value

    def pop(self, span: Span, block: bool = False) -> list[Event]:
        """The next event of every live call: it must be what the spec writes at `span`."""
        found = []
        for live in self.lives:
            event = live.next()
            if event is None or event.span != span or block != (event.block is not None):
                raise Unsupported("a call whose recorded ops do not follow its template")  # pragma: no cover
            live.pos += 1
            found.append(event)
        return found

    def pop_nodes(self, span: Span) -> list[Node]:
        """The next op or merge of every live call."""
        return [e.node for e in self.pop(span) if e.node is not None]

    def pop_blocks(self, span: Span) -> tuple[Path, list[BlockRecord]]:
        """The next block call of every live call, and its module path."""
        events = self.pop(span, block=True)
        return self.relative(events), [e.block for e in events if e.block is not None]

    def relative(self, events: list[Event]) -> Path:
        names = [e.name[len(live.prefix) :].split(".") for e, live in zip(events, self.lives)]
        if all(n == names[0] for n in names):
            return tuple(names[0])
        if self.looping and len({len(n) for n in names}) == 1:  # `paths[branch]`: named by the loop's branch
            differ = [i for i in range(len(names[0])) if len({n[i] for n in names}) > 1]
            if len(differ) == 1 and all(n[differ[0]] == str(live.env["branch"]) for n, live in zip(names, self.lives)):
                return tuple(names[0][: differ[0]]) + (MARK,) + tuple(names[0][differ[0] + 1 :])
        raise Unsupported("a module whose name differs between the calls")

    # ---- statements -------------------------------------------------------------------------
    def body(self, body: ast.Body, t: Tensor) -> Tensor:
        for stmt in body.statements:
            if isinstance(stmt, ast.Require) and not self.network:
                test = self.ev(stmt.test)
                if not test.const:  # a check on the constructor's arguments, as torchvision's BasicBlock
                    message = stmt.message or "a requirement of the block does not hold"
                    self.init.append(If(negate(test).text, [Line(f"raise ValueError({message!r})")], []))
            elif isinstance(stmt, ast.Chain):
                for link in stmt.links:
                    t = self.element(link, t)
            # shortcut, norm and defaults statements: their effect is in the record (kinds, arguments)
        return t

    def element(self, link: ast.Link, t: Tensor) -> Tensor:
        el = link.element
        if isinstance(el, ast.Call):
            name = el.name
            if name in self.lives[0].env:
                held = self.known(ast.Name(name, el.name_span), "a block given by a parameter")
                name = held.name if isinstance(held, Symbol) else name
            if name in OPS and name not in self.ej.symbols:
                return self.op(el, link, t)
            return self.call(el, t) if el.repeat is None else self.stage(el, t)
        if isinstance(el, ast.Residual):
            return self.residual(el, t)
        if isinstance(el, ast.Cond):
            return self.cond(el, t)
        if isinstance(el, ast.Branches):
            return self.branches(el, t)
        assert not isinstance(el, ast.Tap)  # `from` is refused before anything is written (eject.refuse_points)
        return self.body(el.body, t)  # a group or a section: its names are in the record

    # ---- ops --------------------------------------------------------------------------------
    def op(self, call: ast.Call, link: ast.Link, t: Tensor) -> Tensor:
        events = self.pop(call.span)
        path = self.relative(events)
        nodes = [e.node for e in events if e.node is not None]
        kinds = {node.kind for node in nodes}
        if len(kinds) != 1:
            raise Unsupported("an op whose kind differs between the calls")
        kind = kinds.pop()
        op = ALL[kind]
        attrs = self.attributes(kind, call)
        channels = self.channels(t.channels, [_width(node.in_shape) for node in nodes])
        if kind in PARAMETERS:
            return self.parameter_op(kind, attrs, channels, nodes, path, link, t)
        if kind in FUNCTIONS:  # a function of the forward, no module (`slice`: torch.narrow)
            return self.function_op(op, attrs, channels, link, t, nodes, path)
        inplace = op.inplace and t.owned
        module = op.module(attrs, channels, t.rank, inplace)
        self.check(module, nodes, inplace)
        self.init.append(Assign(path, module_source(module)))
        if not module.constructor.startswith("nn."):
            self.uses.add(module.constructor)
        zero = attrs.get("zero_init")
        if zero is not None and not (zero.const and not zero.value):  # the residual branch starts at zero
            line = Line("nn.init.zeros_({0}.weight)", (path,))
            self.init.append(line if zero.const else If(zero.text, [line], []))
        dst = self.taps.get(link.label, self.write)
        src = t.var
        if kind == "fc" and t.rank > 1:  # a pooled C×1×1 map: flatten, as torchvision does
            self.uses.add("torch")
            self.fwd.append(Line(f"{dst} = torch.flatten({src}, 1)"))
            src = dst
        self.fwd.append(Run(path, src, dst))
        out = op.out_channels(attrs, channels, t.rank)
        out = self.channels(
            out if isinstance(out, Py) or out is None else constant(out, len(self.lives)),
            [_width(node.shape) for node in nodes],
        )
        owned = (t.owned if op.aliasing else True) and link.label not in self.taps
        return Tensor(dst, out, op.out_rank(t.rank), fresh=op.overwritable, owned=owned)

    def parameter_op(
        self, kind: str, attrs: dict, channels: Py, nodes: list[Node], path: Path, link: ast.Link, t: Tensor
    ) -> Tensor:
        """An op that is a bare parameter of its container (`layer_scale`): `nn.Parameter(torch.full(...))`
        at its path in __init__, and its function of the input and the parameter in forward."""
        flags = [o.name for o in ALL[kind].options if o.type == "bool" and not attrs[o.name].const]
        if flags:  # the parameter's shape would differ between the calls
            raise Unsupported(f"`{flags[0]}` of `{kind}` that differs between the calls")
        described = ALL[kind].parameter(attrs, channels, t.rank)
        assert described is not None  # the ops in PARAMETERS are parameters
        for i, node in enumerate(nodes):  # the parameter written must be, call by call, the compiled one's
            shape = node.in_shape or ()
            expected = ALL[kind].parameter(node.attrs, _width(shape), len(shape))
            assert expected is not None  # the same kind
            got = [d.samples[i] if isinstance(d, Py) else d for d in described.shape]
            start = described.fill.samples[i] if isinstance(described.fill, Py) else described.fill
            if got != list(expected.shape) or start != expected.fill:
                raise Unsupported(f"the parameter of `{kind}` that the template's expressions do not give")
        dims = [d.text if isinstance(d, Py) else repr(d) for d in described.shape]
        size = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        fill = described.fill.text if isinstance(described.fill, Py) else repr(described.fill)
        self.init.append(Assign(path, CallText("nn.Parameter", (CallText("torch.full", (size, fill)),))))
        self.uses |= {"torch", described.function.partition(".")[2]}
        dst = self.taps.get(link.label, self.write)
        leaf, function = path[-1], described.function.partition(".")[2]
        attribute = f".{leaf}" if leaf.isidentifier() else f".get_parameter({leaf!r})"
        self.fwd.append(Line(f"{dst} = {function}({t.var}, {{0}}{attribute})", (path[:-1],)))
        return Tensor(dst, channels, t.rank, fresh=True, owned=link.label not in self.taps)

    def function_op(self, op, attrs: dict, channels: Py, link: ast.Link, t: Tensor, nodes: list, path: Path) -> Tensor:
        """An op that is a function in the forward (`slice`), its arguments written where they vary
        between the calls as attributes the constructor sets (`self.slice_start = keep`)."""
        out = self.channels(op.out_channels(attrs, channels, t.rank), [_width(node.shape) for node in nodes])
        call = op.forward(attrs, (out,))
        args = []
        for i, arg in enumerate(call.args):
            if isinstance(arg, Py) and not arg.const:
                what = next((k for k, v in attrs.items() if v is arg), "width" if arg is out else f"arg{i}")
                name = identifier("_".join(path) + f"_{what}", set(self.free.values()))
                self.init.append(Line(f"self.{name} = {arg.text}"))
                arg = Py(py.Name(f"self.{name}"), arg.samples)
            args.append(arg)
        dst = self.taps.get(link.label, self.write)
        self.function(replace(call, args=tuple(args)), [t.var], None, dst)
        return Tensor(dst, out, op.out_rank(t.rank), owned=t.owned and link.label not in self.taps)

    def attributes(self, kind: str, call: ast.Call) -> dict:
        """The op's options as Pys: what the call writes, partially evaluated; the rest, defaults."""
        spec = ALL[kind]
        written = match_options(spec, call.args, lambda word: word in self.lives[0].env)
        n = len(self.lives)
        attrs: dict = {}
        for option in spec.options:
            expr = written.get(option.name)
            if expr is True:  # a bare flag: `bn zero_init`
                attrs[option.name] = constant(True, n)
            elif expr is not None:
                value = self.ev(expr)
                if option.type == "word":  # a word of the language, which the op keeps as its name (`gelu tanh`):
                    if not value.const:  # the op works on the name itself (`upsample linear` is bilinear on images)
                        raise Unsupported(f"`{option.name}` of `{kind}` that differs between the calls")
                    attrs[option.name] = str(value.value)
                    continue
                elif option.type == "int" and any(isinstance(s, float) for s in value.samples):
                    value = int_of(value)
                elif option.type == "float" and not value.const and any(isinstance(s, int) for s in value.samples):
                    value = Py(value.node, tuple(float(s) for s in value.samples))
                attrs[option.name] = value
            else:
                attrs[option.name] = None if option.default is None else constant(option.default, n)
        if any(isinstance(v, Py) and v.const and isinstance(v.value, (tuple, bool)) for v in attrs.values()):
            # a per-axis constant (`k=(1, 3, 3)`): `complete` works its defaults out axis by axis on numbers
            # (padding = kernel // 2 per axis); a flag (`to_input`): `complete` tests it (`not to_input`),
            # which a symbolic value cannot answer. So give it the constants' values and write its results back
            plain = {k: v.value if isinstance(v, Py) and v.const else v for k, v in attrs.items()}
            done = spec.complete(plain)
            return {k: v if isinstance(v, (Py, str)) or v is None else constant(v, n) for k, v in done.items()}
        return spec.complete(attrs)

    def channels(self, computed: Py | None, recorded: list[int]) -> Py:
        """A tensor's width: the expression the walk worked out, checked against every call's record
        (after a flatten, where the width depends on H×W, the record's, which must then agree)."""
        if computed is None:
            if any(c != recorded[0] for c in recorded):
                raise Unsupported("a width after `flatten` that differs between the calls")
            return constant(recorded[0], len(recorded))
        if list(computed.samples) != recorded:
            raise Unsupported("a width the template's expressions do not give")  # pragma: no cover
        return computed

    def check(self, module: ModuleCall, nodes: list[Node], inplace: bool) -> None:
        """The module written must be, call by call, the module the compiled network builds."""
        for i, node in enumerate(nodes):
            shape = node.in_shape or ()
            expected = ALL[node.kind].module(node.attrs, _width(shape), len(shape), inplace)
            if expected.constructor != module.constructor or len(expected.args) != len(module.args):
                raise Unsupported(f"`{node.kind}` built differently in one call")  # pragma: no cover
            for (key, want), (_, got) in zip(expected.args, module.args):
                value = got.samples[i] if isinstance(got, Py) else got
                if not same_value(value, want) and not (isinstance(want, float) and value == want):
                    raise Unsupported(f"`{key}` of `{node.kind}` that the template's expressions do not give")

    # ---- merges -----------------------------------------------------------------------------
    def function(
        self,
        call: FunctionCall,
        operands: list[str],
        weights: str | None,
        dst: str,
        inplace: bool = False,
        listed: str | None = None,
    ) -> None:
        line, used = function_source(call, operands, weights, dst, inplace, listed)
        self.uses |= used
        self.fwd.append(Line(line))

    def residual(self, el: ast.Residual, t: Tensor) -> Tensor:
        tap = next((a.value.id for a in el.args if a.name == "project_from" and isinstance(a.value, ast.Name)), None)
        ident = "identity" if self.depth == 0 else f"identity{self.depth + 1}"
        source = t.var
        kept = Line(f"{ident} = {t.var}")
        if el.merge == "add" or t.var == self.write:  # keep the input: the main path overwrites `out`
            self.fwd.append(kept)
            source = ident
        if tap is not None:
            self.taps[tap] = identifier(tap, {"x", "out", "self", "identity", ident, *self.taps.values()})
        self.depth += 1
        main = self.body(el.body, replace(t, owned=False))
        self.depth -= 1
        tapped = self.taps.pop(tap, None) if tap is not None else None
        shortcut = source
        if el.shortcut is not None:  # the block writes its shortcut path
            before, mark, start = self.write, len(self.fwd), tapped or source
            self.write = ident
            written = self.body(el.shortcut, Tensor(start, t.channels, t.rank))
            self.write = before
            # a shortcut body that makes no op (in some calls) is the identity: the input, not the tap
            self.fwd[mark:] = _without(self.fwd[mark:], Line(f"{ident} = {start}"))
            shortcut = source if written.var == start else written.var
        merged = [
            (event := live.next()) is not None and event.span == el.span and event.node is not None
            for live in self.lives
        ]
        if not any(merged):  # a plain network (`shortcut none`): the main path alone
            self.fwd[:] = [item for item in self.fwd if item is not kept]
            return main
        if not all(merged):
            raise Unsupported("a residual that some calls have and others do not")
        nodes = self.pop_nodes(el.span)
        slot = tuple((nodes[0].shortcut_name or "")[len(self.lives[0].prefix) :].split("."))
        inserted = [self.ej.record.shortcuts.get(node.shortcut_name or "") for node in nodes]
        if any(inserted):
            if self.network:
                self.init.append(Assign(slot, self.ej.shortcut_module(inserted[0] or ())))
                self.fwd.append(Line(f"{ident} = {{0}}({tapped or ident})", (slot,)))
            else:  # the caller builds the shortcut, as torchvision's _make_layer does
                param = identifier("_".join(slot), set(self.free.values()) | {"inplanes"})
                self.slots.append((param, slot))
                self.init.append(Assign(slot, param))
                self.fwd.append(
                    If("{0} is not None", [Line(f"{ident} = {{0}}({tapped or ident})", (slot,))], [], (slot,))
                )
        node = nodes[0]
        op = ALL[node.kind]
        residual_add = op.planned
        operands = op.operands([main.var, shortcut], True)
        inplace = residual_add and main.var == self.write and main.fresh and main.owned
        self.function(forward(node), operands, None, self.write, inplace)
        channels = (
            main.channels
            if residual_add
            else (None if t.channels is None or main.channels is None else t.channels + main.channels)
        )
        return Tensor(self.write, self.channels(channels, [_width(n.shape) for n in nodes]), main.rank, owned=True)

    # ---- conditions -------------------------------------------------------------------------
    def cond(self, el: ast.Cond, t: Tensor) -> Tensor:
        test = self.ev(el.test)
        if test.const:
            return self.body(el.then, t) if test.value else self.orelse(el, t)
        if self.network:
            raise Unsupported("an `if` on the network's number of classes")
        taken = [bool(s) for s in test.samples]
        if all(taken) or not any(taken):
            # every call here takes one way: the class is written for it, and says so if built otherwise
            message = f"written for calls where `{test.text}` is {all(taken)}"
            self.init.append(
                If((negate(test) if all(taken) else test).text, [Line(f"raise ValueError({message!r})")], [])
            )
            return self.body(el.then, t) if all(taken) else self.orelse(el, t)
        both = self.lives
        then = self.branch(lambda: self.body(el.then, _subset(t, taken, True)), [lv for lv, k in zip(both, taken) if k])
        orelse = self.branch(
            lambda: self.orelse(el, _subset(t, taken, False)), [lv for lv, k in zip(both, taken) if not k]
        )
        self.lives = both
        (init_then, fwd_then, t1), (init_else, fwd_else, t2) = then, orelse
        if t1.rank != t2.rank:
            raise Unsupported("an `if` whose branches give a feature map and a vector")
        var = t1.var
        if t1.var != t2.var:
            var = self.write
            for fwd, got in ((fwd_then, t1.var), (fwd_else, t2.var)):
                if got != var:
                    fwd.append(Line(f"{var} = {got}"))
        made_then = [i.path for i in init_then if isinstance(i, Assign)]
        made_else = [i.path for i in init_else if isinstance(i, Assign)]
        only_then = [p for p in made_then if p not in made_else]
        only_else = [p for p in made_else if p not in made_then]
        self.init.append(If(test.text, init_then, init_else))
        if fwd_then == fwd_else:
            self.fwd.extend(fwd_then)
        elif only_then:  # forward asks whether the branch's module exists, as torchvision does
            init_else.append(Assign(only_then[0], "None"))
            self.fwd.append(If("{0} is not None", fwd_then, fwd_else, (only_then[0],)))
        elif only_else:
            init_then.append(Assign(only_else[0], "None"))
            self.fwd.append(If("{0} is None", fwd_then, fwd_else, (only_else[0],)))
        else:
            self.flags += 1
            flag = f"branch{self.flags}"
            self.init.append(Line(f"self.{flag} = {test.text}"))
            self.fwd.append(If(f"self.{flag}", fwd_then, fwd_else))
        channels = None
        if t1.channels is not None and t2.channels is not None:
            samples = tuple(
                a if k else b
                for k, a, b in zip(taken, _spread(t1.channels, taken, True), _spread(t2.channels, taken, False))
            )
            channels = (
                Py(py.IfExp(test.node, t1.channels.node, t2.channels.node), samples)
                if t1.channels.text != t2.channels.text
                else Py(t1.channels.node, samples)
            )
        return Tensor(var, channels, t1.rank, fresh=t1.fresh and t2.fresh, owned=t1.owned and t2.owned)

    def orelse(self, el: ast.Cond, t: Tensor) -> Tensor:
        if isinstance(el.orelse, ast.Cond):
            return self.cond(el.orelse, t)
        return self.body(el.orelse, t) if el.orelse is not None else t

    def branch(self, walk: Callable[[], Tensor], lives: list[Live]) -> tuple[list, list, Tensor]:
        outer = self.init, self.fwd, self.lives
        self.init, self.fwd, self.lives = [], [], lives
        try:
            t = walk()
            return self.init, self.fwd, t
        finally:
            self.init, self.fwd, _ = outer

    # ---- nested calls -----------------------------------------------------------------------
    def call(self, el: ast.Call, t: Tensor) -> Tensor:
        path, blocks = self.pop_blocks(el.span)
        ctor, channels = self.ej.construct(blocks, self, el, t)
        self.init.append(Assign(path, ctor))
        self.fwd.append(Run(path, t.var, self.write))
        return self.after_block(blocks, t, channels)

    def stage(self, el: ast.Call, t: Tensor) -> Tensor:
        if not self.network:
            raise Unsupported("a stage (`x N`) inside a block")
        (live,) = self.lives
        blocks = []
        while (event := live.next()) is not None and event.span == el.span and event.block is not None:
            blocks.append(event.block)
            live.pos += 1
        if not blocks:
            raise Unsupported("a stage that made no block")  # pragma: no cover
        path = tuple(blocks[0].path[len(live.prefix) :].rpartition(".")[0].split("."))
        calls, channels = [], t
        for block in blocks:
            ctor, width = self.ej.construct([block], self, el, channels)
            calls.append(ctor)
            channels = self.after_block([block], channels, width)
        names = [block.path.rpartition(".")[2] for block in blocks]
        if names == [str(i) for i in range(len(blocks))]:
            sequential = CallText("nn.Sequential", tuple(_runs(calls)))
        else:  # a stage that names its repetitions (`s1."b{repetition + 1}": ...`): by name, in order
            pairs = tuple(CallText("(", (py_string(n), c)) for n, c in zip(names, calls))
            sequential = CallText("nn.Sequential", (CallText("OrderedDict", (CallText("[", pairs),)),))
        self.init.append(Assign(path, sequential, split=len(calls) > 1))
        self.fwd.append(Run(path, t.var, self.write))
        return replace(channels, var=self.write)

    def after_block(self, blocks: list[BlockRecord], t: Tensor, channels: Py | None) -> Tensor:
        """What a block call gives: a block that made no op hands back its input (the identity)."""
        if all(b.output is None for b in blocks):
            return replace(t, var=self.write)
        if any(b.output is None for b in blocks):
            raise Unsupported("a block that is the identity in some calls only")
        width = self.channels(channels, [_width(b.out_shape) for b in blocks])
        owned = True
        for b in blocks:  # a block of Identity or Dropout alone hands back its input tensor
            node = b.output or ""
            while self.ej.net.ops.nodes[node].kind in ALIASING:
                node = self.ej.net.ops.main_input(node)
            owned = owned and node.startswith(b.path + ".")
        return Tensor(self.write, width, len(blocks[0].out_shape or ()), owned=owned)


ALIASING = frozenset(name for name, op in ALL.items() if op.aliasing)


def _width(shape: tuple[int, ...] | None) -> int:
    """The channels of a recorded shape (every shape of a checked network is known)."""
    assert shape is not None
    return shape[0]


def int_of(value: Py) -> Py:
    """`16.0` where a whole number is needed is 16 for the elaborator; int() says so in Python."""
    samples = tuple(int(s) for s in value.samples)
    if value.const:
        return constant(samples[0], len(samples))
    return Py(py.Call(py.Name("int", py.Load()), [value.node], []), samples)


def _without(items: list, line: Line) -> list:
    """A written shortcut's forward, where the paths that make no op keep the input: `identity = tap`
    dropped where it is all a path from the shortcut's start to its end does."""
    if items == [line]:
        return []
    if len(items) == 1 and isinstance(items[0], If):
        item = items[0]
        return [If(item.test, _without(item.then, line), _without(item.orelse, line), item.refs)]
    return items


def _subset(t: Tensor, taken: list[bool], side: bool) -> Tensor:
    """`t` as the calls that take one side of an `if` see it: its width's samples for those calls only."""
    if t.channels is None:
        return t
    samples = tuple(s for s, k in zip(t.channels.samples, taken) if k == side)
    return replace(t, channels=Py(t.channels.node, samples, t.channels.const))


def _spread(p: Py, taken: list[bool], side: bool) -> list:
    """A branch's samples (one per call that took it) spread over every call (None elsewhere)."""
    it = iter(p.samples)
    return [next(it) if k == side else None for k in taken]


def _runs(calls: list) -> list:
    """A stage's blocks; identical ones in a row are written as one comprehension, as _make_layer's loop."""
    out: list = []
    i = 0
    while i < len(calls):
        j = i
        while j < len(calls) and calls[j] == calls[i]:
            j += 1
        if j - i >= 2:
            out.append(f"*[{flat(calls[i])} for _ in range({j - i})]")
        else:
            out.extend(calls[i:j])
        i = j
    return out
