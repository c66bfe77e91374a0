"""`.pre-commit-hooks.yaml`: pre-commit runs the resdsl hooks on a sample repository.

`pre-commit try-repo` installs this working tree into a fresh environment, as a user's
`repo: ...` entry would (from the package index the machine's pip uses), and runs the hook.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BAD = "network bad {\n    input 3x8x8\n    conv 16 k9 p0\n}\n"


def run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow  # pre-commit builds the hooks' environment
def test_the_hooks_check_verify_and_format_a_sample_repository(tmp_path):
    repo = tmp_path / "sample"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "blocks.res").write_text("block twice(width) { conv width k3 -> conv width k3 }\n")
    (repo / "specs" / "good.res").write_text('use "blocks.res"\nnetwork good {\n    input 3x16x16\n    twice(8)\n}\n')
    (repo / "specs" / "bad.res").write_text(BAD)
    (repo / "pyproject.toml").write_text('[[tool.resdsl.verify]]\nspecs = "specs/good.res"\ninput-range = "1..8"\n')
    for command in (["init", "-q"], ["add", "."]):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    home = tmp_path / "pre-commit-home"

    result = run(["try-repo", str(ROOT), "resdsl-check", "--all-files"], repo, home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error[E0403]: `conv` with kernel 9" in result.stdout and "specs/bad.res:3:5" in result.stdout
    assert "ok specs/blocks.res: a file of blocks" in result.stdout or "Failed" in result.stdout

    (repo / "specs" / "bad.res").write_text(BAD.replace("k9 p0", "k3"))
    result = run(["try-repo", str(ROOT), "resdsl-check", "--all-files"], repo, home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resdsl check" in result.stdout and "Passed" in result.stdout

    result = run(["try-repo", str(ROOT), "resdsl-verify", "--all-files"], repo, home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout

    # resdsl-fmt rewrites what is not in the canonical layout, and fails so that the change is seen
    (repo / "specs" / "good.res").write_text('use "blocks.res"\nnetwork good{\n  input 3x16x16\n twice( 8 )\n}\n')
    result = run(["try-repo", str(ROOT), "resdsl-fmt", "--all-files"], repo, home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "files were modified by this hook" in result.stdout and "reformatted specs/good.res" in result.stdout
    assert (
        repo / "specs" / "good.res"
    ).read_text() == 'use "blocks.res"\nnetwork good {\n    input 3x16x16\n    twice(8)\n}\n'
    result = run(["try-repo", str(ROOT), "resdsl-fmt", "--all-files"], repo, home)
    assert result.returncode == 0, result.stdout + result.stderr
