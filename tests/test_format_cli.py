"""`resdsl fmt`: files rewritten in place (atomically), --check, --diff, stdin, directories, bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from resdsl.cli import main
from resdsl.format import format_text

UGLY = "network n{\ninput 3x8x8\n  conv 8 k3->bn ->relu   # c\n}\n"
PRETTY = "network n {\n    input 3x8x8\n    conv 8 k3 -> bn -> relu  # c\n}\n"
BROKEN = "network n {\n    conv 8 k3 ->\n}\n"


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_rewrites_files_in_place_and_names_them(here, capsys):
    (here / "a.res").write_text(UGLY)
    (here / "b.res").write_text(PRETTY)
    assert main(["fmt", "a.res", "b.res"]) == 0
    out, err = capsys.readouterr()
    assert (here / "a.res").read_text() == PRETTY and (here / "b.res").read_text() == PRETTY
    assert err == "reformatted a.res\n" and out == ""
    before = os.stat(here / "a.res").st_mtime_ns
    assert main(["fmt", "a.res"]) == 0  # formatted already: not written again
    assert capsys.readouterr() == ("", "") and os.stat(here / "a.res").st_mtime_ns == before
    assert not [p.name for p in here.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_check_writes_nothing_and_exits_1_when_a_file_would_change(here, capsys):
    (here / "a.res").write_text(UGLY)
    (here / "b.res").write_text(PRETTY)
    assert main(["fmt", "--check", "a.res", "b.res"]) == 1
    assert capsys.readouterr() == ("", "would reformat a.res\n")
    assert (here / "a.res").read_text() == UGLY
    assert main(["fmt", "--check", "b.res"]) == 0
    assert capsys.readouterr() == ("", "")


def test_diff_prints_a_unified_diff_and_writes_nothing(here, capsys):
    (here / "a.res").write_text(UGLY)
    assert main(["fmt", "--diff", "a.res"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("--- a.res\n+++ a.res (formatted)\n@@ ")
    assert out.endswith(
        "-  conv 8 k3->bn ->relu   # c\n+network n {\n+    input 3x8x8\n+    conv 8 k3 -> bn -> relu  # c\n }\n"
    )
    assert (here / "a.res").read_text() == UGLY
    assert main(["fmt", "--diff", "--check", "a.res"]) == 1
    (here / "c.res").write_text("network n {\n    input 3x8x8\n}")  # no final newline
    assert main(["fmt", "--diff", "c.res"]) == 0
    assert "}\n\\ No newline at end of file\n+}\n" in capsys.readouterr().out


def test_stdin_to_stdout(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(UGLY.replace("\n", "\r\n").encode())))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr() == (PRETTY, "")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BROKEN.encode())))
    assert main(["fmt", "-"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "error[E0103]" in err and "--> <stdin>:3:1" in err


def test_stdin_through_the_real_command():
    result = subprocess.run(
        [sys.executable, "-m", "resdsl", "fmt", "-"], input=UGLY, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, PRETTY, "")


def test_a_file_that_does_not_parse_is_reported_and_the_others_formatted(here, capsys):
    (here / "bad.res").write_text(BROKEN)
    (here / "good.res").write_text(UGLY)
    assert main(["fmt", "bad.res", "good.res"]) == 1
    _, err = capsys.readouterr()
    assert "error[E0103]" in err and "--> bad.res:3:1" in err and "reformatted good.res" in err
    assert (here / "bad.res").read_text() == BROKEN and (here / "good.res").read_text() == PRETTY


def test_missing_files_binary_files_and_no_arguments(here, capsys):
    (here / "good.res").write_text(UGLY)
    (here / "binary.res").write_bytes(b"network \xff\xfe\x00 {\n")
    assert main(["fmt", "missing.res", "good.res"]) == 2
    _, err = capsys.readouterr()
    assert err == "resdsl: error: missing.res: no such file or directory\nreformatted good.res\n"
    assert main(["fmt", "binary.res"]) == 1
    _, err = capsys.readouterr()
    assert "error[E0101]: byte 0xff at offset 8 is not UTF-8" in err and "Traceback" not in err
    assert main(["fmt"]) == 2
    assert "the following arguments are required" in capsys.readouterr().err


def test_a_directory_stands_for_its_res_files(here, capsys):
    (here / "specs" / "sub").mkdir(parents=True)
    (here / "specs" / ".hidden").mkdir()
    for name in ("specs/b.res", "specs/a.res", "specs/sub/c.res", "specs/.hidden/d.res"):
        (here / name).write_text(UGLY)
    (here / "specs" / "notes.txt").write_text(UGLY)
    assert main(["fmt", "--check", "specs"]) == 1
    listed = capsys.readouterr().err.splitlines()
    assert listed == [f"would reformat {os.path.join('specs', n)}" for n in ("a.res", "b.res", "sub/c.res")]
    assert main(["fmt", "specs"]) == 0
    assert (here / "specs" / "sub" / "c.res").read_text() == PRETTY
    assert (here / "specs" / ".hidden" / "d.res").read_text() == UGLY and (
        here / "specs" / "notes.txt"
    ).read_text() == UGLY
    assert main(["fmt", "--check", "specs"]) == 0


def test_a_failed_write_leaves_the_file_as_it_was(here, capsys, monkeypatch):
    (here / "a.res").write_text(UGLY)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)  # the rename of files.write_atomically's temporary file
    assert main(["fmt", "a.res"]) == 1
    assert capsys.readouterr().err == "resdsl: error: cannot write a.res: No space left on device\n"
    assert (here / "a.res").read_text() == UGLY
    assert [p.name for p in here.iterdir()] == ["a.res"]


def test_crlf_files_become_lf(here):
    (here / "a.res").write_bytes(PRETTY.replace("\n", "\r\n").encode())
    assert main(["fmt", "a.res"]) == 0
    assert (here / "a.res").read_bytes() == PRETTY.encode()
    assert format_text(PRETTY) == PRETTY


def test_a_rewritten_file_keeps_its_mode(here):
    (here / "a.res").write_text(UGLY)
    os.chmod(here / "a.res", 0o600)
    assert main(["fmt", "a.res"]) == 0
    assert (here / "a.res").read_text() == PRETTY and os.stat(here / "a.res").st_mode & 0o777 == 0o600
