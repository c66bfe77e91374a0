"""The op kinds, each defined once (see base.py): `OPS` maps a name to its definition.

Every module of this package except `base` defines `KINDS`, a tuple of OpKinds;
they are collected here, so a new op is one new file. The order is the
modules' and then each file's, so suggestions and docs are stable.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import MAX_CHANNELS, REQUIRED, BoundArg, Cost, ModuleCall, OpKind, Option, Shape, bind, window

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

__all__ = ["ALL", "MAX_CHANNELS", "OPS", "REQUIRED", "BoundArg", "Cost", "ModuleCall", "OpKind", "Option", "Shape",
           "bind", "window"]
