"""Finding specs and following `use` imports.

`find_spec("resnet50")` finds a bundled spec by name; `read_library(path)`
parses a file and everything it `use`s (paths relative to the importing
file, then the bundled specs/ folder), reporting missing files and import
cycles at the `use` line, and returns every definition in one namespace.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import syntax as ast
from .errors import Reporter, Span, SpecError, UsageError
from .parse import data_dir, decode, parse_module, read_source
from .values import suggest


def specs_dir() -> Path:
    return data_dir("specs")


def bundled_names() -> list[str]:
    """Every bundled .res file, networks and block libraries alike (for `use` hints)."""
    return sorted(p.stem for p in specs_dir().glob("*.res"))


_DEFINES_NETWORK = re.compile(r"^[ \t]*network[ \t]+[A-Za-z_]", re.M)


_DEFINITION = re.compile(r"^[ \t]*(?:block|network)[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


@functools.lru_cache(maxsize=1)
def _bundled_definitions() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(specs_dir().glob("*.res")):
        for name in _DEFINITION.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, path.name)
    return found


def bundled_file_defining(name: str) -> str | None:
    """`blocks.res` for `bottleneck`: where the bundled library defines `name`, for a missing-`use` hint."""
    return _bundled_definitions().get(name)


def bundled_networks() -> list[str]:
    """The bundled specs that define a network (`resdsl list`); `blocks.res` is a library, not one."""
    return sorted(p.stem for p in specs_dir().glob("*.res") if _DEFINES_NETWORK.search(p.read_text(encoding="utf-8")))


def find_spec(path_or_name: str | os.PathLike) -> Path:
    """A path to an existing file, or the name of a bundled spec (`resnet50`)."""
    text = os.fspath(path_or_name)
    path = Path(text)
    if _is_file(path):
        return path
    if _exists(path):
        raise UsageError(f"{text} is not a file")
    if os.sep not in text and "/" not in text:
        bundled = specs_dir() / (text if text.endswith(".res") else f"{text}.res")
        if _is_file(bundled):
            return bundled
    hint = suggest(Path(text).stem, bundled_names())
    raise UsageError(f"no such file or bundled spec: {text}" + (f" ({hint})" if hint else ""))


@dataclass(frozen=True)
class Library:
    root: ast.SourceFile
    definitions: dict[str, ast.Definition]
    origin: dict[str, str]  # definition name -> path of the file defining it
    sources: dict[str, str]


# How a used file's text is read and parsed. The language server passes its own: the text of an open,
# unsaved editor buffer, and a parse remembered from the last keystroke (resdsl/lsp/analysis.py).
ReadFile = Callable[[str], str]
ParseFile = Callable[[str, str], ast.SourceFile]


def _read_file(path: str) -> str:
    return decode(read_source(path), path)


def read_library(
    text: str,
    path: str,
    reporter: Reporter,
    *,
    read_file: ReadFile = _read_file,
    parse: ParseFile = parse_module,
) -> Library:
    """`text` (the file at `path`) and every file it `use`s, parsed, in one namespace.

    `read_file(path)` gives a used file's text (it raises SpecError or OSError as reading from disk
    does); `parse(text, path)` its syntax tree (SpecError with the syntax errors)."""
    modules: dict[str, ast.SourceFile] = {}  # keyed by real path, so one file loads once
    _read(text, path, modules, reporter, (), read_file, parse)
    definitions: dict[str, ast.Definition] = {}
    origin: dict[str, str] = {}
    for module in modules.values():
        for definition in module.definitions:
            first = definitions.get(definition.name)
            if first is not None:
                # Point at the user's own file (the root comes first), not at a library they `use`.
                in_root = first.name_span.path == path and definition.name_span.path != path
                mine, other = (first, definition) if in_root else (definition, first)
                reporter.error(
                    "E0205",
                    f"`{definition.name}` is defined twice",
                    mine.name_span,
                    notes=(f"also defined at {other.name_span}",),
                    help="rename one of them; every block and network shares one namespace",
                )
                continue
            definitions[definition.name] = definition
            origin[definition.name] = module.path
            seen: dict[str, Span] = {}
            for param in getattr(definition, "params", ()):
                if param.name in seen:
                    reporter.error(
                        "E0205",
                        f"parameter `{param.name}` of `{definition.name}` is declared twice",
                        param.span,
                        notes=(f"first declared at {seen[param.name]}",),
                    )
                seen.setdefault(param.name, param.span)
    return Library(modules[_key(path)], definitions, origin, reporter.sources)


def _read(
    text: str,
    path: str,
    modules: dict[str, ast.SourceFile],
    reporter: Reporter,
    stack: tuple[tuple[str, Span | None], ...],
    read_file: ReadFile,
    parse: ParseFile,
) -> None:
    reporter.sources[path] = text
    try:
        module = parse(text, path)
    except SpecError as exc:
        for d in exc.diagnostics:
            reporter.error(d.code, d.message, d.span, notes=d.notes, help=d.help)
        module = ast.SourceFile(path, (), ())
    modules[_key(path)] = module
    for use in module.uses:
        target = _resolve_use(path, use.path)
        if target is None:
            reporter.error(
                "E0502",
                f"cannot find `{use.path}`",
                use.span,
                help=f"paths are relative to {os.path.dirname(path) or '.'}; "
                f"bundled files: {', '.join(n + '.res' for n in bundled_names()[:6])}, …",
            )
            continue
        on_stack = [_key(p) for p, _ in stack] + [_key(path)]
        if _key(target) in on_stack:
            names = [p for p, _ in stack] + [path]
            chain = " -> ".join(os.path.basename(p) for p in names[on_stack.index(_key(target)) :] + [target])
            reporter.error(
                "E0501",
                f"import cycle: {chain}",
                use.span,
                help="move the shared blocks into a file that both can `use`",
            )
            continue
        if _key(target) in modules:
            continue
        try:
            child_text = read_file(target)
        except SpecError as exc:
            reporter.sources.update(exc.sources)
            for d in exc.diagnostics:
                reporter.error(d.code, d.message, d.span, notes=d.notes, help=d.help)
            continue
        except OSError as exc:
            reporter.error("E0502", f"cannot read `{use.path}`: {exc.strerror}", use.span)
            continue
        _read(child_text, target, modules, reporter, stack + ((path, use.span),), read_file, parse)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _key(path: str) -> str:
    return path if path.startswith("<") else os.path.realpath(path)


def _resolve_use(importer: str, wanted: str) -> str | None:
    if not wanted:
        return None
    base = os.path.dirname(importer) if not importer.startswith("<") else "."
    local = os.path.normpath(os.path.join(base, wanted))
    if _is_file(Path(local)):
        return local
    bundled = specs_dir() / wanted
    if "/" not in wanted and _is_file(bundled):
        shown = os.path.relpath(bundled)
        return shown if not shown.startswith("..") else os.path.normpath(str(bundled))
    return None
