"""The editor features of `resdsl lsp`, registered on the server: hover, definition, references,
document and workspace symbols, completion, signature help and inlay hints.

`register(server, analysis_of, settings)` adds the handlers. Each answers from the buffer's
`Analysis` (`analysis_of(uri)`, kept up to date by the server) through the pure functions of
hover.py, navigation.py, completion.py, signatures.py and inlay.py. A handler never raises: an
unexpected error is logged and answered with nothing, so one bad feature cannot take the editor's
session down. Completion and signature help also use the last analysis of the buffer that parsed,
as a buffer being typed usually does not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from .. import syntax as ast
from ..errors import SpecError
from ..library import specs_dir
from .analysis import Analysis, ParseCache
from .completion import complete
from .facts import with_networks_of
from .hover import hover
from .inlay import inlay_hints
from .navigation import definition, document_symbols, find_references, workspace_symbols
from .positions import file_key, path_of, same_file
from .signatures import signature_help

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_WORKSPACE_FILES = 300  # references and symbols read at most this many .res files of the workspace
_SKIPPED_FOLDERS = {"node_modules", "__pycache__", "build", "dist", "site-packages"}


def guarded(call: Callable[[], T], default: T, what: str) -> T:
    """`call()`, or `default` when it raises (logged): a feature's bug answers nothing, never an error."""
    try:
        return call()
    except Exception:  # noqa: BLE001 - a handler must not fail the request
        log.exception("resdsl lsp: %s failed", what)
        return default


class LastGood:
    """Each buffer's last analysis whose file parsed, for completion while the buffer does not."""

    def __init__(self) -> None:
        self._by_uri: dict[str, Analysis] = {}

    def update(self, uri: str, analysis: Analysis | None) -> Analysis | None:
        if analysis is not None and analysis.library is not None and analysis.module.definitions:
            self._by_uri[uri] = analysis
        return self._by_uri.get(uri)


def register(
    server: LanguageServer,
    analysis_of: Callable[[str], Analysis | None],
    settings: Callable[[], dict[str, Any]],
) -> None:
    last_good = LastGood()
    cache = ParseCache(capacity=512)

    def current(uri: str) -> tuple[Analysis | None, Analysis | None]:
        analysis = analysis_of(uri)
        return analysis, last_good.update(uri, analysis)

    def workspace_texts() -> list[tuple[str, str]]:
        return list(_workspace_texts(server))

    def workspace_modules(analysis: Analysis) -> list[tuple[str, ast.SourceFile]]:
        modules = []
        for path, text in workspace_texts():
            if same_file(path, analysis.path):
                continue
            try:
                modules.append((path, cache.parse(text, path)))
            except SpecError:
                continue
        return modules

    def answer(uri: str, what: str, default: T, compute: Callable[[Analysis, Analysis | None], T]) -> T:
        """`compute(analysis, last_good)` for the open buffer `uri`; `default` when it is not open or
        anything fails (the server's own lookup included)."""

        def run() -> T:
            analysis, good = current(uri)
            return default if analysis is None else compute(analysis, good)

        return guarded(run, default, what)

    def open_analyses(uri: str) -> Iterator[tuple[str, Analysis]]:
        """The analyses of the other open buffers (for a library file's hovers)."""
        for other in list(server.workspace.text_documents):
            if other != uri:
                found = analysis_of(other)
                if found is not None:
                    yield other, found

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        return answer(uri, "hover", None, lambda a, _: hover(with_networks_of(a, open_analyses(uri)), params.position))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: lsp.DefinitionParams) -> list[lsp.Location] | None:
        return answer(params.text_document.uri, "definition", None, lambda a, _: definition(a, params.position) or None)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def on_references(params: lsp.ReferenceParams) -> list[lsp.Location] | None:
        include = params.context.include_declaration if params.context else True
        return answer(
            params.text_document.uri,
            "references",
            None,
            lambda a, _: find_references(a, params.position, include, workspace_modules(a)),
        )

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_document_symbol(params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol] | None:
        def symbols(analysis: Analysis, good: Analysis | None) -> list[lsp.DocumentSymbol] | None:
            source = analysis if analysis.module.definitions else good  # mid-edit: the last version that parsed
            return document_symbols(source) if source is not None else None

        return answer(params.text_document.uri, "document symbols", None, symbols)

    @server.feature(lsp.WORKSPACE_SYMBOL)
    def on_workspace_symbol(params: lsp.WorkspaceSymbolParams) -> list[lsp.SymbolInformation]:
        return guarded(lambda: workspace_symbols(params.query, workspace_texts()), [], "workspace symbols")

    @server.feature(
        lsp.TEXT_DOCUMENT_COMPLETION,
        lsp.CompletionOptions(trigger_characters=['"', "(", ","]),
    )
    def on_completion(params: lsp.CompletionParams) -> lsp.CompletionList | None:
        return answer(params.text_document.uri, "completion", None, lambda a, good: complete(a, params.position, good))

    @server.feature(
        lsp.TEXT_DOCUMENT_SIGNATURE_HELP,
        lsp.SignatureHelpOptions(trigger_characters=["(", ","], retrigger_characters=[" ", "="]),
    )
    def on_signature_help(params: lsp.SignatureHelpParams) -> lsp.SignatureHelp | None:
        return answer(
            params.text_document.uri,
            "signature help",
            None,
            lambda a, good: signature_help(a, params.position, good),
        )

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
    def on_inlay_hint(params: lsp.InlayHintParams) -> list[lsp.InlayHint] | None:
        options: dict[str, Any] = guarded(settings, {}, "settings")
        enabled = bool(options.get("inlayHints", True))
        return answer(params.text_document.uri, "inlay hints", None, lambda a, _: inlay_hints(a, params.range, enabled))


def _workspace_texts(server: LanguageServer) -> Iterator[tuple[str, str]]:
    """(path, text) of the .res files of the workspace folders (at most MAX_WORKSPACE_FILES), then
    of the bundled library, each file once."""
    folders = []
    try:
        folders = [path_of(f.uri) for f in (server.workspace.folders or {}).values()]
        if not folders and server.workspace.root_path:
            folders = [server.workspace.root_path]
    except Exception:  # noqa: BLE001 - no workspace yet (before `initialize`): the library only
        log.exception("resdsl lsp: workspace folders")
    paths = [p for folder in folders for p in _res_files(folder)][:MAX_WORKSPACE_FILES]
    paths += sorted(str(p) for p in specs_dir().glob("*.res"))
    seen: set[str] = set()
    for path in paths:
        key = file_key(path)
        if key in seen:
            continue
        seen.add(key)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                yield path, f.read()
        except OSError:
            continue


def _res_files(folder: str) -> Iterator[str]:
    count = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_FOLDERS)
        for name in sorted(files):
            if name.endswith(".res"):
                count += 1
                yield os.path.join(root, name)
                if count >= MAX_WORKSPACE_FILES:
                    return
