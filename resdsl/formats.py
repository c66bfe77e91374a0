"""Diagnostics for machines: `--format json`, `sarif` (SARIF 2.1.0, for code-scanning uploads) and
`github` (GitHub Actions workflow commands, so a pull request shows each error on its spec line).

`check` and `verify` hand in `Finding`s: a diagnostic (located in a spec file, or not: a `--set`
value, a run-time mismatch) and, for `verify`, the configuration that shows it and the command that
reproduces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import CODES, WARNINGS, Diagnostic, shown_path

FORMATS = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/resdsl/resdsl"
# Findings that are not a spec's diagnostics: `verify` writes every outcome in the format asked for.
OTHER = {
    "runtime": "the compiled module differs from the spec",
    "usage": "a mistake on the command line (exit status 2)",
    "config": "pyproject.toml's [tool.resdsl] cannot be read or is not valid (exit status 2)",
}


@dataclass(frozen=True)
class Finding:
    spec: str  # the spec checked, as shown (a path, or a bundled name)
    code: str  # E0401, or `runtime`
    message: str
    diagnostic: Diagnostic | None = None
    rendered: str = ""  # the rustc-style text `check` prints
    configuration: dict[str, str] = field(default_factory=dict)  # verify: the minimal failing values
    reproduce: str = ""  # verify: the command that shows it

    @property
    def severity(self) -> str:
        """ "error", or "warning" for a spec that is valid but probably not what was meant."""
        return self.diagnostic.severity if self.diagnostic is not None else "error"

    @property
    def location(self) -> tuple[str, int, int, int, int] | None:
        """(path, line, column, end line, end column) in a file, or None (a `--set` value, a run)."""
        span = self.diagnostic.span if self.diagnostic else None
        if span is None or span.path.startswith("<"):
            return None
        return shown_path(span.path), span.line, span.column, span.end_line, span.end_column

    def detail(self) -> str:
        """The message with its notes, help and (verify) configuration, for formats that show one text."""
        lines = [self.message]
        if self.diagnostic is not None:
            lines += [f"note: {n}" for n in self.diagnostic.notes]
            if self.diagnostic.help:
                lines.append(f"help: {self.diagnostic.help}")
        if self.configuration:
            lines.append(
                "minimal failing configuration: " + ", ".join(f"{k}={v}" for k, v in self.configuration.items())
            )
        if self.reproduce:
            lines.append(f"reproduce: {self.reproduce}")
        return "\n".join(lines)


def findings_of(spec: str, diagnostics: list[Diagnostic], sources: dict[str, str]) -> list[Finding]:
    from .errors import render

    return [Finding(spec, d.code, d.message, d, render(d, sources)) for d in diagnostics]


# ---- JSON ------------------------------------------------------------------------------------------


def to_json(findings: list[Finding], summary: list[dict]) -> str:
    """{"results": [one object per spec checked], "findings": [...]}"""
    items = []
    for f in findings:
        item: dict[str, Any] = {"spec": f.spec, "code": f.code, "message": f.message}
        item.update(
            {k: v for k, v in (f.diagnostic.to_dict() if f.diagnostic else {}).items() if k not in ("code", "message")}
        )
        if f.configuration:
            item["configuration"] = f.configuration
        if f.reproduce:
            item["reproduce"] = f.reproduce
        items.append(item)
    return json.dumps({"results": summary, "findings": items}, indent=2)


# ---- SARIF 2.1.0 -----------------------------------------------------------------------------------


def to_sarif(findings: list[Finding], version: str) -> str:
    codes = sorted({f.code for f in findings})
    rules = [
        {
            "id": code,
            "name": code,
            "shortDescription": {
                "text": CODES.get(code)
                or WARNINGS.get(code)
                or OTHER.get(code)
                or "the compiled module differs from the spec"
            },
            "helpUri": f"{INFORMATION_URI}/blob/main/docs/errors.md",
        }
        for code in codes
    ]
    results = []
    for f in findings:
        result: dict = {
            "ruleId": f.code,
            "ruleIndex": codes.index(f.code),
            "level": f.severity,
            "message": {"text": f.detail()},
        }
        where = f.location
        if where is not None:
            path, line, column, end_line, end_column = where
            region = {"startLine": line, "startColumn": column}
            if end_line is not None and end_column is not None and (end_line, end_column) > (line, column):
                region.update(endLine=end_line, endColumn=end_column)
            result["locations"] = [
                {"physicalLocation": {"artifactLocation": {"uri": path.replace("\\", "/")}, "region": region}}
            ]
        if f.configuration:
            result["properties"] = {"configuration": f.configuration, "reproduce": f.reproduce}
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "resdsl", "version": version, "informationUri": INFORMATION_URI, "rules": rules}
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)


# ---- GitHub Actions workflow commands ----------------------------------------------------------------


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(findings: list[Finding]) -> str:
    """`::error file=F,line=L,col=C,endColumn=E,title=E0401::message` per finding."""
    lines = []
    for f in findings:
        props = []
        where = f.location
        if where is not None:
            path, line, column, end_line, end_column = where
            props += [f"file={_property(path)}", f"line={line}", f"col={column}"]
            if end_line == line and end_column is not None and end_column > column:
                props.append(f"endColumn={end_column}")
        props.append(f"title={_property(f'resdsl {f.code}')}")
        lines.append(f"::{f.severity} {','.join(props)}::{_data(f.detail())}")
    return "\n".join(lines)
