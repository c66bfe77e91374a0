"""No input hangs: checking is bounded in time and memory whatever the spec (issue 8, section 1).

Each hostile input runs `resdsl check` in a child process with a deadline well above what the bounded
code needs (a fraction of a second to ~1.5 s on the 2-core machine) and far below what the unbounded
code took (6 s to forever), and must end with a located error, never a traceback.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

import resdsl
from resdsl.parse import MAX_SOURCE_BYTES, MAX_TOKENS

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 20  # seconds, start-up included


def check(path: Path, memory_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "resdsl", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=env,
        preexec_fn=limit,
    )


def codes(stderr: str) -> list[str]:
    return re.findall(r"^error\[(E\d{4})\]", stderr, re.M)


def test_many_lines_and_a_deep_if_else_chain_are_rejected_in_linear_time(tmp_path):
    """40,000 comment lines and a 2,000-deep `if`/`else` chain: 190 s when the recursion error
    re-split the whole text once per line."""
    chain = "".join("if true { relu }\nelse " for _ in range(2000)) + "{ relu }\n"
    spec = tmp_path / "deep.res"
    spec.write_text("#\n" * 40_000 + "network n {\n input 3x8x8\n" + chain + "}\n")
    assert spec.stat().st_size < MAX_SOURCE_BYTES
    result = check(spec)
    assert result.returncode == 1 and codes(result.stderr) == ["E0105"], result.stderr
    assert "Traceback" not in result.stderr


def test_blocks_without_ops_nested_in_repeats_are_bounded(tmp_path):
    """`x100000` inside `x100000` of blocks that create no op never reached the node limit."""
    spec = tmp_path / "empty.res"
    spec.write_text("block e0() {}\nblock e1() { e0() x100000 }\nnetwork n {\n input 3x8x8\n e1() x100000\n}\n")
    started = time.perf_counter()
    result = check(spec)
    assert result.returncode == 1 and codes(result.stderr) == ["E0504"], result.stderr
    assert "block instances" in result.stderr
    assert time.perf_counter() - started < DEADLINE


def test_an_error_in_a_repeated_block_is_worked_out_and_reported_once(tmp_path):
    """`nosuch()` inside `x1000` inside `x1000`: a million suggestions were computed (it never ended)."""
    spec = tmp_path / "repeat.res"
    spec.write_text("block b() { nosuch() }\nblock c() { b() x1000 }\nnetwork n {\n input 3x8x8\n c() x1000\n}\n")
    result = check(spec)
    assert result.returncode == 1 and codes(result.stderr) == ["E0202"], result.stderr


def test_a_repeated_failing_op_is_reported_once_in_process():
    text = "block b() { conv 8 k3 g3 -> bnn }\nnetwork n {\n input 4x8x8\n b() x20000\n}\n"
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text)
    assert sorted(d.code for d in info.value.diagnostics) == ["E0202", "E0402"]


def test_loads_has_the_same_size_limit_as_files():
    text = "network n {\n input 3x8x8\n relu\n}\n" + "# padding\n" * (MAX_SOURCE_BYTES // 10 + 10)
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text)
    assert [d.code for d in info.value.diagnostics] == ["E0105"]
    assert "256" in info.value.diagnostics[0].message or f"{MAX_SOURCE_BYTES:,}" in info.value.diagnostics[0].message


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    """A 3 GiB (sparse) file: read whole it took 3.2 GB of memory and 47 s; here 600 MB of address space
    (a Python and lark start-up needs ~300 MB) is all the child may use."""
    spec = tmp_path / "huge.res"
    with open(spec, "wb") as handle:
        handle.truncate(3 * 1024**3)
    result = check(spec, memory_limit=600 * 1024**2)
    assert result.returncode == 1 and codes(result.stderr) == ["E0105"], result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert "file is 3,221,225,472 bytes" in result.stderr  # its size, read from the file system


def test_a_long_list_under_the_size_limit_is_bounded_by_tokens(tmp_path):
    """255 KiB holding one list of 130,000 items took 8 s to parse; the token limit stops it early."""
    items = ",".join(["1"] * (255 * 1024 // 2 - 64))
    spec = tmp_path / "list.res"
    spec.write_text(f"network n(sizes = [{items}]) {{\n input 3x8x8\n relu\n}}\n")
    assert spec.stat().st_size < MAX_SOURCE_BYTES
    result = check(spec)
    assert result.returncode == 1 and codes(result.stderr) == ["E0105"], result.stderr
    assert f"more than {MAX_TOKENS:,} tokens" in result.stderr


def test_a_large_ordinary_spec_under_the_limits_is_still_checked(tmp_path):
    """The token limit leaves room for every spec of ordinary lines under the byte limit."""
    line = "    conv 16 k3 -> bn -> relu\n"
    spec = tmp_path / "big.res"
    spec.write_text("network n {\n    input 3x32x32\n" + line * ((MAX_SOURCE_BYTES - 200) // len(line)) + "}\n")
    result = check(spec)
    assert result.returncode == 0, result.stderr[:2000]
