"""docs/testing.md: every file it shows is written, every command it shows is run, in a fresh folder.

- a fenced block whose first line is `# file: PATH` is written to PATH, in page order;
- a ```console block's `$ resdsl ...` lines are run (resdsl.cli.main) and their output (standard error,
  then standard output) must be the text below them; `summary` shows only its `input sizes` part;
  `$ pytest -q` runs pytest there and must end with the count shown;
- the workflow's steps are run as written, each `run:` in bash in the folder, with a fresh virtual
  environment on PATH: its `pip install` is run too (it must install resdsl from the checkout, PyTorch
  and pytest; the packages already installed here are visible to it, so nothing is downloaded). The
  actions stand in for themselves: resdsl's checkout is this working tree, setup-python the venv; the
  SARIF it uploads must be valid SARIF 2.1.0;
- the pre-commit configuration is valid for pre-commit, its `rev` is a commit of this repository that
  ships the hooks it names, and `pre-commit try-repo` runs them at that commit on the folder.
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
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *shlex.split(command)[1:], "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        last = re.sub(r" in [\d.]+s.*$", "", result.stdout.strip().splitlines()[-1])
        assert result.returncode == 0 and last == expected.strip(), result.stdout[-3000:]
        return
    status, output = run_resdsl(command)
    if " summary " in f" {command} ":
        output = output[output.index("input sizes") :]
    assert output == expected, output
    assert status == (1 if "error" in expected or "FAILED" in expected else 0)


def _fresh_venv(where: Path) -> dict[str, str]:
    """A virtual environment at `where` that also sees this one's packages (a .pth file: no download),
    but not resdsl itself (an editable install's finder is not read from a .pth path); the environment
    variables that put it first on PATH."""
    import os
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, capture_output=True, timeout=300)
    purelib = Path(
        subprocess.run(
            [str(where / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (purelib / "_outer_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(where), PATH=f"{where / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.mark.slow  # a virtual environment and the workflow's steps
def test_the_workflow_runs_as_written_and_uploads_valid_sarif(folder, tmp_path_factory):
    import jsonschema

    workflow = yaml.safe_load((folder / ".github" / "workflows" / "specs.yml").read_text())
    steps = workflow["jobs"]["shapes"]["steps"]
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in steps)
    env = _fresh_venv(tmp_path_factory.mktemp("venv") / "env")
    ran = []
    for step in steps:
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout"):
            settings = step.get("with", {})
            if settings.get("repository"):  # resdsl itself: this working tree, where the step puts it
                assert settings["repository"] == "resdsl/resdsl" and settings.get("path")
                (folder / settings["path"]).symlink_to(ROOT, target_is_directory=True)
            continue
        if uses.startswith(("actions/setup-python", "github/codeql-action/upload-sarif")):
            continue
        assert set(step) <= {"run", "if", "name"}, step
        result = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=folder, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (step["run"], result.stdout[-3000:], result.stderr[-3000:])
        ran.append(step["run"])
    assert ran[0].startswith("pip install") and any(r.startswith("pytest") for r in ran)
    installed = subprocess.run(
        ["python", "-c", "import resdsl, torch, pytest; print(resdsl.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert installed.returncode == 0 and str(ROOT) not in installed.stdout, installed.stdout + installed.stderr
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(json.loads((folder / "resdsl.sarif").read_text()))


def test_the_pre_commit_configuration_is_valid_and_names_the_shipped_hooks(folder):
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((folder / ".pre-commit-config.yaml").read_text())
    wanted = {h["id"] for r in config["repos"] for h in r["hooks"]}
    shipped = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert wanted <= shipped
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # pre-commit installs resdsl from a commit into its own environment
def test_the_pre_commit_rev_is_a_commit_of_resdsl_whose_hooks_run(folder, tmp_path_factory):
    """`rev` must exist (the repository has no tags): a full commit SHA of this repository, which ships
    the hooks named, and pre-commit runs them at that commit (try-repo --ref, as a user's rev would)."""
    import os

    config = yaml.safe_load((folder / ".pre-commit-config.yaml").read_text())
    [repo] = config["repos"]
    rev = repo["rev"]
    assert re.fullmatch(r"[0-9a-f]{40}", rev), f"rev {rev!r}: pin a full commit SHA"
    git = lambda *args: subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)  # noqa: E731
    if (
        git("rev-parse", "--git-dir").returncode != 0
        or git("rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    ):
        pytest.skip("needs the repository's whole history")
    assert git("cat-file", "-e", f"{rev}^{{commit}}").returncode == 0, f"{rev} is not a commit of this repository"
    shipped = {h["id"] for h in yaml.safe_load(git("show", f"{rev}:.pre-commit-hooks.yaml").stdout)}
    assert {h["id"] for h in repo["hooks"]} <= shipped
    for command in (["init", "-q"], ["add", "."]):
        subprocess.run(["git", *command], cwd=folder, check=True, capture_output=True)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home")),
        "PRE_COMMIT_COLOR": "never",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "resdsl-check", "--ref", rev, "--all-files"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0 and "Passed" in result.stdout, result.stdout + result.stderr
