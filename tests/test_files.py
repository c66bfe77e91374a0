"""files.py: destinations checked before any work; writes that fail leave the old file and no debris."""

from __future__ import annotations

import errno
import os

import pytest

from resdsl.files import WriteError, check_destination, write_atomically
from resdsl.library import UsageError

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def unwritable(tmp_path):
    """A directory no one can create files in: read-only sysfs for root (permissions do not stop root),
    a chmod 555 directory otherwise."""
    if ROOT_USER:
        if not os.path.isdir("/sys") or os.access("/sys", os.W_OK) and _creatable("/sys"):
            pytest.skip("running as root with a writable /sys: no unwritable directory to test with")
        return "/sys"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


def _creatable(folder: str) -> bool:
    try:
        fd = os.open(os.path.join(folder, ".resdsl-test"), os.O_CREAT | os.O_WRONLY)
    except OSError:
        return False
    os.close(fd)
    os.unlink(os.path.join(folder, ".resdsl-test"))
    return True


def test_a_good_file_destination_is_returned_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_destination("~/model.pt2", "-o") == str(tmp_path / "model.pt2")
    assert check_destination(None, "-o") is None
    (tmp_path / "old.pt2").write_bytes(b"old")  # overwriting a file is fine
    assert check_destination(str(tmp_path / "old.pt2"), "-o") == str(tmp_path / "old.pt2")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the probe leaves nothing


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda t: "", "the path is empty"),
        (lambda t: "   ", "the path is empty"),
        (lambda t: str(t / "missing" / "m.pt2"), "no such directory"),
        (lambda t: str(t), "is a directory"),
        (lambda t: str(t / "afile" / "m.pt2"), "is not a directory"),
        (lambda t: os.path.join(unwritable(t), "m.pt2"), "cannot write in"),
    ],
)
def test_bad_file_destinations_are_usage_errors(tmp_path, make, message):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match=message):
        check_destination(make(tmp_path), "-o")


def test_run_directories(tmp_path):
    assert check_destination(str(tmp_path / "a" / "b" / "run"), "--out", directory=True)  # created later
    assert not (tmp_path / "a").exists()  # checking creates nothing
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="is a file, not a run directory"):
        check_destination(str(tmp_path / "afile"), "--out", directory=True)
    with pytest.raises(UsageError, match="is not a directory"):
        check_destination(str(tmp_path / "afile" / "run"), "--out", directory=True)
    with pytest.raises(UsageError, match="cannot write in"):
        check_destination(os.path.join(unwritable(tmp_path), "run"), "--out", directory=True)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "m.pt2"
    target.write_bytes(b"the good one")

    def full(handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError) as info:
        write_atomically(target, full)
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert target.read_bytes() == b"the good one"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt2"]


def test_a_write_into_a_missing_directory_is_a_write_error(tmp_path):
    with pytest.raises(WriteError, match="cannot write .*: No such file or directory"):
        write_atomically(tmp_path / "missing" / "m.pt2", lambda f: f.write(b"x"))
