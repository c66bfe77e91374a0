"""`resdsl fmt [FILE|DIR|-]... [--check] [--diff]`: rewrite .res specs in the canonical layout.

Files are rewritten in place, atomically (resdsl/files.py), and named as they are (`reformatted PATH`);
a directory stands for every `*.res` under it (sorted; hidden directories skipped); `-` reads stdin and
writes the result to stdout (for editors). `--check` writes nothing: it lists the files that would
change and exits 1 if there are any. `--diff` writes nothing either: it prints a unified diff.

A file that does not parse gets the usual located error and exit 1, and the others are still
formatted; a path that does not exist is a usage error (exit 2), as with `resdsl check`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import IO

from .arguments import EXIT_OK, EXIT_SPEC, EXIT_USAGE

STDIN = "-"


def add_fmt_parser(commands) -> None:
    fmt = commands.add_parser("fmt", help="rewrite .res specs in the canonical layout (or --check it)")
    fmt.add_argument(
        "paths",
        nargs="+",
        metavar="FILE|DIR|-",
        help="a .res file, a directory (every *.res under it) or - (stdin to stdout)",
    )
    fmt.add_argument(
        "--check",
        action="store_true",
        help="write nothing; list the files that are not formatted and exit 1 if there are any",
    )
    fmt.add_argument("--diff", action="store_true", help="write nothing; print what would change as a unified diff")


def run_fmt(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in _expand(args.paths):
        if isinstance(path, _Missing):
            print(f"resdsl: error: {path.path}: no such file or directory", file=sys.stderr)
            status = max(status, EXIT_USAGE)
            continue
        status = max(status, _format_one(path, check=args.check, diff=args.diff))
    return status


class _Missing:
    def __init__(self, path: str):
        self.path = path


def _expand(paths: list[str]) -> list[str | _Missing]:
    """The files to format: each path given, a directory's *.res files (sorted), `-` as it is."""
    found: list[str | _Missing] = []
    for given in paths:
        path = Path(given)
        if given == STDIN or path.is_file():
            found.append(given)
        elif path.is_dir():
            found += [str(p) for p in sorted(path.rglob("*.res")) if _visible(p.relative_to(path)) and p.is_file()]
        elif path.exists():  # a device or a pipe (`<(...)`): read as a file
            found.append(given)
        else:
            found.append(_Missing(given))
    return found


def _visible(relative: Path) -> bool:
    """No part of the path under the directory is hidden (`.git`, `.venv`, `.tox`)."""
    return not any(part.startswith(".") for part in relative.parts[:-1])


def _format_one(path: str, check: bool, diff: bool) -> int:
    from .errors import SpecError
    from .files import WriteError, write_atomically
    from .format import FormatterBug, format_text
    from .parse import decode, read_source

    shown = "<stdin>" if path == STDIN else path
    try:
        data = sys.stdin.buffer.read() if path == STDIN else read_source(path)
        text = decode(data, shown)
        formatted = format_text(text, shown)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC
    except (OSError, FormatterBug) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"resdsl: error: {shown}: {reason}", file=sys.stderr)
        return EXIT_SPEC
    changed = formatted != text
    if diff and changed:
        import difflib

        lines = difflib.unified_diff(_lines(text), _lines(formatted), shown, f"{shown} (formatted)")
        sys.stdout.writelines(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
        )
    if check or diff:
        if check and changed:
            print(f"would reformat {shown}", file=sys.stderr)
        return EXIT_SPEC if check and changed else EXIT_OK
    if path == STDIN:
        sys.stdout.write(formatted)
        return EXIT_OK
    if changed:
        encoded = formatted.encode("utf-8")

        def write(handle: IO[bytes]) -> None:
            handle.write(encoded)

        mode = stat.S_IMODE(os.stat(path).st_mode)
        try:
            write_atomically(path, write)
        except WriteError as exc:
            print(f"resdsl: error: {exc}", file=sys.stderr)
            return EXIT_SPEC
        with contextlib.suppress(OSError):  # the new file has the usual mode: give it the old one's
            os.chmod(path, mode)
        print(f"reformatted {shown}", file=sys.stderr)
    return EXIT_OK


def _lines(text: str) -> list[str]:
    """Lines broken at `\\n` only, as the parser breaks them (not at a form feed inside a comment)."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
