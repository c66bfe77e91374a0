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
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import UsageError
from .formats import Finding
from .verify import DEFAULT_EXAMPLES, Report, Space, parse_input_range, parse_vary, verify

KEYS = {"specs", "vary", "input-range", "examples", "runtime", "network", "seed"}


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


def jobs_from_pyproject(path: Path) -> list[Job]:
    import tomllib

    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("resdsl", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    entries = table.get("verify", [])
    if isinstance(entries, dict):
        entries = [entries]
    if not entries:
        raise UsageError(f"{path} has no [[tool.resdsl.verify]] table: give a spec, or add one "
                         "(docs/testing.md shows how)")
    jobs = []
    for i, entry in enumerate(entries):
        where = f"{path}: [[tool.resdsl.verify]] #{i + 1}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where} is not a table")
        unknown = set(entry) - KEYS
        if unknown:
            raise UsageError(f"{where} has no key {', '.join(sorted(unknown))}; keys: {', '.join(sorted(KEYS))}")
        patterns = entry.get("specs")
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise UsageError(f"{where} needs `specs`: a glob or a list of globs (e.g. \"specs/*.res\")")
        vary = entry.get("vary", [])
        if isinstance(vary, str):
            vary = [vary]
        examples = entry.get("examples", DEFAULT_EXAMPLES)
        if not isinstance(examples, int) or isinstance(examples, bool) or examples < 1:
            raise UsageError(f"{where}: `examples` must be a whole number from 1, not {examples!r}")
        space = _space(list(vary), entry.get("input-range"))
        for pattern in patterns:
            matched = sorted(glob.glob(str(path.parent / pattern), recursive=True))
            if not matched:
                raise UsageError(f"{where}: no spec matches {pattern!r}")
            for spec in matched:
                shown = os.path.relpath(spec)
                jobs.append(Job(shown if not shown.startswith("..") else spec, space, examples,
                                bool(entry.get("runtime", False)), int(entry.get("seed", 0)), entry.get("network")))
    return jobs


def jobs_from_args(args: argparse.Namespace) -> list[Job]:
    if args.specs:
        space = _space(args.vary, args.input_range)
        return [Job(spec, space, args.examples or DEFAULT_EXAMPLES, args.runtime, args.seed, args.network)
                for spec in args.specs]
    if args.vary or args.input_range:
        raise UsageError("--vary and --input-range need a spec (or put them in pyproject.toml's [tool.resdsl])")
    found = find_pyproject(Path.cwd())
    if found is None:
        raise UsageError("give a spec to verify, or a [[tool.resdsl.verify]] table in pyproject.toml")
    jobs = jobs_from_pyproject(found)
    if args.examples or args.runtime:
        jobs = [Job(j.spec, j.space, args.examples or j.examples, j.runtime or args.runtime, j.seed, j.network)
                for j in jobs]
    return jobs


def findings_of(report: Report) -> list[Finding]:
    return [Finding(report.spec, f.diagnostic.code if f.diagnostic else f.key[0], f.diagnostic.message
                    if f.diagnostic else f.text, f.diagnostic, f.text, f.config, f.reproduce)
            for f in report.failures]


def summary_line(report: Report) -> str:
    how = "every one" if report.exhaustive else "sampled by hypothesis"
    runtime = f"; {report.runtime_checked} built and run" if report.runtime_checked else ""
    head = f"{report.spec} ({report.network}): {report.tried:,} configurations of {report.space} ({how}{runtime})"
    sizes = f"\n  valid input sizes at the spec's own values: {report.input_sizes}" if report.input_sizes else ""
    if report.ok:
        return f"ok {head}: every shape rule holds{sizes}"
    n = len(report.failures)
    return f"FAILED {head}: {n} distinct failure{'s' if n > 1 else ''}{sizes}"


def run_verify(args: argparse.Namespace, formatted: Callable[[str, list, list], str]) -> int:
    reports = []
    for job in jobs_from_args(args):
        reports.append(verify(job.spec, job.space, examples=job.examples, runtime=job.runtime, seed=job.seed,
                              network=job.network))
    if args.format == "text":
        for report in reports:
            for failure in report.failures:
                shown = ", ".join(f"{k}={v}" for k, v in failure.config.items()) or "the spec as written"
                print(f"{failure.text}\n  = minimal failing configuration: {shown}\n"
                      f"  = reproduce: {failure.reproduce}\n", file=sys.stderr)
            print(summary_line(report))
    else:
        findings = [f for r in reports for f in findings_of(r)]
        results = [{"spec": r.spec, "network": r.network, "ok": r.ok, "configurations": r.tried,
                    "exhaustive": r.exhaustive, "space": r.space, "failures": len(r.failures),
                    "runtime_checked": r.runtime_checked, "input_sizes": r.input_sizes} for r in reports]
        print(formatted(args.format, findings, results))
    return 0 if all(r.ok for r in reports) else 1
