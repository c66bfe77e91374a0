"""The open buffers, their analyses, and the diagnostics each file shows.

`Documents` keeps one `Analysis` per open .res buffer, made from the buffer's text and the texts of
every other open buffer (a `use`d file being edited counts as its editor text, saved or not). When a
buffer changes, every open buffer whose analysis read it is analysed again, so that editing
blocks.res refreshes the diagnostics of resnet.res. `publishable()` then says, for every open file,
the diagnostics it shows: its own analysis's, those other buffers' analyses found in it (an error in
a block of blocks.res met while checking resnet.res), and nothing else.

An exception inside resdsl's checker (a bug) never stops the server: the buffer gets an empty
analysis and one diagnostic at 1:1 that says so (diagnostics.internal_error).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass

from lsprotocol import types as lsp

from .. import syntax as ast
from .analysis import Analysis, ParseCache, analyse
from .diagnostics import diagnostics_for, internal_error
from .positions import path_of, same_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Buffer:
    """An open document as the client last sent it."""

    uri: str
    text: str
    version: int | None


class Documents:
    """The analyses of the open buffers, kept up to date with their texts."""

    def __init__(self, buffers: Callable[[], dict[str, Buffer]], log: Callable[[str], None] | None = None) -> None:
        self._buffers = buffers  # the open documents now (the server's workspace), by URI
        self._log = log or (lambda message: None)
        self.cache = ParseCache()
        self.analyses: dict[str, Analysis] = {}
        self.crashes: dict[str, str] = {}  # URI -> why the checker failed on its last analysis
        self.published: dict[str, list[lsp.Diagnostic]] = {}  # what each URI shows now

    def analysis_of(self, uri: str) -> Analysis | None:
        """The analysis of the open buffer at `uri` for its current text (analysed now if stale);
        None for a URI that is not an open .res buffer."""
        buffer = self._buffers().get(uri)
        if buffer is None:
            return None
        found = self.analyses.get(uri)
        if found is None or found.version != buffer.version or found.text != buffer.text:
            found = self._analyse(buffer)
        return found

    def changed(self, uri: str) -> None:
        """`uri` was opened, edited or saved: analyse it (then `readers_of(uri)`, the caller's turn)."""
        buffer = self._buffers().get(uri)
        if buffer is not None:
            self._analyse(buffer)

    def readers_of(self, uri: str) -> list[str]:
        """The other open buffers whose last analysis read the file at `uri` (they `use` it)."""
        path = path_of(uri)
        return [
            other
            for other, found in self.analyses.items()
            if other != uri and any(same_file(path, p) for p in found.sources)
        ]

    def closed(self, uri: str) -> None:
        """`uri` was closed: forget it, and analyse again the buffers that read its editor text
        (they now read the file on disk)."""
        self.analyses.pop(uri, None)
        self.crashes.pop(uri, None)
        path = path_of(uri)
        for other, buffer in self._buffers().items():
            found = self.analyses.get(other)
            if found is not None and any(same_file(path, p) for p in found.sources):
                self._analyse(buffer)

    def publishable(
        self, only: Collection[str] | None = None, stale: Collection[str] = ()
    ) -> dict[str, tuple[int | None, list[lsp.Diagnostic]]]:
        """For every open buffer (or those in `only`): its version and every diagnostic it shows now,
        leaving out what the `stale` buffers' analyses found in other files (they are being redone)."""
        buffers = self._buffers()
        shown: dict[str, tuple[int | None, list[lsp.Diagnostic]]] = {}
        for uri, buffer in buffers.items():
            if only is not None and uri not in only:
                continue
            try:
                found = self._shown_in(uri, buffers, stale)
            except Exception as exc:  # a bug in the conversion: the buffer still gets its version's answer
                self._log(f"resdsl lsp: the diagnostics of {uri} failed:\n{traceback.format_exc()}")
                found = [internal_error(f"{type(exc).__name__}: {str(exc)[:200]}")]
            shown[uri] = (buffer.version, found)
        return shown

    def _shown_in(self, uri: str, buffers: dict[str, Buffer], stale: Collection[str]) -> list[lsp.Diagnostic]:
        path = path_of(uri)
        found: list[lsp.Diagnostic] = []
        if uri in self.crashes:
            found.append(internal_error(self.crashes[uri]))
        own = self.analyses.get(uri)
        if own is not None:
            found += diagnostics_for(own, path)
        for other, analysis in self.analyses.items():
            if other != uri and other in buffers and other not in stale:
                # what checking another buffer found in this file, once (its own check may find it too)
                found += [d for d in diagnostics_for(analysis, path) if d not in found]
        return found

    def _analyse(self, buffer: Buffer) -> Analysis:
        path = path_of(buffer.uri)
        overlay = {
            path_of(uri): other.text
            for uri, other in self._buffers().items()
            if uri != buffer.uri and path_of(uri).endswith(".res")
        }
        try:
            found = analyse(buffer.text, path, version=buffer.version, overlay=overlay, cache=self.cache)
            self.crashes.pop(buffer.uri, None)
        except Exception as exc:  # a bug of resdsl: say so in the buffer, keep serving
            self._log(f"resdsl's checker failed on {buffer.uri}:\n{traceback.format_exc()}")
            self.crashes[buffer.uri] = f"{type(exc).__name__}: {str(exc)[:200]}"
            found = Analysis(
                path=path,
                text=buffer.text,
                version=buffer.version,
                module=ast.SourceFile(path, (), ()),
                library=None,
                networks={},
                failed={},
                diagnostics=(),
                sources={path: buffer.text},
            )
        self.analyses[buffer.uri] = found
        return found
