"""Writing files: atomically, and only where a write can succeed.

- `write_atomically`: a reader sees the old file or the whole new one, never half of one; a write that
  fails (disk full, quota, file-size limit, read-only file system) raises `WriteError`, which the command
  line prints as one line, `cannot write PATH: No space left on device`, after removing the temporary file.
- `check_destination`: the checks a command makes on its output path before any work, so that a
  mistyped `-o` fails at once rather than after a long compile or training run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import RunError, UsageError


class WriteError(RunError):
    """A write that failed although the destination looked fine: full disk, quota, file-size limit (exit 1)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"cannot write {self.path}: {reason}")


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary file beside `path`, fsync it, then rename it over `path`.

    Raises WriteError (and leaves `path` as it was, with no temporary file) if any step fails with an
    OSError. Callers that serialise with C++ code (torch.save, torch.jit.save) should serialise into
    memory first and write the bytes here: a failing C++ writer can abort the process.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise WriteError(path, _reason(exc)) from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise WriteError(path, _reason(exc)) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def expand(path: str) -> str:
    """`~` and `~user` expanded, as a shell would (it does not inside `--data cifar10:~/data` or `--out=~/x`)."""
    return os.path.expanduser(path)


def check_destination(path: str | None, option: str, *, directory: bool = False) -> str | None:
    """Check that `path` can be written before any work; return it with `~` expanded (None stays None).

    A file destination must not be empty or a directory, and its directory must exist and accept a new
    file (tried for real: os.access says yes to root on a read-only file system). A run directory
    (`directory=True`) must not be an existing file; it, or its nearest existing ancestor, which
    os.makedirs will create it in, must accept a new file. Raises UsageError naming `option`.
    """
    if path is None:
        return None
    if not path.strip():
        raise UsageError(f"{option}: the path is empty")
    path = expand(path)
    if directory:
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"{option} {path}: is a file, not a run directory")
        existing = path
        while not os.path.exists(existing):  # the ancestor os.makedirs will create the rest in
            parent = os.path.dirname(os.path.normpath(existing)) or "."
            if parent == existing:
                break
            existing = parent
        if not os.path.isdir(existing):
            raise UsageError(f"{option} {path}: {existing} is not a directory")
        _probe(existing, option, path)
        return path
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    if os.path.lexists(path) and not os.path.isfile(path):
        # a device, a pipe or a dangling link: renaming a new file over it is never what was meant
        raise UsageError(f"{option} {path}: exists and is not a regular file")
    parent = os.path.dirname(path) or "."
    if not os.path.exists(parent):
        raise UsageError(f"{option} {path}: no such directory: {parent}")
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path}: {parent} is not a directory")
    _probe(parent, option, path)
    return path


def _probe(folder: str, option: str, path: str) -> None:
    """Create and remove a temporary file in `folder`: the only test that holds for root and for
    read-only file systems alike."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in {folder}: {os.strerror(errno.EACCES)}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".resdsl-probe.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write in {folder}: {_reason(exc)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
