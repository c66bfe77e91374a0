"""`resdsl lsp`: the language server, over stdio.

The server keeps the open .res buffers (pygls applies the client's incremental edits), analyses a
buffer when it is opened, edited or saved (documents.py), and publishes the diagnostics of every
open file that changed, each with its document's version. The editor features (hover, definition,
completion, ...) live in features.py and answer from the same analyses; quick fixes are in
actions.py, formatting in formatting.py.

Positions are UTF-16 code units, LSP's default, whatever encodings the client offers: positions.py
converts resdsl's spans in those units.

Nothing a client sends stops the server: every handler runs inside `guarded`, which logs an
exception with its traceback to the client's log (window/logMessage, type Error) and answers the
request with an empty result.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import traceback
from collections.abc import Callable, Collection
from typing import Any, TypeVar
from urllib.parse import unquote  # pygls's workspace keys a document by its URI unquoted

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.workspace import TextDocument

from ..version import __version__
from .actions import code_actions
from .analysis import Analysis
from .documents import Buffer, Documents
from .formatting import format_document, format_range
from .positions import path_of

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SETTINGS: dict[str, Any] = {"inlayHints": True}


class ResdslServer(LanguageServer):
    """pygls's server, with the open buffers' analyses and the client's settings."""

    documents: Documents
    settings: dict[str, Any]
    client_uris: dict[str, str]  # pygls's key of an open document (its URI unquoted) -> the client's URI

    def log_error(self, message: str) -> None:
        logger.error(message)
        try:
            self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Error, message=message))
        except Exception:  # no client to tell (not started, or gone)
            pass

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls's default shows a popup for an error outside a request; the log is enough
        self.log_error(f"resdsl lsp: {type(error).__name__}: {error}")


class _Protocol(LanguageServerProtocol):
    """pygls's protocol, with UTF-16 positions whatever the client prefers (positions.py counts in
    UTF-16) and documents split into lines as LSP splits them."""

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams):
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            general.position_encodings = [lsp.PositionEncodingKind.Utf16]
        return (yield from super().lsp_initialize(params))


# LSP ends a line at \r\n, \r or \n only; str.splitlines also splits at \x0c, \x1c, \u2028 ..., which
# would apply an edit after such a character (a form feed in a comment, binary junk) to the wrong line.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class _Document(TextDocument):
    @property
    def lines(self):
        return tuple(_LINE.findall(self.source))


def guarded(server: ResdslServer, empty: Any = None) -> Callable[[F], F]:
    """Run a handler so that an exception is logged (with its traceback) and answered with `empty`."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Exception:
                server.log_error(f"resdsl lsp: {handler.__name__} failed:\n{traceback.format_exc()}")
                return empty

        return run  # type: ignore[return-value]

    return wrap


def build_server() -> ResdslServer:
    """The server, every handler registered; `serve_stdio` starts it."""
    server = ResdslServer(
        "resdsl",
        __version__,
        text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
        protocol_cls=_Protocol,
    )
    server.settings = dict(DEFAULT_SETTINGS)
    server.client_uris = {}

    def open_buffers() -> dict[str, Buffer]:
        try:
            documents = server.workspace.text_documents
        except RuntimeError:  # before `initialize`
            return {}
        open_now = {}
        for key, document in documents.items():
            uri = server.client_uris.get(key, key)
            if _is_spec(uri, document):
                open_now[uri] = Buffer(uri, document.source, document.version)
        return open_now

    server.documents = Documents(open_buffers, server.log_error)

    def analysis_of(uri: str) -> Analysis | None:
        return server.documents.analysis_of(server.client_uris.get(unquote(uri), uri))

    def settings() -> dict[str, Any]:
        return server.settings

    @server.feature(lsp.INITIALIZE)
    @guarded(server)
    def initialize(ls: ResdslServer, params: lsp.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict):
            ls.settings.update(options.get("resdsl", options) if isinstance(options.get("resdsl"), dict) else options)
        workspace = ls.workspace

        def create(uri: str, source=None, version=None, language_id=None) -> TextDocument:
            return _Document(
                uri,
                source=source,
                version=version,
                language_id=language_id,
                sync_kind=workspace._sync_kind,
                position_codec=workspace.position_codec,
            )

        workspace._create_text_document = create  # type: ignore[method-assign,assignment]

    @server.feature(lsp.INITIALIZED)
    @guarded(server)
    def initialized(ls: ResdslServer, params: lsp.InitializedParams) -> None:
        # Ask to hear of .res files changed on disk (a `git checkout`, another editor) where the client
        # lets a server say which files it watches; the buffers that use them are then checked again.
        workspace = ls.client_capabilities.workspace
        watched = workspace.did_change_watched_files if workspace is not None else None
        if watched is not None and watched.dynamic_registration:
            options = lsp.DidChangeWatchedFilesRegistrationOptions(
                watchers=[lsp.FileSystemWatcher(glob_pattern="**/*.res")]
            )
            registration = lsp.Registration(
                id="resdsl-res-files", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
            )
            ls.client_register_capability(lsp.RegistrationParams(registrations=[registration]))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @guarded(server)
    def changed_on_disk(ls: ResdslServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        readers = {reader for change in params.changes for reader in ls.documents.readers_of(change.uri)}
        for reader in readers:
            ls.documents.changed(reader)
        _publish(ls, always=readers)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @guarded(server)
    def changed_configuration(ls: ResdslServer, params: lsp.DidChangeConfigurationParams) -> None:
        found = params.settings.get("resdsl") if isinstance(params.settings, dict) else None
        if isinstance(found, dict):
            ls.settings.update(found)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    @guarded(server)
    def did_open(ls: ResdslServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.client_uris[unquote(params.text_document.uri)] = params.text_document.uri
        _refresh(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    @guarded(server)
    def did_change(ls: ResdslServer, params: lsp.DidChangeTextDocumentParams) -> None:
        _refresh(ls, ls.client_uris.get(unquote(params.text_document.uri), params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    @guarded(server)
    def did_save(ls: ResdslServer, params: lsp.DidSaveTextDocumentParams) -> None:
        _refresh(ls, ls.client_uris.get(unquote(params.text_document.uri), params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    @guarded(server)
    def did_close(ls: ResdslServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = ls.client_uris.pop(unquote(params.text_document.uri), params.text_document.uri)
        ls.documents.closed(uri)
        ls.documents.published.pop(uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        _publish(ls, always=())

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix], resolve_provider=False),
    )
    @guarded(server, empty=[])
    def code_action(ls: ResdslServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        analysis = analysis_of(params.text_document.uri)
        if analysis is None:
            return []
        return code_actions(analysis, params.text_document.uri, params.range, params.context.diagnostics)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    @guarded(server, empty=None)
    def formatting(ls: ResdslServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        source = _source_of(ls, params.text_document.uri)
        return None if source is None else format_document(source, path_of(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_RANGE_FORMATTING)
    @guarded(server, empty=None)
    def range_formatting(ls: ResdslServer, params: lsp.DocumentRangeFormattingParams) -> list[lsp.TextEdit] | None:
        source = _source_of(ls, params.text_document.uri)
        return None if source is None else format_range(source, path_of(params.text_document.uri), params.range)

    from .features import register as register_features

    register_features(server, analysis_of, settings)
    return server


def _refresh(server: ResdslServer, uri: str) -> None:
    """Analyse `uri` and publish its diagnostics (its client waits for this version's), then analyse
    each open buffer that reads it (editing blocks.res changes what resnet.res shows) and publish
    what changed. Until they are redone, what their analyses found in `uri` is not shown: it may be
    what the edit just fixed."""
    documents = server.documents
    documents.changed(uri)
    readers = documents.readers_of(uri)
    _publish(server, always=[uri], only=[uri], stale=readers)
    for reader in readers:
        documents.changed(reader)
    if readers:
        _publish(server, always=readers)


def _publish(
    server: ResdslServer, always: Collection[str], only: Collection[str] | None = None, stale: Collection[str] = ()
) -> None:
    """Publish the diagnostics of the open buffers (those in `only`) that changed, and of `always`."""
    for uri, (version, diagnostics) in server.documents.publishable(only, stale).items():
        if uri in always or server.documents.published.get(uri) != diagnostics:
            server.documents.published[uri] = diagnostics
            server.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
            )


def _is_spec(uri: str, document: TextDocument) -> bool:
    """A buffer the server checks: a .res file, or an unsaved buffer the client calls resdsl."""
    return uri.endswith(".res") or document.language_id == "resdsl"


def serve_stdio(log_file: str | None = None) -> int:
    """Serve one client on stdin/stdout until it exits; the exit status."""
    if log_file:
        logging.basicConfig(filename=log_file, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The protocol owns the real stdout; anything else that prints (a library's stray print) goes to
    # stderr, where it cannot corrupt a message.
    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr
    build_server().start_io(sys.stdin.buffer, protocol_out)
    return 0


def _source_of(ls: ResdslServer, uri: str) -> str | None:
    """The text the editor holds for an open document (None: not open)."""
    document = ls.workspace.text_documents.get(unquote(uri))
    return None if document is None else document.source
