"""Removing the leftovers of saves that were killed before they committed.

A save writes every file under a temporary name and renames the index last
(the commit point), so a killed save never damages a committed checkpoint; it
only leaves litter behind. :func:`cleanup` removes exactly that litter from one
directory, and nothing else:

* ``<anything>.tempstate<digits>``: data, index or state files being written;
* ``checkpoint.tmp<32 hex digits>``: a state file being written (``<latest_filename>.tmp...``
  for another state file name);
* ``<prefix>_temp/`` (or ``<prefix>_temp_<32 hex>/``): the part directory of a
  sharded save, removed only if it holds nothing but ``part-*`` shard files;
* ``<prefix>.data-NNNNN-of-MMMMM`` whose ``<prefix>.index`` is missing: data
  files renamed into place by a save killed before its index was;
* ``<prefix>.index.aside<digits>``: the index of an earlier checkpoint at a prefix
  being rewritten, moved aside by the save. A re-save killed between its renames
  is first undone or finished (see :mod:`tfckpt._recovery`), so that one whole
  checkpoint stays at the prefix; what it leaves is then removed.

Only names directly inside ``directory`` are considered, symbolic links are
never followed, and no checkpoint the state file names is touched, even if it
looks incomplete. The state file is read as data only: it can protect a file
from removal, never select one (a state file naming ``../../etc/passwd`` or an
absolute path elsewhere has no effect).

Run it with no writer active in the directory: by default it takes the
directory's :class:`~tfckpt._lock.DirectoryLock` for its duration (a writer
that already holds the lock passes ``lock=False``).
"""

from __future__ import annotations

import logging
import os
import re

from google.protobuf import text_format

from tfckpt import _recovery
from tfckpt._lock import DirectoryLock
from tfckpt._paths import PathLike, as_path
from tfckpt._proto import checkpoint_pb2
from tfckpt._storage import os_error, read_whole_file
from tfckpt.errors import CheckpointError, NotFoundError

__all__ = ["claim_directory", "cleanup"]

logger = logging.getLogger("tfckpt")

_TEMPSTATE = re.compile(r".+\.tempstate\d+")
_STATE_TMP = re.compile(r".+\.tmp[0-9a-f]{32}")  # (checkpoint, or a Saver's latest_filename)
_TEMP_DIR = re.compile(r".+_temp(_[0-9a-f]{32})?")
_PART_FILE = re.compile(r"part-\d{5}-of-\d{5}(\.index|\.data-\d{5}-of-\d{5})(\.tempstate\d+)?")
_DATA = re.compile(r"(?P<prefix>.+)\.data-\d{5}-of-\d{5}")
_STATE_PATH = re.compile(r'^\s*(?:model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*"(.*)"\s*$')
_MAX_STATE = 64 << 20


def _named_prefixes(directory: str) -> set[str]:
    """Basenames of the checkpoints the state file names inside ``directory`` (others cannot matter)."""
    path = os.path.join(directory, "checkpoint")
    try:
        text = read_whole_file(path, max_size=_MAX_STATE).decode("utf-8", "surrogateescape")
    except CheckpointError:
        return set()
    values: list[str] = []
    try:
        state = checkpoint_pb2.CheckpointState()
        text_format.Merge(text, state)
        values += [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
    except (text_format.ParseError, UnicodeError):
        pass
    # Also protect whatever a damaged file still seems to name.
    values += [m.group(1) for m in map(_STATE_PATH.match, text.splitlines()) if m]
    real_dir = os.path.realpath(directory)
    out: set[str] = set()
    for value in values:
        if not value or "\x00" in value:
            continue
        full = value if os.path.isabs(value) else os.path.join(directory, value)
        if os.path.realpath(os.path.dirname(full)) == real_dir:
            out.add(os.path.basename(full))
    return out


def _removable_temp_dir(path: str) -> list[str] | None:
    """The files of a sharded save's part directory, or None if it holds anything else."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return None
    files = []
    for e in entries:
        if not (_PART_FILE.fullmatch(e.name) and e.is_file(follow_symlinks=False)):
            return None
        files.append(e.path)
    return files


def cleanup(directory: PathLike, *, dry_run: bool = False, lock: bool = True,
            recovered: list[str] | None = None) -> list[str]:
    """Remove the leftovers of killed saves from ``directory``; return the paths removed (sorted).

    Args:
        directory: a checkpoint directory.
        dry_run: only list what would be removed.
        lock: hold the directory's writer lock while cleaning (pass False when the
            caller already holds it).
        recovered: when given, a line is appended to it for each killed re-save undone or
            finished first (or, dry, that would be): "put back the index of ...".

    Raises:
        NotFoundError: ``directory`` does not exist.
        AlreadyExistsError: another writer holds the directory lock.
        PermissionDeniedError: (or another :class:`CheckpointError` of the OS error) a leftover
            could not be removed, e.g. on a read-only file system; the others were.

    Example:
        >>> import tempfile, os, numpy as np, tfckpt
        >>> d = tempfile.mkdtemp()
        >>> _ = tfckpt.write({"w": np.zeros(2)}, os.path.join(d, "model.ckpt-1"))
        >>> open(os.path.join(d, "model.ckpt-2.index.tempstate123"), "wb").close()
        >>> [os.path.basename(p) for p in cleanup(d)]
        ['model.ckpt-2.index.tempstate123']
        >>> sorted(os.listdir(d))
        ['model.ckpt-1.data-00000-of-00001', 'model.ckpt-1.index']
    """
    directory = as_path(directory, "directory")
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise NotFoundError(f"checkpoint directory {directory} {what}", path=directory)
    if lock and not dry_run:
        with DirectoryLock(directory):
            return _cleanup(directory, dry_run=False, recovered=recovered)
    return _cleanup(directory, dry_run=dry_run, recovered=recovered)


def _cleanup(directory: str, *, dry_run: bool, recovered: list[str] | None = None) -> list[str]:
    try:
        entries = list(os.scandir(directory))
    except OSError as err:
        raise os_error(err, directory, "cannot list") from None
    recoveries = _recovery.pending(directory)
    done: list[str] = []
    if not dry_run and recoveries:
        did = []
        for r in recoveries:
            gone = _recovery.recover(r, locked=True)
            if gone is not None:
                did.append(r)
                done += gone
        recoveries = did
        try:
            entries = list(os.scandir(directory))
        except OSError as err:
            raise os_error(err, directory, "cannot list") from None
    if recovered is not None:
        recovered += [r.describe(done=not dry_run) for r in recoveries]
    names = {e.name for e in entries}
    kept = {os.path.basename(p) for r in recoveries for pair in r.renames for p in pair}  # (dry: what a run moves)
    names |= {os.path.basename(r.prefix) + ".index" for r in recoveries}
    protected = _named_prefixes(directory)
    doomed_files: list[str] = []
    doomed_dirs: list[tuple[str, list[str]]] = []
    for e in entries:
        name = e.name
        if e.is_symlink():
            if _TEMPSTATE.fullmatch(name) or _STATE_TMP.fullmatch(name):
                doomed_files.append(e.path)  # removes the link, never its target
            continue
        if e.is_dir(follow_symlinks=False):
            m = _TEMP_DIR.fullmatch(name)
            if m and name[: name.rindex("_temp")] not in protected:
                files = _removable_temp_dir(e.path)
                if files is not None:
                    doomed_dirs.append((e.path, files))
            continue
        if not e.is_file(follow_symlinks=False):
            continue
        if name in kept:
            continue
        if _TEMPSTATE.fullmatch(name) or _STATE_TMP.fullmatch(name) or _recovery.ASIDE.fullmatch(name):
            doomed_files.append(e.path)
            continue
        m = _DATA.fullmatch(name)
        if m:
            prefix = m.group("prefix")
            if prefix + ".index" not in names and prefix not in protected:
                doomed_files.append(e.path)
    removed = sorted(doomed_files + [d for d, _ in doomed_dirs])
    if dry_run:
        return removed
    failed: list[tuple[str, OSError]] = []
    for p in doomed_files:
        try:
            os.remove(p)
            done.append(p)
        except FileNotFoundError:
            pass
        except OSError as err:
            failed.append((p, err))
    for d, files in doomed_dirs:
        for p in files:
            try:
                os.remove(p)
            except OSError:
                pass
        try:
            os.rmdir(d)
            done.append(d)
        except FileNotFoundError:
            pass
        except OSError as err:
            failed.append((d, err))
    if failed:
        first = os_error(failed[0][1], failed[0][0], "cannot remove")
        raise type(first)(f"{first.message} ({len(failed)} of {len(removed)} leftovers could not be removed, "
                          f"{len(done)} were)", path=first.path)
    return sorted(done)


def claim_directory(directory: PathLike) -> DirectoryLock:
    """Become the one writer of ``directory``: create it, lock it, remove leftovers of killed saves.

    The Saver and the CheckpointManager call this before their first save into a
    directory and hold the returned lock until they are closed or collected.

    Raises:
        AlreadyExistsError: another Saver/CheckpointManager (in this or another
            process) writes into ``directory``.
    """
    directory = as_path(directory, "directory") or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise os_error(e, directory, "cannot create directory") from None
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        removed = _cleanup(directory, dry_run=False)
    except CheckpointError as e:
        logger.warning("could not clean leftovers of interrupted saves in %s: %s", directory, e)
    else:
        if removed:
            logger.info("removed %d leftover file(s) of interrupted saves in %s", len(removed), directory)
    return lock
