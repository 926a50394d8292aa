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
directory's writer lock, which the caller holds), and :func:`recover_prefix` is the
read side's entry: ``latest_checkpoint`` and restores call it when an index is missing,
so a restarted program finds the checkpoint before its first save.
"""

from __future__ import annotations

import logging
import os
import re
from typing import NamedTuple

from tfckpt._storage import os_error, remove_quietly
from tfckpt.errors import CheckpointError

__all__ = ["Recovery", "apply", "pending", "recover_prefix"]

logger = logging.getLogger("tfckpt")

ASIDE = re.compile(r"(?P<prefix>.+)\.index\.aside(?P<token>\d+)")
_DATA_TEMP = re.compile(r"(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})\.tempstate(?P<token>\d+)")


class Recovery(NamedTuple):
    """One killed re-save and what to do about it."""

    prefix: str  # the checkpoint's path prefix
    action: str  # "put back" (the old checkpoint) or "finish" (the new one)
    aside: str  # the moved-aside index's path
    renames: tuple[tuple[str, str], ...]  # (from, to), in order

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
    temps: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (prefix, token) -> [(shard, name)]
    for name in entries:
        m = _DATA_TEMP.fullmatch(name)
        if m:
            temps.setdefault((m.group("prefix"), m.group("token")), []).append((m.group("shard"), name))
    out = []
    for name, e in sorted(entries.items()):
        m = ASIDE.fullmatch(name)
        if m is None or (only is not None and m.group("prefix") != only):
            continue
        prefix, token = m.group("prefix"), m.group("token")
        if prefix + ".index" in entries or e.is_symlink() or not e.is_file(follow_symlinks=False):
            continue  # (committed since: the aside is a leftover)
        path = os.path.join(directory, prefix)
        data = sorted(temps.get((prefix, token), []))
        index_tmp = f"{prefix}.index.tempstate{token}"
        if data and data[0][0] == "00000":
            out.append(Recovery(path, "put back", e.path, ((e.path, path + ".index"),)))
        elif index_tmp in entries:
            moves = [(n, n[: n.rindex(".tempstate")]) for _, n in data] + [(index_tmp, prefix + ".index")]
            out.append(Recovery(path, "finish", e.path,
                                tuple((os.path.join(directory, a), os.path.join(directory, b)) for a, b in moves)))
    return out


def apply(r: Recovery) -> None:
    """Do ``r`` (the caller holds the directory's writer lock).

    Raises:
        CheckpointError: (of the OS error) a rename failed; what was renamed stays.
    """
    for src, dst in r.renames:
        try:
            os.replace(src, dst)
        except OSError as e:
            raise os_error(e, dst, "cannot rename into") from None
    if r.action == "finish":
        remove_quietly(r.aside)
        counts = [int(m.group("count")) for src, _ in r.renames if (m := _DATA_TEMP.fullmatch(os.path.basename(src)))]
        if counts:  # (the old index's shards of another count, which the new one does not name)
            from tfckpt._format.bundle_writer import remove_stale_shards

            remove_stale_shards(r.prefix, counts[0])
    logger.warning("%s", r.describe())


def recover_prefix(prefix: str) -> bool:
    """Recover the checkpoint at ``prefix`` if a killed re-save left it without an index; True if
    ``<prefix>.index`` is there now. Never raises: a directory another writer holds (that writer
    recovers it when it claims the directory), or that cannot be changed, is left as it is."""
    directory, base = os.path.split(prefix)
    todo = pending(directory, base)
    if not todo:
        return False
    from tfckpt._lock import DirectoryLock

    lock = DirectoryLock(directory or ".")
    try:
        lock.acquire()
    except CheckpointError:
        return False
    try:
        for r in pending(directory, base):  # (again, under the lock)
            apply(r)
        return os.path.isfile(prefix + ".index")
    except CheckpointError as e:
        logger.warning("could not recover the checkpoint %s: %s", prefix, e)
        return False
    finally:
        lock.release()
