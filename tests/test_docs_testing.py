"""docs/testing.md: every file it shows is written, every command it shows is run, in a fresh folder.

- a fenced block whose first line is `# file: PATH` is written to PATH, in page order;
- a ```console block's `$ resdsl ...` lines are run (resdsl.cli.main) and their output (standard error,
  then standard output) must be the text below them; `summary` shows only its `input sizes` part;
  `$ pytest -q` runs pytest there and must end with the count shown;
- the workflow's `run:` steps are run as written (all but `pip install resdsl`: the package index is
  the user's), and the SARIF it uploads is valid SARIF 2.1.0;
- the pre-commit configuration is valid for pre-commit and names the hooks of .pre-commit-hooks.yaml.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```([A-Za-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks() -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in FENCE.finditer(PAGE)]


def files() -> dict[str, str]:
    found = {}
    for _, body in blocks():
        first, _, rest = body.partition("\n")
        match = re.fullmatch(r"#\s*file:\s*(\S+)", first.strip())
        if match:
            found[match[1]] = rest if not match[1].endswith(".res") else body
    return found


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    for path, text in files().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_resdsl(command: str) -> tuple[int, str]:
    args = shlex.split(command)
    assert args[0] == "resdsl"
    expanded = [m for a in args[1:] for m in (sorted(glob.glob(a)) if any(c in a for c in "*?[") else [a])]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(expanded)
    return status, err.getvalue() + out.getvalue()


def console_commands() -> list[tuple[str, str]]:
    found = []
    for lang, body in blocks():
        if lang != "console":
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command.strip(), output))
    return found


@pytest.mark.parametrize("command, expected", console_commands())
def test_console_commands_print_what_the_page_shows(folder, command, expected):
    if command.startswith("pytest"):
        result = subprocess.run([sys.executable, "-m", "pytest", *shlex.split(command)[1:], "-p", "no:cacheprovider"],
                                capture_output=True, text=True, timeout=600)
        last = re.sub(r" in [\d.]+s.*$", "", result.stdout.strip().splitlines()[-1])
        assert result.returncode == 0 and last == expected.strip(), result.stdout[-3000:]
        return
    status, output = run_resdsl(command)
    if " summary " in f" {command} ":
        output = output[output.index("input sizes"):]
    assert output == expected, output
    assert status == (1 if "error" in expected or "FAILED" in expected else 0)


def test_the_workflow_runs_as_written_and_uploads_valid_sarif(folder):
    import jsonschema

    workflow = yaml.safe_load((folder / ".github" / "workflows" / "specs.yml").read_text())
    steps = workflow["jobs"]["shapes"]["steps"]
    commands = [s["run"] for s in steps if "run" in s]
    assert commands[0] == "pip install resdsl"
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in steps)
    for command in commands[1:]:
        if command.startswith("pytest"):
            result = subprocess.run([sys.executable, "-m", "pytest", *shlex.split(command)[1:], "-p",
                                     "no:cacheprovider"], capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stdout[-3000:]
            continue
        command, _, redirect = command.partition(" > ")
        status, output = run_resdsl(command)
        assert status == 0, output
        if redirect:
            (folder / redirect.strip()).write_text(output)
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(json.loads((folder / "resdsl.sarif").read_text()))


def test_the_pre_commit_configuration_is_valid_and_names_the_shipped_hooks(folder):
    result = subprocess.run([sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((folder / ".pre-commit-config.yaml").read_text())
    wanted = {h["id"] for r in config["repos"] for h in r["hooks"]}
    shipped = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert wanted <= shipped
    result = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest",
                             str(ROOT / ".pre-commit-hooks.yaml")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
