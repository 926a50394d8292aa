"""Undoing or finishing a re-save of a prefix that was killed between its renames.

A save over an existing prefix with the same shard count (see ``BundleWriter.finish``)
writes every data file and its index under ``.tempstate<T>`` names, then moves the old
index to ``<prefix>.index.aside<T>``, renames the data files into place in shard order,
and renames the index last. Killed in between, the prefix has no index, yet one whole
checkpoint is on disk:

* the first data temporary ``<prefix>.data-00000-of-NNNNN.tempstate<T>`` still there:
  no old file was overwritten, the old checkpoint is whole: its index is **put back**;
* else, the new index temporary ``<prefix>.index.tempstate<T>`` still there (it was
  complete before the old index went aside): the save is **finished**: the data
  temporaries left are renamed in order, then the index, and the aside index goes.

:func:`pending` lists what is to do in a directory, :func:`apply` does one (under the
guard), and :func:`recover_prefix` is the read side's entry: ``latest_checkpoint`` and
restores call it when an index is missing, so a restarted program finds the checkpoint
before its first save; a save calls it too before it writes over a prefix without an index.

A save that is still running is never taken for a killed one: it holds an exclusive
``flock`` on its index temporary (the **guard**) from before the old index goes aside
until its own is in place, and a recovery takes that flock first (waiting the few
renames a live save needs), then looks again.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from tfckpt._storage import os_error, remove_quietly
from tfckpt.errors import CheckpointError

__all__ = ["Recovery", "apply", "guard", "pending", "recover", "recover_prefix"]

logger = logging.getLogger("tfckpt")

ASIDE = re.compile(r"(?P<prefix>.+)\.index\.aside(?P<token>\d+)")
_DATA_TEMP = re.compile(r"(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})\.tempstate(?P<token>\d+)")


class Recovery(NamedTuple):
    """One killed re-save and what to do about it."""

    prefix: str  # the checkpoint's path prefix
    action: str  # "put back" (the old checkpoint) or "finish" (the new one)
    aside: str  # the moved-aside index's path
    renames: tuple[tuple[str, str], ...]  # (from, to), in order
    guard: str | None  # the killed save's index temporary, if there (see the module's docstring)
    leftovers: tuple[str, ...]  # the killed save's files that are no use once this is done

    def describe(self, done: bool = True) -> str:
        if self.action == "put back":
            return f"put back the index of {self.prefix} (a re-save killed before it overwrote anything)"
        return f"{'finished' if done else 'finish'} the save of {self.prefix} (a re-save killed between its renames)"


def pending(directory: str, only: str | None = None) -> list[Recovery]:
    """The recoveries to do in ``directory`` (for the prefix basename ``only``, if given)."""
    try:
        entries = {e.name: e for e in os.scandir(directory or ".")}
    except OSError:
        return []
    temps: dict[tuple[str, str], dict[int, tuple[int, str]]] = {}  # (prefix, token) -> shard -> (count, name)
    for name in entries:
        m = _DATA_TEMP.fullmatch(name)
        if m:
            temps.setdefault((m.group("prefix"), m.group("token")), {})[int(m.group("shard"))] = (
                int(m.group("count")), name)
    out = []
    for name, e in sorted(entries.items()):
        m = ASIDE.fullmatch(name)
        if m is None or (only is not None and m.group("prefix") != only):
            continue
        prefix, token = m.group("prefix"), m.group("token")
        if prefix + ".index" in entries or e.is_symlink() or not e.is_file(follow_symlinks=False):
            continue  # (committed since: the aside is a leftover)
        full = os.path.join(directory, prefix)
        data = temps.get((prefix, token), {})
        index_tmp = f"{prefix}.index.tempstate{token}"
        guard = os.path.join(directory, index_tmp) if index_tmp in entries else None
        mine = [os.path.join(directory, n) for _, n in sorted(data.values())]
        if 0 in data:  # nothing renamed yet (shard 0 goes first): the old checkpoint is whole
            out.append(Recovery(full, "put back", e.path, ((e.path, full + ".index"),), guard,
                                tuple(mine + ([guard] if guard else []))))
        elif guard is not None and _renamed_before(data, full, entries):
            moves = [(p, p[: p.rindex(".tempstate")]) for p in mine] + [(guard, full + ".index")]
            out.append(Recovery(full, "finish", e.path, tuple(moves), guard, (e.path,)))
    return out


def _renamed_before(data: dict[int, tuple[int, str]], full: str, entries: Mapping[str, object]) -> bool:
    """The data temporaries left are the last shards, and the first ones are in place (what a
    save killed between its renames leaves; anything else was changed by someone else)."""
    if not data:
        return True  # (every data file renamed: the kill came just before the index's rename)
    count = next(iter(data.values()))[0]
    first = min(data)
    base = os.path.basename(full)
    return sorted(data) == list(range(first, count)) and all(
        f"{base}.data-{i:05d}-of-{count:05d}" in entries for i in range(first))


def apply(r: Recovery) -> list[str]:
    """Do ``r`` (the caller holds its guard, or the directory's writer lock when it has none);
    return the paths removed.

    Raises:
        CheckpointError: (of the OS error) a rename failed; what was renamed stays.
    """
    for src, dst in r.renames:
        try:
            os.replace(src, dst)
        except OSError as e:
            raise os_error(e, dst, "cannot rename into") from None
    removed = [p for p in r.leftovers if remove_quietly(p)]
    if r.action == "finish":
        counts = [int(m.group("count")) for src, _ in r.renames if (m := _DATA_TEMP.fullmatch(os.path.basename(src)))]
        if counts:  # (the old index's shards of another count, which the new one does not name)
            from tfckpt._format.bundle_writer import remove_stale_shards

            remove_stale_shards(r.prefix, counts[0])
    logger.warning("%s", r.describe())
    return removed


def guard(path: str) -> int | None:
    """A save's hold on its index temporary ``path`` (see the module's docstring): an open
    descriptor with an exclusive flock, to close once the save's index is in place; None where
    files cannot be locked (the save goes on without: only a reader racing it could notice)."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def recover(r: Recovery, *, locked: bool = False) -> list[str] | None:
    """Do ``r`` if it is still to do once its guard is held (waiting for a live save to finish
    its renames); the paths removed, or None if it was not done. Without a guard, only with the
    directory's writer lock (``locked``: the caller holds it)."""
    directory, base = os.path.split(r.prefix)
    fd: int | None = None
    lock = None
    try:
        if r.guard is not None and fcntl is not None:
            try:
                fd = os.open(r.guard, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                return None  # (gone: a live save committed; it is not ours to recover)
        elif not locked:
            from tfckpt._lock import DirectoryLock

            lock = DirectoryLock(directory or ".")
            try:
                lock.acquire()
            except CheckpointError:
                return None
        again = [x for x in pending(directory, base) if x.aside == r.aside]
        return apply(again[0]) if again else None
    finally:
        if fd is not None:
            os.close(fd)
        if lock is not None:
            lock.release()


def recover_prefix(prefix: str) -> bool:
    """Recover the checkpoint at ``prefix`` if a killed re-save left it without an index; True if
    ``<prefix>.index`` is there now. Never raises: one that cannot be changed (a read-only
    directory) is left as it is, with a warning."""
    directory, base = os.path.split(prefix)
    todo = pending(directory, base)
    if not todo:
        return False
    for r in todo:
        try:
            recover(r)
        except CheckpointError as e:
            logger.warning("could not recover the checkpoint %s: %s", prefix, e)
    return os.path.isfile(prefix + ".index")
