"""The body of one ejected class, a block template's or the network's, as __init__ and forward.

`Body` walks the template's AST once, as the elaborator does, but with the
parameters as Python names (a block class) or as constants (the network
class): every op becomes a module whose arguments are expressions, `if`
becomes Python `if` in both methods, a `residual` becomes torchvision's
`identity` / `downsample` pattern. Module names come from the elaborator's
own naming rules (resdsl.scope.Scope), so state dicts load by name.
What is written is kept as a small tree (eject_ir.py) and laid out as text at
the end (eject_render.py), when it is known which groups can be built and
called whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

from .. import syntax as ast
from ..elaborate import SHORTHANDS
from ..ops import ALL, OPS
from ..values import Symbol
from .eject_expr import ATOM, Call, Sym, Unsupported, binary, flat, free_names, identifier, literal, ternary, translate
from .eject_ir import Container, If, Line, Loop, Module, Names, Path, Place, Run, Symbolic, Tensor
from .eject_ops import bind_op, helpers_in, op_module, shortcut_call

if TYPE_CHECKING:
    from .eject import Ejector


@dataclass
class Body:
    """One class being written. `network`: parameters are constants (except `symbolic` ones)."""

    ej: "Ejector"
    env: dict[str, Sym]
    network: bool
    write: str                      # the variable ops write: `out` in a block, `x` in the network
    symbolic: frozenset = frozenset()
    flagged: bool = False           # the block class takes `residual=True` (some use is a plain network)
    init: list = field(default_factory=list)
    fwd: list = field(default_factory=list)
    slots: list = field(default_factory=list)     # (parameter, module path) of each residual's shortcut
    labelled: set = field(default_factory=set)    # groups whose children are not all numbered in order
    uses: set = field(default_factory=set)        # "torch", "SqueezeExcite", ...
    taps: dict = field(default_factory=dict)      # label -> variable kept for `residual(project_from=...)`
    flags: list = field(default_factory=list)     # attributes set in __init__ for forward's `if`s
    hoist: dict = field(default_factory=dict)     # channel expression -> the local variable that holds it
    counts: dict = field(default_factory=dict)    # channel expression -> how many modules it sizes
    depth: int = 0                                # residuals open around the current element
    branches: int = 0                             # `if` branches open around the current element

    @property
    def symbol(self) -> Callable[[str], str]:
        return self.ej.class_ref

    def sym(self, expr: ast.Expr) -> Sym:
        return translate(expr, self.env, self.symbol)

    def constant(self, *exprs: ast.Expr | None) -> None:
        """The network class builds blocks and stages with constants: `classes` cannot reach them."""
        if self.network and any(e is not None and free_names(e) & self.symbolic for e in exprs):
            raise Symbolic

    # ---- statements ------------------------------------------------------------------------
    def body(self, body: ast.Body, t: Tensor, place: Place) -> Tensor:
        for stmt in body.statements:
            if isinstance(stmt, ast.Shortcut):
                self.constant(stmt.policy)
                value = self.sym(stmt.policy)
                if not (value.const and isinstance(value.sample, Symbol)):
                    raise Unsupported("a `shortcut` policy given by a block parameter")
                place = replace(place, policy=value.sample.name)
            elif isinstance(stmt, ast.Norm):
                self.constant(stmt.kind)
                value = self.sym(stmt.kind)
                if not (value.const and isinstance(value.sample, Symbol) and value.sample.name == "bn"):
                    raise Unsupported("a `norm` statement that makes `bn` another norm (the classes would need "
                                      "the norm as a parameter)")
            elif isinstance(stmt, ast.Defaults):
                # the network class builds its blocks from the bound instances, which include these
                if not self.network:
                    raise Unsupported("a `defaults` statement inside a block")
                self.constant(*(a.value for a in stmt.args))
            elif isinstance(stmt, ast.Chain):
                for link in stmt.links:
                    t = self.element(link, t, place)
            # `input` is the graph's; `require` is written at the top of __init__ (Ejector.requirements)
        return t

    def element(self, link: ast.Link, t: Tensor, place: Place) -> Tensor:
        el = link.element
        if isinstance(el, ast.Branches):
            raise Unsupported("a `branches` construct (the classes would need a loop over branches)")
        if link.indexed or isinstance(el, ast.Group) and el.index is not None:
            raise Unsupported("an indexed name such as `convs[branch]`")
        if link.label is not None and "." in link.label:
            raise Unsupported(f"a dotted name such as `{link.label}`")
        if isinstance(el, ast.Residual) and el.shortcut is not None:
            raise Unsupported("a shortcut the block writes (`residual { ... } shortcut { ... }`)")
        if isinstance(el, ast.Call):
            name = el.name
            if name in self.env:
                held = self.env[name]
                if not (held.const and isinstance(held.sample, Symbol)):
                    raise Unsupported(f"calling the block held by the parameter `{name}` inside a block")
                name = held.sample.name
            if name in OPS and not self.ej.is_block(name):
                return self.op(el, link, t, place)
            return self.call(name, el, link, t, place) if el.repeat is None else self.stage(name, el, link, t, place)
        if isinstance(el, ast.Residual):
            return self.residual(el, link, t, place)
        if isinstance(el, ast.Cond):
            return self.cond(el, t, place)
        if isinstance(el, ast.Section):
            return self.body(el.body, t, place)
        return self.group(el, t, place)

    def op(self, call: ast.Call, link: ast.Link, t: Tensor, place: Place) -> Tensor:
        path = place.container + (place.names.claim(link.label, call.name),)
        kind = call.name
        attrs = bind_op(call, self.env, self.symbol)
        self.count(kind, attrs, t.channels)
        op = ALL[kind]
        module, channels, rank = op_module(kind, attrs, t.channels, t.rank, op.inplace and t.owned)
        if self.network and (channels is None or channels.const):  # sizes after flatten come from the graph
            if t.channels is None or not t.channels.const:
                raise Symbolic
            channels = literal(self.ej.ops.nodes[".".join(path)].shape[0])
        self.init.append(Module(path, module))
        if not module.func.startswith("nn."):  # a class of backend/layers.py: its source goes in the file
            self.uses.add(module.func)
        zero = attrs.get("zero_init")
        if zero is not None and not (zero.const and not zero.sample):  # the residual branch starts at zero
            line = Line("nn.init.zeros_({0}.weight)", (path,))
            self.init.append(line if zero.const else If(zero.text, [line], []))
        dst = self.taps.get(link.label, self.write)
        src = t.var
        if kind == "fc" and t.rank == 3:  # a pooled C×1×1 map: flatten, as torchvision does
            self.uses.add("torch")
            self.fwd.append(Line(f"{dst} = torch.flatten({src}, 1)"))
            src = dst
        self.fwd.append(Run(path, src, dst))
        aliasing = op.aliasing  # may hand back their input tensor itself
        owned = (t.owned if aliasing else True) and link.label not in self.taps
        # A conv's, BN's or SE's (a product's) output is not kept for the backward pass: `out += identity`
        # may write into it. A ReLU's is kept.
        return Tensor(dst, channels, rank, fresh=op.overwritable, owned=owned)

    def count(self, kind: str, attrs: dict, channels: Sym | None) -> None:
        """Channel expressions that size several modules (a bottleneck's inner width) are worth a
        local variable, as torchvision's `width = int(planes * (base_width / 64.0)) * groups`."""
        if channels is not None and channels.text in self.counts and ALL[kind].reads_channels:
            self.counts[channels.text] += 1
        out = attrs.get("out")
        if out is not None and not out.const and out.prec < ATOM:
            # Only a width first met outside any `if` is worked out at the top of __init__: in a branch not
            # taken it might not be computable (`width / ratio` with ratio 0).
            if out.text in self.counts or not self.branches:
                self.counts[out.text] = self.counts.get(out.text, 0) + 1
            if out.text in self.hoist:
                attrs["out"] = Sym(self.hoist[out.text], sample=out.sample)

    # ---- blocks and stages --------------------------------------------------------------------
    def call(self, name: str, el: ast.Call, link: ast.Link, t: Tensor, place: Place) -> Tensor:
        path = place.container + (place.names.claim(link.label, name),)
        if self.network:
            self.constant(*(a.value for a in el.args))
            if not t.channels.const:
                raise Symbolic
            full = ".".join(path)
            self.init.append(Module(path, self.ej.instance_call(self.ej.instance(full), t.channels)))
            self.fwd.append(Run(path, t.var, self.write))
            return self.ej.graph_tensor(full, self.write, t)
        ctor, out = self.nested(name, el.args, {}, t, path, place)
        self.init.append(Module(path, ctor))
        self.fwd.append(Run(path, t.var, self.write))
        return Tensor(self.write, out.channels, out.rank, owned=out.owned)

    def nested(self, name: str, args: tuple, extra: dict[str, Sym], t: Tensor, path: Path, place: Place,
               slots: bool = True) -> tuple[Call, Tensor]:
        """A block built inside a block class: `Basic(in_channels, width, stride=stride)`; its shortcut
        arrives through this class's constructor (`basic_downsample`), as the network builds them all."""
        template, defaults = self.ej.resolve(name)
        info = self.ej.class_for(template)
        env, given = bind_symbolic(template, defaults, args, extra, self.env, self.symbol)
        call_args = self.ej.arguments(info, {p: env[p].arg() for p in given})
        if t.channels is None:
            raise Unsupported(f"a block after `flatten` inside a block (`{name}`)")
        call_args = [t.channels.arg()] + call_args
        for param, rel in info.slots if slots else ():
            outer = identifier("_".join(path + rel), set(self.env_names()))
            self.slots.append((outer, path + rel))
            call_args.append((param, outer))
        if info.flagged and place.policy is None and self.flagged:
            call_args.append(("residual", "residual"))
        elif info.flagged and place.policy == "none":
            call_args.append(("residual", "False"))
        return Call(info.name, tuple(call_args)), self.ej.summary(template, env, t.channels, t.rank)

    def env_names(self) -> list[str]:
        return [s.text for s in self.env.values()]

    def stage(self, name: str, el: ast.Call, link: ast.Link, t: Tensor, place: Place) -> Tensor:
        path = place.container + (place.names.stage(link.label),)
        stride = next((o.value for o in el.repeat.options if o.name in ("s", "stride")), None)
        if self.network:
            self.constant(el.repeat.count, stride, *(a.value for a in el.args))
            if not t.channels.const:
                raise Symbolic
            full, calls, channels = ".".join(path), [], t.channels
            for i in range(int(self.sym(el.repeat.count).sample)):
                calls.append(self.ej.instance_call(self.ej.instance(f"{full}.{i}"), channels))
                channels = self.ej.graph_tensor(f"{full}.{i}", self.write, replace(t, channels=channels)).channels
            blocks = _runs(calls)
            self.init.append(Module(path, Call("nn.Sequential", tuple(blocks)), split=len(blocks) > 1))
            self.fwd.append(Run(path, t.var, self.write))
            return self.ej.graph_tensor(full, self.write, replace(t, channels=channels))
        # Inside a block: the first repetition takes the stage's stride (and its shortcut), the others
        # are appended in a loop, as torchvision's _make_layer does.
        if el.repeat.shortcuts:
            policy = self.sym(el.repeat.shortcuts[0])
            if not (policy.const and isinstance(policy.sample, Symbol)):
                raise Unsupported("a stage's `shortcut` policy given by a block parameter")
            place = replace(place, policy=policy.sample.name)
        extra = {"stride": self.sym(stride)} if stride is not None else {}
        first, out = self.nested(name, el.args, extra, t, path + ("0",), place)
        self.init.append(Module(path, Call("nn.Sequential", (first,))))
        count = self.sym(el.repeat.count)
        if not (count.const and count.sample == 1):
            running = Sym(identifier("channels", set(self.env_names())))
            rest, after = self.nested(name, el.args, {}, replace(out, channels=running), path + ("1",), place, False)
            same, again = self.nested(name, el.args, {}, out, path + ("1",), place, False)
            if after.channels is not None and again.channels is not None and \
                    after.channels.text == again.channels.text:  # every repetition reads the first one's width
                self.init.append(Loop(f"for _ in range(1, {count.text}):", [Line(f"{{0}}.append({flat(same)})",
                                                                                  (path,))]))
            elif out.channels is not None and after.channels is not None:
                # each repetition widens the next one's input (a dense stage): keep a running count
                self.init.append(Line(f"{running.text} = {out.channels.text}"))
                self.init.append(Loop(f"for _ in range(1, {count.text}):", [
                    Line(f"{{0}}.append({flat(rest)})", (path,)), Line(f"{running.text} = {after.channels.text}")]))
                out = replace(after, channels=running)
            else:
                raise Unsupported(f"a stage of `{name}` inside a block, whose width depends on H×W")
        self.fwd.append(Run(path, t.var, self.write))
        return Tensor(self.write, out.channels, out.rank, owned=out.owned)

    # ---- groups, merges, conditions ---------------------------------------------------------
    def group(self, el: ast.Group, t: Tensor, place: Place) -> Tensor:
        path = place.container + (place.names.claim(el.name, el.name),)
        outer = self.init, self.fwd
        self.init, self.fwd = [], []
        out = self.body(el.body, t, Place(path, Names.fresh(indexed=True), place.policy))
        init, fwd = self.init, self.fwd
        self.init, self.fwd = outer
        children = [i.path[-1] for i in init if isinstance(i, (Module, Container)) and i.path[:-1] == path]
        if children != [str(i) for i in range(len(children))]:
            self.labelled.add(path)
        self.init.append(Container(path, init))
        chain = all(isinstance(r, Run) and r.path[:-1] == path for r in fwd) and \
            [r.path[-1] for r in fwd] == children and bool(fwd) and fwd[0].src == t.var and \
            all(a.dst == b.src for a, b in zip(fwd, fwd[1:])) and \
            all(isinstance(i, (Module, Container, Line)) for i in init)
        if chain:  # a plain chain: the group is an nn.Sequential called whole
            self.fwd.append(Run(path, t.var, fwd[-1].dst))
        else:
            self.fwd.extend(fwd)
        return out

    def residual(self, el: ast.Residual, link: ast.Link, t: Tensor, place: Place) -> Tensor:
        if el.merge == "add" and place.policy == "none":
            return self.body(el.body, t, place)  # a plain network: the main path alone
        tap = next((a.value.id for a in getattr(el, "args", ()) if a.name == "project_from"), None)
        ident = "identity" if self.depth == 0 else f"identity{self.depth + 1}"
        source = t.var
        if el.merge == "add" or t.var == self.write:  # keep the input: the main path overwrites `out`
            self.fwd.append(Line(f"{ident} = {t.var}"))
            source = ident
        if tap is not None:
            taken = {"x", "out", "self", "identity"} | {f"identity{i}" for i in range(2, 50)} | set(self.taps.values())
            self.taps[tap] = identifier(tap, taken)
        self.depth += 1
        main = self.body(el.body, replace(t, owned=False), place)
        self.depth -= 1
        tapped = self.taps.pop(tap, None) if tap is not None else None
        place.names.claim(link.label, el.merge, module=False)
        slot = place.container + (place.names.claim(None, "downsample", module=False),)
        w = self.write
        if el.merge == "concat":  # DenseNet: the input, then the new features
            self.uses.add("torch")
            self.fwd.append(Line(f"{w} = torch.cat([{source}, {main.var}], 1)"))
            channels = None if t.channels is None or main.channels is None else binary("+", t.channels,
                                                                                       main.channels)
            return Tensor(w, channels, main.rank, owned=True)
        merge: list = []
        project = Line(f"{ident} = {{0}}({tapped or ident})", (slot,))
        if self.network:
            full = ".".join(slot)
            if full in self.ej.shortcuts:
                if not t.channels.const:
                    raise Symbolic
                call = shortcut_call(self.ej.ops, full, self.ej.shortcuts[full])
                self.uses.update(helpers_in(call))
                self.init.append(Module(slot, call))
                merge.append(project)
        else:  # the caller builds the shortcut, as torchvision's _make_layer does
            param = identifier("_".join(slot), set(self.env_names()))
            self.slots.append((param, slot))
            self.init.append(Module(slot, param))
            merge.append(If("{0} is not None", [project], [], (slot,)))
        if main.var == w and main.fresh and main.owned:
            merge.append(Line(f"{w} += {ident}"))
        else:
            merge.append(Line(f"{w} = {main.var} + {ident}"))
        if not self.network and place.policy is None and self.flagged:
            self.fwd.append(If("self.residual", merge, [] if main.var == w else [Line(f"{w} = {main.var}")]))
        else:
            self.fwd.extend(merge)
        return Tensor(w, main.channels, main.rank, owned=True)

    def cond(self, el: ast.Cond, t: Tensor, place: Place) -> Tensor:
        self.constant(el.test)
        test = self.sym(el.test)
        if test.const:  # known when the class is written: only the branch taken
            if test.sample:
                return self.body(el.then, t, place)
            return self.orelse(el, t, place)
        then_names, else_names = place.names.fork(), place.names.fork()
        init_then, fwd_then, t1 = self.branch(lambda: self.body(el.then, t, replace(place, names=then_names)))
        init_else, fwd_else, t2 = self.branch(lambda: self.orelse(el, t, replace(place, names=else_names)))
        place.names.join(then_names, else_names)
        if t1.rank != t2.rank:
            raise Unsupported("an `if` whose branches give a feature map and a vector")
        var = t1.var
        if t1.var != t2.var:  # one branch left the input where it was
            var = self.write
            for fwd, got in ((fwd_then, t1.var), (fwd_else, t2.var)):
                if got != var:
                    fwd.append(Line(f"{var} = {got}"))
        made_then, made_else = _made(init_then), _made(init_else)
        only_then = [p for p in made_then if p not in made_else]
        only_else = [p for p in made_else if p not in made_then]
        self.init.append(If(test.text, init_then, init_else))
        if only_then:  # forward asks whether the branch's module exists, as torchvision does
            if only_then[0] not in _assigned(init_else):  # (an `else if` may make it, or set it to None)
                init_else.append(Module(only_then[0], "None"))
            self.fwd.append(If("{0} is not None", fwd_then, fwd_else, (only_then[0],)))
        elif only_else:
            if only_else[0] not in _assigned(init_then):
                init_then.append(Module(only_else[0], "None"))
            self.fwd.append(If("{0} is None", fwd_then, fwd_else, (only_else[0],)))
        elif fwd_then == fwd_else:
            self.fwd.extend(fwd_then)
        else:
            flag = identifier(f"branch{len(self.flags) + 1}", set())
            self.flags.append(flag)
            self.init.insert(len(self.init) - 1, Line(f"self.{flag} = {test.text}"))
            self.fwd.append(If(f"self.{flag}", fwd_then, fwd_else))
        channels = None if t1.channels is None or t2.channels is None else ternary(test, t1.channels, t2.channels)
        return Tensor(var, channels, t1.rank, fresh=t1.fresh and t2.fresh, owned=t1.owned and t2.owned)

    def orelse(self, el: ast.Cond, t: Tensor, place: Place) -> Tensor:
        if isinstance(el.orelse, ast.Cond):
            return self.cond(el.orelse, t, place)
        return self.body(el.orelse, t, place) if el.orelse is not None else t

    def branch(self, emit: Callable[[], Tensor]) -> tuple[list, list, Tensor]:
        outer = self.init, self.fwd
        self.init, self.fwd = [], []
        self.branches += 1
        try:
            t = emit()
            return self.init, self.fwd, t
        finally:
            self.init, self.fwd = outer
            self.branches -= 1


def _made(items: list) -> list[Path]:
    """Modules a branch always makes (not a shortcut parameter, which may be None)."""
    return [i.path for i in items if isinstance(i, Container) or isinstance(i, Module) and isinstance(i.ctor, Call)]


def _assigned(items: list) -> set[Path]:
    """Attributes a branch always sets, to a module or to None (through nested ifs too)."""
    found: set = set()
    for item in items:
        if isinstance(item, (Module, Container)):
            found.add(item.path)
        elif isinstance(item, If):
            found |= _assigned(item.then) & _assigned(item.orelse)
    return found


def _runs(calls: list[Call]) -> list:
    """A stage's blocks; four or more identical ones in a row are written as one comprehension."""
    out: list = []
    i = 0
    while i < len(calls):
        j = i
        while j < len(calls) and calls[j] == calls[i]:
            j += 1
        if j - i >= 4:
            out.append(f"*[{flat(calls[i])} for _ in range({j - i})]")
        else:
            out.extend(calls[i:j])
        i = j
    return out


def bind_symbolic(template: ast.Template, defaults: dict, args: tuple, extra: dict[str, Sym],
                  env: dict[str, Sym], symbol: Callable[[str], str]) -> tuple[dict[str, Sym], set[str]]:
    """A block call's parameters as Syms (as the elaborator binds them), and which were given."""
    names = [p.name for p in template.params]
    given: dict[str, Sym] = {}
    positional = [a for a in args if a.name is None]
    for name, arg in zip(names, positional):
        given[name] = translate(arg.value, env, symbol)
    for arg in args:
        if arg.name is not None:
            given[SHORTHANDS.get(arg.name, arg.name)] = translate(arg.value, env, symbol)
    given.update(extra)
    bound = dict(given)
    for param in template.params:
        if param.name not in bound:
            bound[param.name] = translate(defaults[param.name], bound, symbol)
    return bound, set(given) | {p.name for p in template.params if defaults[p.name] is not p.default}

