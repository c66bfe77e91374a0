"""One editor buffer, checked as `resdsl check` would check it: every network it defines.

`analyse(text, path)` parses the buffer, reads the files it `use`s (an open editor buffer's text
before the file on disk, through `overlay`), elaborates and shape-checks each network the buffer
defines, at its default parameters, and returns an `Analysis`: the syntax tree, the library, the
checked networks, and every error and warning with its span. It never raises for anything a user
can type: a syntax error, a missing file, a network too large, a spec nested too deeply all end as
diagnostics.

A file of blocks alone (blocks.res) is checked as `check --libraries` checks it: its syntax, its
`use`s and its definitions; its blocks are checked in full where a network calls them.

Speed (benchmarks/lsp_latency.py): a keystroke re-parses only the buffer that changed. The files it
`use`s are parsed once and remembered by their text in a `ParseCache`, which the server owns.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import syntax as ast
from ..elaborate import elaborate
from ..errors import Diagnostic, Reporter, Span, SpecError, sorted_by_position
from ..library import Library, read_library
from ..network import Network
from ..parse import MAX_SOURCE_BYTES, decode, parse_module, read_source
from ..pipeline import finish_network
from .positions import file_key


class ParseCache:
    """Syntax trees by (path, text): the files a buffer `use`s are parsed once, not at every keystroke.

    A parse that failed is remembered as its SpecError and raised again. The cache holds the
    `capacity` most recently used entries (a buffer's old versions fall out)."""

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._trees: OrderedDict[tuple[str, str], ast.SourceFile | SpecError] = OrderedDict()

    def parse(self, text: str, path: str) -> ast.SourceFile:
        if len(text) > MAX_SOURCE_BYTES:  # refused at once (E0105); 128 copies of a 10 MB buffer are not kept
            return parse_module(text, path)
        key = (path, text)
        found = self._trees.get(key)
        if found is None:
            try:
                found = parse_module(text, path)
            except SpecError as exc:
                found = exc
            self._trees[key] = found
            if len(self._trees) > self.capacity:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(key)
        if isinstance(found, SpecError):
            raise SpecError(found.diagnostics, found.sources)
        return found


@dataclass(frozen=True)
class Analysis:
    """What the editor features answer from: one buffer at one version, checked."""

    path: str  # the buffer's file path (absolute for a file; `<untitled:...>` for an unsaved buffer)
    text: str
    version: int | None
    module: ast.SourceFile  # the buffer's own syntax tree (no definitions when it does not parse)
    library: Library | None  # the buffer and every file it uses (None: the buffer could not be read)
    networks: dict[str, Network]  # the buffer's networks that checked, by name, in the file's order
    failed: dict[str, tuple[Diagnostic, ...]]  # the buffer's networks that did not check: their errors
    diagnostics: tuple[Diagnostic, ...]  # every error and warning, in every file, sorted by position
    sources: dict[str, str] = field(default_factory=dict)  # path -> text of every file read

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    def in_file(self, path: str) -> tuple[Diagnostic, ...]:
        """The diagnostics whose span lies in the file at `path`."""
        key = file_key(path)
        return tuple(d for d in self.diagnostics if d.span is not None and file_key(d.span.path) == key)


def analyse(
    text: str,
    path: str,
    *,
    version: int | None = None,
    overlay: Mapping[str, str] | None = None,
    cache: ParseCache | None = None,
) -> Analysis:
    """Check the buffer `text` of the file at `path`.

    `overlay` maps a file path to the text an editor holds for it (open, perhaps unsaved), which
    `use` then reads instead of the file on disk."""
    cache = cache or ParseCache()
    reporter = Reporter()
    collecting = gc.isenabled()
    gc.disable()  # as the pipeline does: the elaboration frees nothing until it returns
    try:
        try:
            library = read_library(text, path, reporter, read_file=_reader(overlay or {}), parse=cache.parse)
        except RecursionError:
            reporter.error("E0105", "spec too deeply nested to check", Span.point(path, 1, 1))
            return _result(text, path, version, None, {}, {}, reporter.diagnostics, reporter.sources)
        diagnostics = list(reporter.diagnostics) + list(reporter.warnings)
        networks: dict[str, Network] = {}
        failed: dict[str, tuple[Diagnostic, ...]] = {}
        # As `check` does: a file whose library has errors (a syntax error, a missing `use`, a name
        # defined twice) is not elaborated, as every network would report what follows from them.
        if not reporter.diagnostics:
            for definition in library.root.definitions:
                if definition.kind != "network":
                    continue
                network, found = _check_network(library, definition.name, path)
                diagnostics += found
                if network is not None:
                    networks[definition.name] = network
                else:
                    failed[definition.name] = tuple(d for d in found if d.severity == "error")
        return _result(text, path, version, library, networks, failed, diagnostics, library.sources)
    finally:
        if collecting:
            gc.enable()


def _check_network(library: Library, name: str, path: str) -> tuple[Network | None, list[Diagnostic]]:
    """One network at its default parameters: the Network and its warnings, or None and its errors."""
    reporter = Reporter()
    reporter.sources.update(library.sources)
    try:
        elaboration = elaborate(library, name, {}, {}, reporter, None)
        if elaboration is None:
            reporter.raise_if_failed()
            return None, list(reporter.diagnostics) + list(reporter.warnings)
        network = finish_network(elaboration, name, path, reporter)
    except SpecError as exc:
        return None, list(exc.diagnostics) + list(reporter.warnings)
    except RecursionError:
        definition = library.definitions[name]
        return None, [Diagnostic("E0105", "spec too deeply nested to check", definition.name_span)]
    return network, list(network.warnings)


def _reader(overlay: Mapping[str, str]) -> Callable[[str], str]:
    """A used file's text: the editor's buffer when one is open, else the file on disk."""
    buffers = {file_key(p): text for p, text in overlay.items()}

    def read_file(path: str) -> str:
        held = buffers.get(file_key(path))
        return held if held is not None else decode(read_source(path), path)

    return read_file


def _result(text, path, version, library, networks, failed, diagnostics, sources) -> Analysis:
    unique: dict[tuple, Diagnostic] = {}
    for d in diagnostics:  # the same block's error, met again by a second network of the file
        unique.setdefault((d.code, d.span, d.message), d)
    module = library.root if library is not None else ast.SourceFile(path, (), ())
    return Analysis(
        path=path,
        text=text,
        version=version,
        module=module,
        library=library,
        networks=networks,
        failed=failed,
        diagnostics=tuple(sorted_by_position(list(unique.values()))),
        sources=dict(sources),
    )
