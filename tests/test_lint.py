"""The codebase's own checks, configured in pyproject.toml, run by the suite: ruff (lint and format) and mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["resdsl", "tests", "benchmarks"]


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_lint_is_clean():
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", *CHECKED)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_format_is_clean():
    result = run("ruff", "format", "--no-cache", "--check", *CHECKED)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.slow  # about a minute from a cold cache on the 2-core machine
def test_mypy_is_clean():
    result = run("mypy", "--no-incremental", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
