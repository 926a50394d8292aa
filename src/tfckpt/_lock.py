"""A lock that lets one writer at a time own a checkpoint directory.

Two savers (or managers) writing into one directory would delete each other's
checkpoints through retention and race on the state file. :class:`DirectoryLock`
holds an exclusive ``flock`` on the directory itself (no lock file is created,
so a checkpoint directory holds exactly the files TensorFlow would write), and
a second writer fails fast with an :class:`~tfckpt.errors.AlreadyExistsError`
naming the holder's pid (read from ``/proc/locks`` where the system has it).

The kernel drops a ``flock`` when its holder dies, so the lock of a killed
process is never stale: the next writer simply takes it. A forked child closes
the descriptors it inherits (without unlocking), so a worker outliving its
killed parent does not keep the lock. Locks belong to open
file descriptions, so two ``DirectoryLock`` objects on one directory conflict
even inside one process. Where ``fcntl`` is missing (Windows) locking is a
no-op.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with DirectoryLock(d) as lock:
    ...     try:
    ...         DirectoryLock(d).acquire()
    ...     except AlreadyExistsError as e:
    ...         print("held by this process:", f"pid {os.getpid()}" in e.message)
    held by this process: True
    >>> DirectoryLock(d).acquire()  # released: free again
"""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType

from tfckpt._paths import PathLike, as_path
from tfckpt._storage import os_error
from tfckpt.errors import AlreadyExistsError, FailedPreconditionError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DirectoryLock", "read_lock_holder"]


def read_lock_holder(directory: PathLike) -> dict[str, str] | None:
    """``{"pid": ...}`` of the process holding ``directory``'s writer lock, or None if unknown/free."""
    try:
        st = os.stat(directory)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:56789 0 EOF" ("->" marks waiters)
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == want:
            return {"pid": fields[4]}
    return None


_HELD: weakref.WeakSet[DirectoryLock] = weakref.WeakSet()


def _drop_inherited() -> None:
    """In a forked child (a DataLoader worker...): close the inherited lock descriptors without
    unlocking (that would unlock the parent's). Otherwise a child outliving a killed trainer
    keeps its directory locked, and the restarted trainer cannot save."""
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _HELD.clear()


# Held from a lock's open to its listing in _HELD: a fork from another thread waits for it (an
# RLock: a fork from a signal handler of the holding thread itself goes on, instead of hanging).
_OPENING = threading.RLock()


def _child() -> None:
    _OPENING.release()
    _drop_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_OPENING.acquire, after_in_parent=_OPENING.release, after_in_child=_child)


class DirectoryLock:
    """Exclusive, non-blocking writer lock of a checkpoint directory (a context manager).

    Args:
        directory: the checkpoint directory (created if missing).

    Raises:
        AlreadyExistsError: (from :meth:`acquire`) another writer holds the lock.
    """

    def __init__(self, directory: PathLike) -> None:
        self.directory = as_path(directory, "directory") or "."
        self.path = self.directory
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def _busy(self) -> AlreadyExistsError:
        holder = read_lock_holder(self.directory)
        who = f"pid {holder['pid']}" if holder else "another process or object"
        if holder and holder["pid"] == str(os.getpid()):
            who += " (this process: another Saver or CheckpointManager)"
        return AlreadyExistsError(
            f"Checkpoint directory {self.directory} is locked by another writer ({who}). Two savers must not "
            f"write into one directory, or each would delete the other's checkpoints: stop or close the other "
            f"one, or use another directory (a second series, such as a best-model Saver beside a "
            f"CheckpointManager, goes into a subdirectory of its own: train/best).",
            path=self.directory,
        )

    def acquire(self) -> None:
        """Take the lock or raise :class:`~tfckpt.errors.AlreadyExistsError` at once (never waits)."""
        if self._fd is not None:
            raise FailedPreconditionError(f"{self.directory} is already locked by this DirectoryLock",
                                          path=self.directory)
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise os_error(e, self.directory, "cannot create directory") from None
        if fcntl is None:  # pragma: no cover - Windows
            return
        with _OPENING:  # (a fork from another thread cannot land between the open and the listing)
            try:
                fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            except OSError as e:
                raise os_error(e, self.directory, "cannot open directory") from None
            self._fd = fd  # (listed before the flock: a fork after it closes the child's copy)
            _HELD.add(self)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._fd = None
            _HELD.discard(self)
            os.close(fd)
            if isinstance(e, BlockingIOError):
                raise self._busy() from None
            raise os_error(e, self.directory, "cannot lock") from None

    def release(self) -> None:
        """Release the lock (a no-op if it is not held)."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        _HELD.discard(self)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass

    def __copy__(self) -> DirectoryLock:
        return DirectoryLock(self.directory)  # (a copy does not hold the lock: only one object does)

    def __deepcopy__(self, memo: dict[int, object]) -> DirectoryLock:
        return DirectoryLock(self.directory)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_fd": None}  # (a descriptor means nothing in another process)

    def __repr__(self) -> str:
        return f"<DirectoryLock {self.directory!r} {'held' if self.locked else 'free'}>"
