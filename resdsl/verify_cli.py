"""`resdsl verify` on the command line: the space from options or from pyproject.toml, and the output.

With no spec on the command line, the `[tool.resdsl]` table of the nearest pyproject.toml says what
to verify, so CI runs `resdsl verify` with no arguments:

    [[tool.resdsl.verify]]
    specs = "specs/*.res"                 # a glob or a list of them, relative to pyproject.toml
    vary = ["depth=18,34,50", "width=32..64:16"]
    input-range = "32..256"
    examples = 500                        # optional (1000)
    runtime = false                       # optional
    network = "resnet"                    # optional, for files with several networks

The table is validated in one place (`read_config`, against `SCHEMA`): a key of the wrong type, an
unknown key (with the nearest known one) or a file TOML cannot read is a `ConfigError` that names
the file, the line, the key, its value and the type expected. Every outcome, these included, is
written in the `--format` asked for.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arguments import EXIT_OK, EXIT_SPEC, EXIT_USAGE
from .errors import Diagnostic, Span, SpecError, UsageError
from .formats import Finding
from .verify import DEFAULT_EXAMPLES, Report, Space, parse_input_range, parse_vary, verify

# ---- the [tool.resdsl] table ----------------------------------------------------------------------


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_strs(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# key -> (does a value fit, the type expected in words). TOML's booleans are never numbers here, and
# strings are never booleans (`runtime = "no"` is a mistake, not true).
SCHEMA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "specs": (_is_strs, 'a glob or a non-empty list of globs (e.g. "specs/*.res")'),
    "vary": (lambda v: _is_strs(v) or v == [], 'a NAME=VALUES string or a list of them (e.g. ["depth=1..4"])'),
    "input-range": (_is_str, 'a string LO..HI[:STEP] (e.g. "32..256:32")'),
    "examples": (lambda v: _is_int(v) and v >= 1, "a whole number from 1"),
    "runtime": (lambda v: isinstance(v, bool), "true or false"),
    "seed": (_is_int, "a whole number"),
    "network": (_is_str, 'a network name in quotes (e.g. "resnet")'),
}
KEYS = set(SCHEMA)
REQUIRED = ("specs",)
TOP_KEYS = {"verify": "an array of tables, [[tool.resdsl.verify]]"}


class ConfigError(UsageError):
    """pyproject.toml's [tool.resdsl] cannot be read or is not valid: where, and what is wrong."""

    def __init__(self, path: Path | str, line: int, column: int, message: str):
        self.path, self.line, self.column, self.problem = str(path), line, column, message
        super().__init__(f"{_shown(path)}:{line}: {message}")

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(
            "config",
            self.problem,
            Span.point(_shown(self.path), self.line, self.column),
            help="docs/testing.md shows the keys of [[tool.resdsl.verify]]",
        )


def _shown(path: Path | str) -> str:
    shown = os.path.relpath(path)
    return str(path) if shown.startswith("..") else shown


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _value(value: Any) -> str:
    import json

    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = {"true": "true", "false": "false"}.get(text, text)
    return text if len(text) <= 60 else text[:57] + "..."


def _locate(text: str, entry: int | None, key: str | None) -> int:
    """The line of `key` in the `entry`-th [[tool.resdsl.verify]] table (counting from 0), or of the
    table, or of [tool.resdsl]; 1 where none is found (TOML's reader gives no positions)."""
    lines = text.splitlines()
    header = re.compile(r"\s*\[\[\s*tool\s*\.\s*resdsl\s*\.\s*verify\s*\]\]")
    starts = [i for i, line in enumerate(lines) if header.match(line)]
    if entry is not None and entry < len(starts):
        begin = starts[entry]
        end = next((i for i in range(begin + 1, len(lines)) if re.match(r"\s*\[", lines[i])), len(lines))
        if key is not None:
            wanted = re.compile(rf"""\s*["']?{re.escape(key)}["']?\s*=""")
            found = next((i for i in range(begin + 1, end) if wanted.match(lines[i])), None)
            if found is not None:
                return found + 1
        return begin + 1
    for i, line in enumerate(lines):
        if re.match(r"\s*\[\s*tool\s*\.\s*resdsl\s*\]", line) or header.match(line):
            if key is not None:
                wanted = re.compile(rf"""\s*["']?{re.escape(key)}["']?\s*=""")
                found = next((j for j in range(i + 1, len(lines)) if wanted.match(lines[j])), None)
                if found is not None:
                    return found + 1
            return i + 1
    return 1


def _did_you_mean(key: str, known: set[str] | dict) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else f"; the keys are {', '.join(sorted(known))}"


def read_config(path: Path) -> list[Entry]:
    """The [[tool.resdsl.verify]] entries of `path`, each checked against SCHEMA ([] where the file has
    no [tool.resdsl] table). Raises ConfigError for a file that cannot be read or a table that is not
    valid: a wrong type, an unknown key, a missing `specs`."""
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, 1, 1, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, column = (
            (int(at[1]), int(at[2])) if at else (getattr(exc, "lineno", 1) or 1, getattr(exc, "colno", 1) or 1)
        )
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
        raise ConfigError(path, line, column, f"not valid TOML: {problem}") from None
    tool = data.get("tool", {})
    if not isinstance(tool, dict) or "resdsl" not in tool:
        return []
    table = tool["resdsl"]
    if not isinstance(table, dict):
        raise ConfigError(
            path,
            _locate(text, None, None),
            1,
            f"`tool.resdsl` is {_value(table)} ({_type_name(table)}); expected a table",
        )
    for key in table:
        if key not in TOP_KEYS:
            raise ConfigError(
                path, _locate(text, None, key), 1, f"[tool.resdsl] has no key `{key}`{_did_you_mean(key, TOP_KEYS)}"
            )
    entries = table.get("verify", [])
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise ConfigError(
            path,
            _locate(text, None, "verify"),
            1,
            f"`verify` is {_value(entries)} ({_type_name(entries)}); expected {TOP_KEYS['verify']}",
        )
    checked = []
    for i, entry in enumerate(entries):
        where = f"[[tool.resdsl.verify]] #{i + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(
                path,
                _locate(text, None, "verify"),
                1,
                f"{where} is {_value(entry)} ({_type_name(entry)}); expected a table",
            )
        for key, value in entry.items():
            if key not in SCHEMA:
                raise ConfigError(
                    path, _locate(text, i, key), 1, f"{where} has no key `{key}`{_did_you_mean(key, SCHEMA)}"
                )
            fits, expected = SCHEMA[key]
            if not fits(value):
                raise ConfigError(
                    path,
                    _locate(text, i, key),
                    1,
                    f"{where}: `{key}` is {_value(value)} ({_type_name(value)}); expected {expected}",
                )
        for key in REQUIRED:
            if key not in entry:
                raise ConfigError(path, _locate(text, i, None), 1, f"{where} needs `{key}`: {SCHEMA[key][1]}")
        checked.append(Entry(entry, text, i))
    return checked


@dataclass(frozen=True)
class Entry:
    """One [[tool.resdsl.verify]] table, valid by SCHEMA, and where its keys are written."""

    values: dict[str, Any]
    text: str
    index: int

    def line(self, key: str | None) -> int:
        return _locate(self.text, self.index, key)


@dataclass(frozen=True)
class Job:
    spec: str
    space: Space
    examples: int
    runtime: bool
    seed: int
    network: str | None


def _space(vary: list[str], input_range: str | None) -> Space:
    dimensions = [parse_vary(v) for v in vary]
    names = [d.name for d in dimensions]
    repeated = {n for n in names if names.count(n) > 1}
    if repeated:
        raise UsageError(f"--vary gives {', '.join(sorted(repeated))} more than once")
    if input_range is not None:
        dimensions.append(parse_input_range(input_range))
    return Space(tuple(dimensions))


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def jobs_of_config(path: Path) -> list[Job]:
    """The jobs of `path`'s [[tool.resdsl.verify]] tables ([] where it has none); ConfigError, located,
    for anything wrong: the table, a --vary or input-range text, a glob that matches nothing."""
    jobs = []
    for i, found in enumerate(read_config(path)):
        where = f"[[tool.resdsl.verify]] #{i + 1}"
        entry, line = found.values, found.line
        vary = entry.get("vary", [])
        vary = [vary] if isinstance(vary, str) else list(vary)
        try:
            space = _space(vary, None)
        except UsageError as exc:
            raise ConfigError(path, line("vary"), 1, f"{where}: `vary`: {exc}") from None
        if "input-range" in entry:
            try:
                space = Space(space.dimensions + (parse_input_range(entry["input-range"]),))
            except UsageError as exc:
                raise ConfigError(path, line("input-range"), 1, f"{where}: `input-range`: {exc}") from None
        patterns = entry["specs"]
        patterns = [patterns] if isinstance(patterns, str) else patterns
        for pattern in patterns:
            matched = sorted(glob.glob(str(path.parent / pattern), recursive=True))
            if not matched:
                raise ConfigError(path, line("specs"), 1, f"{where}: no spec matches {pattern!r}")
            for spec in matched:
                shown = os.path.relpath(spec)
                jobs.append(
                    Job(
                        shown if not shown.startswith("..") else spec,
                        space,
                        entry.get("examples", DEFAULT_EXAMPLES),
                        entry.get("runtime", False),
                        entry.get("seed", 0),
                        entry.get("network"),
                    )
                )
    return jobs


def jobs_from_pyproject(path: Path) -> list[Job]:
    jobs = jobs_of_config(path)
    if not jobs:
        raise UsageError(
            f"{path} has no [[tool.resdsl.verify]] table: give a spec, or add one (docs/testing.md shows how)"
        )
    return jobs


def _whole(text: str | None, option: str, minimum: int | None = None) -> int | None:
    """--examples and --seed, read here (not by argparse) so a mistake comes out in the --format asked for."""
    if text is None:
        return None
    if not re.fullmatch(r"\s*-?\d{1,18}\s*", text):
        raise UsageError(f"argument {option}: expected a whole number, not {text[:40]!r}")
    value = int(text)
    if minimum is not None and value < minimum:
        raise UsageError(f"argument {option}: expected at least {minimum}, not {text!r}")
    return value


def _options(args: argparse.Namespace) -> tuple[int | None, int, int | None]:
    examples = _whole(getattr(args, "examples", None), "--examples", 1)
    seed = _whole(getattr(args, "seed", None), "--seed")
    max_memory = getattr(args, "max_memory", None)
    if isinstance(max_memory, str):
        from .memory import parse_size

        try:
            max_memory = parse_size(max_memory)
        except ValueError as exc:
            raise UsageError(f"argument --max-memory: {exc}") from None
    return examples, seed if seed is not None else 0, max_memory


def jobs_from_args(args: argparse.Namespace) -> list[Job]:
    examples, seed, _ = _options(args)
    if args.specs:
        space = _space(args.vary, args.input_range)
        return [Job(spec, space, examples or DEFAULT_EXAMPLES, args.runtime, seed, args.network) for spec in args.specs]
    if args.vary or args.input_range:
        raise UsageError("--vary and --input-range need a spec (or put them in pyproject.toml's [tool.resdsl])")
    found = find_pyproject(Path.cwd())
    if found is None:
        raise UsageError("give a spec to verify, or a [[tool.resdsl.verify]] table in pyproject.toml")
    jobs = jobs_from_pyproject(found)
    if examples or args.runtime:
        jobs = [
            Job(j.spec, j.space, examples or j.examples, j.runtime or args.runtime, j.seed, j.network) for j in jobs
        ]
    return jobs


# ---- output ---------------------------------------------------------------------------------------


def findings_of(report: Report) -> list[Finding]:
    return [
        Finding(
            report.spec,
            f.diagnostic.code if f.diagnostic else f.key[0],
            f.diagnostic.message if f.diagnostic else f.text,
            f.diagnostic,
            f.text,
            f.config,
            f.reproduce,
        )
        for f in report.failures
    ]


def usage_finding(exc: UsageError, spec: str = "") -> Finding:
    """A command-line or configuration mistake as a finding: `config` (located in pyproject.toml) or `usage`."""
    if isinstance(exc, ConfigError):
        diagnostic = exc.diagnostic()
        return Finding(
            diagnostic.span.path if diagnostic.span else spec,
            "config",
            exc.problem,
            diagnostic,
            f"resdsl: error: {exc}",
        )
    return Finding(spec, "usage", str(exc), None, f"resdsl: error: {exc}")


def summary_line(report: Report) -> str:
    how = "every one" if report.exhaustive else "sampled by hypothesis"
    runtime = f"; {report.runtime_checked} built and run" if report.runtime_checked else ""
    head = f"{report.spec} ({report.network}): {report.tried:,} configurations of {report.space} ({how}{runtime})"
    sizes = f"\n  valid input sizes at the spec's own values: {report.input_sizes}" if report.input_sizes else ""
    if report.ok:
        return f"ok {head}: every shape rule holds{sizes}"
    n = len(report.failures)
    return f"FAILED {head}: {n} distinct failure{'s' if n > 1 else ''}{sizes}"


def _result(report: Report) -> dict:
    return {
        "spec": report.spec,
        "network": report.network,
        "ok": report.ok,
        "configurations": report.tried,
        "exhaustive": report.exhaustive,
        "space": report.space,
        "failures": len(report.failures),
        "runtime_checked": report.runtime_checked,
        "input_sizes": report.input_sizes,
    }


def run_verify(args: argparse.Namespace, formatted: Callable[[str, list, list], str]) -> int:
    """Verify each job; every outcome (a failure, a spec that does not parse, a usage or configuration
    mistake) is written in `args.format`: text on the terminal, or one JSON / SARIF / GitHub document."""
    text = args.format == "text"
    try:
        jobs = jobs_from_args(args)
        _, _, max_memory = _options(args)
    except UsageError as exc:
        if text:
            raise
        print(formatted(args.format, [usage_finding(exc)], [{"spec": None, "ok": False, "errors": 1}]))
        return EXIT_USAGE
    findings: list[Finding] = []
    results: list[dict] = []
    status = EXIT_OK
    for job in jobs:
        try:
            report = verify(
                job.spec,
                job.space,
                examples=job.examples,
                runtime=job.runtime,
                seed=job.seed,
                network=job.network,
                max_memory=max_memory,
            )
        except SpecError as exc:  # the spec does not read, parse or name its network
            status = max(status, EXIT_SPEC)
            if text:
                print(exc.render(), file=sys.stderr)
                print(f"FAILED {job.spec}: the spec does not check (its errors are above)")
            else:
                from .formats import findings_of as spec_findings

                found = spec_findings(job.spec, exc.diagnostics, exc.sources)
                findings += found
                results.append({"spec": job.spec, "ok": False, "errors": len(found)})
            continue
        except UsageError as exc:  # a file that cannot be read, an input range for a vector network, ...
            status = max(status, EXIT_USAGE)
            if text:
                print(f"resdsl: error: {exc}", file=sys.stderr)
            else:
                findings.append(usage_finding(exc, job.spec))
                results.append({"spec": job.spec, "ok": False, "errors": 1})
            continue
        if not report.ok:
            status = max(status, EXIT_SPEC)
        if text:
            for failure in report.failures:
                shown = ", ".join(f"{k}={v}" for k, v in failure.config.items()) or "the spec as written"
                print(
                    f"{failure.text}\n  = minimal failing configuration: {shown}\n  = reproduce: {failure.reproduce}\n",
                    file=sys.stderr,
                )
            print(summary_line(report))
        else:
            findings += findings_of(report)
            results.append(_result(report))
    if not text:
        print(formatted(args.format, findings, results))
    return status
