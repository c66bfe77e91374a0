"""What the end-to-end tests of `resdsl lsp` share: the server command, and a client that keeps every
publishDiagnostics with its version, so a test can wait for the diagnostics of one version."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "resdsl", "lsp", "--stdio"],
    server_env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
)


def record(client: LanguageClient) -> None:
    """Keep every publishDiagnostics the server sends in `client.published` (uri, version, diagnostics)."""
    client.published = []  # type: ignore[attr-defined]
    protocol = client.protocol
    handle = protocol._handle_notification

    def handle_and_record(method_name, params):
        if method_name == lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS:
            client.published.append((params.uri, params.version, list(params.diagnostics)))  # type: ignore[attr-defined]
        return handle(method_name, params)

    protocol._handle_notification = handle_and_record  # type: ignore[method-assign]


async def start(client: LanguageClient, options: dict | None = None) -> lsp.InitializeResult:
    record(client)
    client.registrations = []  # type: ignore[attr-defined]

    @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(ls: LanguageClient, params: lsp.RegistrationParams) -> None:
        client.registrations += params.registrations  # type: ignore[attr-defined]

    client.initialize_result = await client.initialize_session(  # type: ignore[attr-defined]
        lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(
                general=lsp.GeneralClientCapabilities(
                    # UTF-8 first: the server must answer in UTF-16 all the same
                    position_encodings=[lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf16]
                ),
                workspace=lsp.WorkspaceClientCapabilities(
                    did_change_watched_files=lsp.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True)
                ),
                text_document=lsp.TextDocumentClientCapabilities(
                    publish_diagnostics=lsp.PublishDiagnosticsClientCapabilities(
                        related_information=True, version_support=True, code_description_support=True
                    ),
                    code_action=lsp.CodeActionClientCapabilities(
                        code_action_literal_support=lsp.ClientCodeActionLiteralOptions(
                            code_action_kind=lsp.ClientCodeActionKindOptions(value_set=[lsp.CodeActionKind.QuickFix])
                        ),
                        is_preferred_support=True,
                    ),
                ),
            ),
            initialization_options=options,
        )
    )
    return client.initialize_result  # type: ignore[attr-defined]


async def diagnostics(
    client: LanguageClient, uri: str, version: int, since: int = 0, timeout: float = 20.0
) -> list[lsp.Diagnostic]:
    """The diagnostics the server last published for `uri` at `version`, among the publications from
    the `since`-th on (waits for them)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for got_uri, got_version, found in reversed(client.published[since:]):  # type: ignore[attr-defined]
            if got_uri == uri and got_version == version:
                return found
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no diagnostics for {uri} version {version}")
        await asyncio.sleep(0.005)


def open_file(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(
                uri=uri, language_id="resdsl", version=version, text=path.read_text() if text is None else text
            )
        )
    )
    return uri


def edit(
    client: LanguageClient, uri: str, version: int, line: int, character: int, end: tuple[int, int] | None, text: str
) -> None:
    """Replace the range (line, character)..end (0-based, UTF-16) by `text`; no end: insert."""
    stop = lsp.Position(line=end[0], character=end[1]) if end else lsp.Position(line=line, character=character)
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                lsp.TextDocumentContentChangePartial(
                    range=lsp.Range(start=lsp.Position(line=line, character=character), end=stop), text=text
                )
            ],
        )
    )


def replace_all(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
