"""The op kinds, each defined once (see base.py): `OPS` maps a name to its definition.

Every module of this package except `base` defines `KINDS`, a tuple of OpKinds;
they are collected here, so a new op is one new file. The order is the
modules' and then each file's, so suggestions and docs are stable.
"""

from __future__ import annotations

import importlib
import pkgutil

from .. import values
from .base import (
    MAX_CHANNELS,
    REQUIRED,
    BoundArg,
    Cost,
    FunctionCall,
    ModuleCall,
    OpKind,
    Option,
    ParameterCall,
    Shape,
    bind,
    match_options,
    window,
)

_ORDER = ("conv", "norm", "activation", "pool", "linear", "attention", "shortcut")  # the rest: alphabetical


def _collect() -> dict[str, OpKind]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")]
    names.sort(key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    found: dict[str, OpKind] = {}
    for module_name in names:
        for kind in importlib.import_module(f"{__name__}.{module_name}").KINDS:
            assert kind.name not in found, f"op kind `{kind.name}` is defined twice"
            found[kind.name] = kind
    return found


ALL: dict[str, OpKind] = _collect()
# What a spec may call: the kinds the shape checker inserts (zeropad) are not among them.
OPS: dict[str, OpKind] = {name: kind for name, kind in ALL.items() if not kind.internal}
# The merges (merge.py): a residual block's, or a `branches` construct's, which `merge = WORD` names.
MERGES: tuple[str, ...] = tuple(name for name, kind in ALL.items() if kind.merge)
BRANCH_MERGES: dict[str, OpKind] = {kind.merge_word: kind for kind in ALL.values() if kind.merge and kind.merge_word}
# Ops that are a function of their inputs in the forward (`forward`), not a module: the merges and `chunk`.
FUNCTIONS: tuple[str, ...] = tuple(name for name, kind in ALL.items() if type(kind).forward is not OpKind.forward)
# Ops that are a bare parameter of their container and a function of the forward (`layer_scale`), not a module.
PARAMETERS: tuple[str, ...] = tuple(name for name, kind in ALL.items() if type(kind).parameter is not OpKind.parameter)
values.BRANCH_MERGES[:] = list(BRANCH_MERGES)  # values sits below ops: the language learns the words here

__all__ = [
    "ALL",
    "BRANCH_MERGES",
    "FUNCTIONS",
    "MAX_CHANNELS",
    "MERGES",
    "OPS",
    "PARAMETERS",
    "REQUIRED",
    "BoundArg",
    "Cost",
    "FunctionCall",
    "ModuleCall",
    "OpKind",
    "Option",
    "ParameterCall",
    "Shape",
    "bind",
    "match_options",
    "window",
]
