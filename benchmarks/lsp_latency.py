"""How long `resdsl lsp` takes from a keystroke to its diagnostics, against the 100 ms budget.

Starts `python -m resdsl lsp` with a real LSP client (pygls's), opens copies of specs/resnet.res and
blocks.res (resnet152's family file and the blocks it uses), and types: N keystrokes after a warm-up,
each one character typed or deleted, half in a comment and half in code (a digit of
`classes = 1000`, a space in the chain of the stem), no two leaving the same text, each timed from
sending didChange to receiving the publishDiagnostics of that version. Three cases:
  1. resnet.res alone (its network, resnet50 at the defaults, checked at every keystroke);
  2. a copy of resnet.res whose default depth is 152 (resnet152, 3x the blocks), alone;
  3. resnet.res with specs/resnet152.res open beside it (`use "resnet.res"`): a keystroke in the
     family file checks both; timed to resnet.res's diagnostics and to resnet152.res's.
Prints the median, p95 and max of each, their ratio to the 100 ms budget, and the reference measured in
the same run: `resdsl check`'s in-process load of the same network (resdsl.load, median).

    python benchmarks/lsp_latency.py [--keystrokes 100] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

import resdsl

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 0.100  # seconds from a keystroke to its diagnostics


class Client:
    """A pygls client that notes when each (uri, version)'s diagnostics arrived."""

    def __init__(self) -> None:
        self.lsp = LanguageClient("lsp-latency", "1")
        self.arrived: dict[tuple[str, int | None], float] = {}
        self.errors: dict[str, int] = {}
        self.waiting: dict[tuple[str, int | None], asyncio.Event] = {}

        @self.lsp.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(client: LanguageClient, params: lsp.PublishDiagnosticsParams) -> None:
            key = (params.uri, params.version)
            self.arrived[key] = time.perf_counter()
            self.errors[params.uri] = sum(d.severity == lsp.DiagnosticSeverity.Error for d in params.diagnostics)
            if key in self.waiting:
                self.waiting[key].set()

    async def start(self) -> None:
        await self.lsp.start_io(sys.executable, "-m", "resdsl", "lsp")
        await self.lsp.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
        self.lsp.initialized(lsp.InitializedParams())

    async def stop(self) -> None:
        await self.lsp.shutdown_async(None)
        self.lsp.exit(None)
        await self.lsp.stop()

    async def published(self, uri: str, version: int) -> float:
        key = (uri, version)
        if key not in self.arrived:
            self.waiting[key] = asyncio.Event()
            await asyncio.wait_for(self.waiting[key].wait(), 60)
        return self.arrived[key]

    async def open(self, path: Path) -> str:
        uri = path.as_uri()
        self.lsp.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(uri=uri, language_id="resdsl", version=1, text=path.read_text())
            )
        )
        await self.published(uri, 1)
        return uri

    def change(self, uri: str, version: int, line: int, character: int, end_character: int, text: str) -> None:
        start = lsp.Position(line=line, character=character)
        end = lsp.Position(line=line, character=end_character)
        self.lsp.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    lsp.TextDocumentContentChangePartial(range=lsp.Range(start=start, end=end), text=text)
                ],
            )
        )


def keystrokes(text: str, count: int) -> list[tuple[int, int, int, str]]:
    """(line, character, end character, new text) for `count` keystrokes, in turn in a comment (a word
    typed at the end of the first line) and in code (the last digit of `classes = 1000` retyped, a space
    typed or deleted before the stem's first `->`). The comment only grows, so no two keystrokes leave
    the same text: each one is parsed afresh, as in real typing (the server remembers parses by text)."""
    lines = text.split("\n")
    classes = next(
        (row, line.index("classes = 1000") + 13) for row, line in enumerate(lines) if "classes = 1000" in line
    )
    stem = next((row, line.index("->")) for row, line in enumerate(lines) if "conv stem_width" in line and "->" in line)
    strokes, typed, spaced = [], 0, False
    for i in range(count):
        if i % 2 == 0:
            column = len(lines[0]) + typed
            strokes.append((0, column, column, "resdsl"[typed % 6]))
            typed += 1
        elif i % 4 == 1:
            row, column = classes
            strokes.append((row, column, column + 1, str((i // 4) % 10)))
        else:
            row, column = stem
            strokes.append((row, column, column + 1 if spaced else column, "" if spaced else " "))
            spaced = not spaced
    return strokes


def summary(name: str, seconds: list[float], reference: float) -> str:
    ordered = sorted(seconds)
    median = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"  {name:<44} median {median * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  max {ordered[-1] * 1000:6.1f} ms"
        f"  | p95/budget {p95 / BUDGET:.2f}  p95/check {p95 / reference:.2f}"
    )


async def type_into(client: Client, uri: str, text: str, count: int, warmup: int, also: str | None = None):
    """Type `warmup + count` keystrokes into `uri`; the latencies of the last `count` (and of `also`'s
    republish, when a keystroke in `uri` checks another open buffer again)."""
    own, other = [], []
    version = 1
    for i, (row, column, end, typed) in enumerate(keystrokes(text, warmup + count)):
        version += 1
        sent = time.perf_counter()
        client.change(uri, version, row, column, end, typed)
        arrived = await client.published(uri, version)
        if also is not None:
            await asyncio.sleep(0)
            while client.arrived.get((also, 1), 0) < sent:
                await asyncio.sleep(0.0005)
        if i >= warmup:
            own.append(arrived - sent)
            if also is not None:
                other.append(client.arrived[(also, 1)] - sent)
    return own, other


def check_time(path: Path, runs: int = 15) -> float:
    resdsl.load(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        resdsl.load(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def run(count: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        for name in ("resnet.res", "blocks.res", "resnet152.res"):
            shutil.copy(ROOT / "specs" / name, here / name)
        family = (here / "resnet.res").read_text()
        deep = here / "resnet_deep.res"
        deep.write_text(family.replace("network resnet(depth = 50,", "network resnet_deep(depth = 152,"))
        assert "depth = 152," in deep.read_text()
        reference50 = check_time(here / "resnet.res")
        reference152 = check_time(deep)
        print(
            f"resdsl check (in-process load, median): resnet.res {reference50 * 1000:.1f} ms, "
            f"resnet152 {reference152 * 1000:.1f} ms"
        )

        print(f"keystroke -> publishDiagnostics of its version, {count} keystrokes after {warmup}:")
        client = Client()
        await client.start()
        uri = await client.open(here / "resnet.res")
        own, _ = await type_into(client, uri, family, count, warmup)
        print(summary("resnet.res (resnet50 at its defaults)", own, reference50))
        await client.stop()

        client = Client()
        await client.start()
        uri = await client.open(deep)
        own, _ = await type_into(client, uri, deep.read_text(), count, warmup)
        print(summary("copy of resnet.res, depth = 152 by default", own, reference152))
        await client.stop()

        client = Client()
        await client.start()
        uri = await client.open(here / "resnet.res")
        beside = await client.open(here / "resnet152.res")
        own, other = await type_into(client, uri, family, count, warmup, also=beside)
        print(summary("resnet.res, resnet152.res open: resnet.res", own, reference50))
        print(summary("resnet.res, resnet152.res open: resnet152.res", other, reference50 + reference152))
        assert client.errors[uri] == 0 and client.errors[beside] == 0
        await client.stop()
    print(f"budget: {BUDGET * 1000:.0f} ms (a ratio below 1 meets it)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keystrokes", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    asyncio.run(run(args.keystrokes, args.warmup))


if __name__ == "__main__":
    main()
