"""One writer per output directory: an exclusive lock held by the process that writes a sweep or a reproduction.

The lock is ``fcntl.flock`` on ``DIR/.writer.lock``, which holds the writer's PID. The kernel drops it when
the process ends, however it ends (Ctrl-C, SIGKILL, a crash), so a lock left by a dead process is taken over
at once: its file still names the old PID, and the next writer overwrites it with its own. A second writer is
refused with one line naming the holder's PID. A process that already holds a directory's lock may take it
again (a resume after a run, in one Python session); :func:`release` lets it go before the process ends.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = ".writer.lock"
_HELD: dict[Path, int] = {}  # directory -> the open file descriptor that holds its lock in this process
_LAST: list[Path] = []  # the directory this process locked last (kept after its release: where it wrote)


class LockedError(RuntimeError):
    """Another live process writes the directory; the message names its PID."""


def holder(folder: str | os.PathLike) -> str:
    """The PID (and what else the lock file says) of the process that holds ``folder``'s lock, as written there."""
    try:
        return (Path(folder) / LOCK_FILE).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def acquire(folder: str | os.PathLike) -> None:
    """Take the exclusive lock of ``folder`` (an existing directory) for this process, or raise LockedError."""
    root = Path(folder).resolve()
    if root in _HELD:
        return
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(f"another process writes there now (PID {holder(root)}); wait for it to end, or stop it "
                          "(Ctrl-C) and continue with --resume") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[root] = fd
    _LAST[:] = [root]


def release(folder: str | os.PathLike) -> None:
    """Let ``folder``'s lock go (nothing when this process does not hold it). The lock file stays, naming no one."""
    fd = _HELD.pop(Path(folder).resolve(), None)
    if fd is not None:
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def forget(folder: str | os.PathLike) -> None:
    """``folder`` was removed: it is no longer where this process wrote (:func:`last_locked`)."""
    if _LAST and _LAST[0] == Path(folder).resolve():
        _LAST.clear()


def last_locked() -> Path | None:
    """The directory this process locked last (held or released since), or None."""
    return _LAST[0] if _LAST else None


def held(folder: str | os.PathLike) -> bool:
    return Path(folder).resolve() in _HELD


def locked_by_other(folder: str | os.PathLike) -> str | None:
    """The holder's PID when another process holds ``folder``'s lock now, else None (a probe: takes nothing)."""
    path = Path(folder) / LOCK_FILE
    if held(folder) or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return holder(folder)
    finally:
        os.close(fd)


@contextlib.contextmanager
def released_after():
    """Every lock this process takes inside the block is let go at its end, however it ends."""
    before = set(_HELD)
    try:
        yield
    finally:
        for root in set(_HELD) - before:
            release(root)
