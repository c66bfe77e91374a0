"""What an ejected class is made of, before it is laid out as text (eject_render.py).

__init__ is a list of `Module` (a module at a path below self), `Container`
(a named group: an nn.Sequential), `Line`, `If` and `Loop`; forward a list of
`Run` (`dst = self.<path>(src)`), `Line` and `If`. `Tensor` is what the walk
knows about the value the next op reads; `Names` hands out the elaborator's
module names (resdsl.scope.Scope), for every branch an `if` may take.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..scope import Scope
from .eject_expr import Call, Sym, Unsupported

Path = tuple[str, ...]


class Symbolic(Exception):
    """The network uses `classes` where the network class cannot take it as `num_classes`."""


# ---- what the two methods are made of -----------------------------------------------------

@dataclass
class Module:     # __init__: the module (or a parameter, or None) at `path`
    path: Path
    ctor: "Call | str"
    split: bool = False  # one argument a line (a stage's blocks)


@dataclass
class Container:  # __init__: a named group, an nn.Sequential
    path: Path
    items: list


@dataclass
class Line:       # `text` with `{0}`, `{1}` standing for the modules at `refs`
    text: str
    refs: tuple = ()


@dataclass
class If:
    test: str
    then: list
    orelse: list
    refs: tuple = ()


@dataclass
class Loop:
    header: str
    items: list


@dataclass
class Run:        # forward: `dst = self.<path>(src)`
    path: Path
    src: str
    dst: str


@dataclass(frozen=True)
class Tensor:
    """The value the next op reads: the variable holding it, its channels and rank (3: C×H×W, 1: a vector)."""

    var: str
    channels: Sym | None
    rank: int
    fresh: bool = False  # made by a conv or BN: `out += identity` may write into it, as torchvision
    owned: bool = False  # nothing else reads it: an activation may work in place


class Names:
    """The elaborator's names for one scope. Inside an `if` whose branches name differently, every
    possible state is kept, and a name that differs between them cannot be written statically."""

    def __init__(self, states: list[Scope]):
        self.states = states

    @classmethod
    def fresh(cls, indexed: bool = False, taken: tuple[str, ...] = ()) -> "Names":
        scope = Scope("", indexed=indexed)
        for name in taken:
            scope.taken[name] = None
        return cls([scope])

    def claim(self, label: str | None, kind: str, module: bool = True) -> str:
        return self._one([s.claim(label, kind, None, module) for s in self.states], label or kind)

    def stage(self, label: str | None) -> str:
        """As the elaborator names a stage: its label, else the next free `layerN`."""
        found = []
        for s in self.states:
            name = label
            while name is None or (label is None and name in s.taken):
                s.stages += 1
                name = f"layer{s.stages}"
            found.append(s.claim(name, name, None))
        return self._one(found, label or "stage")

    def _one(self, found: list[str], what: str) -> str:
        for s in self.states:
            s.duplicates.clear()
        if len(set(found)) != 1:
            raise Unsupported(f"the name of `{what}` depends on which branch of an `if` was taken")
        return found[0]

    def fork(self) -> "Names":
        return Names([_clone(s) for s in self.states])

    def join(self, a: "Names", b: "Names") -> None:
        states: dict[tuple, Scope] = {}
        for s in a.states + b.states:
            states.setdefault((tuple(sorted(s.counts.items())), tuple(sorted(s.taken)), s.index, s.stages), s)
        if len(states) > 64:
            raise Unsupported("too many `if` branches that name modules differently")
        self.states = list(states.values())


def _clone(scope: Scope) -> Scope:
    copy = Scope(scope.prefix, indexed=scope.indexed)
    copy.counts, copy.taken = dict(scope.counts), dict(scope.taken)
    copy.index, copy.stages = scope.index, scope.stages
    return copy


@dataclass(frozen=True)
class Place:
    container: Path      # the module path of the current naming scope, relative to self
    names: Names
    policy: str | None   # the shortcut policy in force; None in a block class: the caller's


def settled(items: list, known: dict | None = None) -> list:
    """Forward code without the tests whose outcome is already known where they stand.

    `if blur { aa: blurpool } else if aa { aa: avgpool }` is written as an `if self.aa is not None`
    whose `else` tests `self.aa is not None` again, which can only be false there. forward's tests
    read attributes that forward never sets (`self.aa is not None`, `self.residual`, `self.branch1`),
    so a test answered by an enclosing one is replaced by the branch it takes, and an `if` whose
    branches are the same is replaced by them.
    """
    known = known or {}
    out: list = []
    for item in items:
        if not isinstance(item, If):
            out.append(item)
            continue
        key, opposite = (item.test, item.refs), (_opposite(item.test), item.refs)
        if key in known or opposite in known:
            taken = known[key] if key in known else not known[opposite]
            out += settled(item.then if taken else item.orelse, known)
            continue
        then = settled(item.then, {**known, key: True})
        orelse = settled(item.orelse, {**known, key: False})
        if then == orelse:
            out += then
        else:
            out.append(If(item.test, then, orelse, item.refs))
    return out


def _opposite(test: str) -> str:
    if test.endswith(" is not None"):
        return test[: -len(" is not None")] + " is None"
    if test.endswith(" is None"):
        return test[: -len(" is None")] + " is not None"
    return f"not ({test})"
