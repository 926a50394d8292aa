"""``tfckpt ls``: the checkpoints a directory holds, from its state file and from the files themselves."""

from __future__ import annotations

import argparse
import datetime
import os
import re
from dataclasses import dataclass, field
from typing import Any

from tfckpt import _recovery
from tfckpt._cli_format import dump_json, human_bytes, print_line, print_table, styled
from tfckpt._format.bundle_reader import BundleReader
from tfckpt._format.v1 import is_v1_checkpoint
from tfckpt.checkpoint_management import get_checkpoint_state, on_disk
from tfckpt.cleanup import _STATE_TMP, _TEMP_DIR, _TEMPSTATE
from tfckpt.errors import CheckpointError, NotFoundError

__all__ = ["Checkpoint", "add_parser", "scan"]

EXAMPLES = """\
examples:
  tfckpt ls train/            every checkpoint in train/: step, time, size, latest/kept/incomplete
  tfckpt ls train/ --json     the same as JSON

status words:
  latest       the state file's model_checkpoint_path (what restore picks)
  kept         listed in the state file's all_model_checkpoint_paths (max_to_keep)
  preserved    not listed, but no newer than last_preserved_timestamp (keep_checkpoint_every_n_hours)
  untracked    complete on disk but not named by the state file
  missing      named by the state file but not on disk
  elsewhere    named by the state file, on disk in another directory (a copied or moved run)
  incomplete   data without index, index naming missing shards, unreadable index
Leftovers of interrupted saves (*.tempstate*, checkpoint.tmp*, *_temp/ directories, *.index.aside*)
are listed apart.
"""

_DATA = re.compile(r"^(?P<p>.+)\.data-(?P<i>\d{5})-of-(?P<n>\d{5})$")
_V1_SHARD = re.compile(r"^(?P<p>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})$")
_V1_PATTERN = re.compile(r"-\?{5}-of-\d{5}$")
_STEP = re.compile(r"-(\d+)$")


@dataclass
class Checkpoint:
    """One checkpoint found in a directory."""

    name: str
    format: str = "?"
    step: int | None = None
    files: list[str] = field(default_factory=list)
    size: int = 0
    mtime: float | None = None
    timestamp: float | None = None  # from the state file, when recorded
    has_index: bool = False
    data_shards: list[tuple[int, int]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "step": self.step, "time": self.timestamp or self.mtime,
                "size": self.size, "files": sorted(self.files), "status": self.status, "problems": self.problems}


@dataclass
class Listing:
    directory: str
    checkpoints: list[Checkpoint]
    leftovers: list[tuple[str, str]]
    state_file: bool
    state_error: str | None = None
    last_preserved_timestamp: float | None = None


def _step(name: str) -> int | None:
    m = _STEP.search(name)
    return int(m.group(1)) if m else None


def scan(directory: str) -> Listing:
    """Find every checkpoint (complete or not) in ``directory``.

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> d = tempfile.mkdtemp()
        >>> _ = tfckpt.write({"w": np.zeros(2)}, os.path.join(d, "model.ckpt-5"))
        >>> [(c.name, c.step, c.status) for c in scan(d).checkpoints]
        [('model.ckpt-5', 5, ['untracked'])]
    """
    if not os.path.isdir(directory):
        raise NotFoundError(f"{directory} is not a directory", path=directory)
    ckpts: dict[str, Checkpoint] = {}
    leftovers: list[tuple[str, str]] = []

    def get(name: str) -> Checkpoint:
        c = ckpts.get(name)
        if c is None:
            c = ckpts[name] = Checkpoint(name, step=_step(name))
        return c

    recoverable = {os.path.basename(r.aside): r for r in _recovery.pending(directory)}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        fn = entry.name
        if entry.is_dir():
            if _TEMP_DIR.fullmatch(fn):
                leftovers.append((fn + "/", "temporary directory of an interrupted sharded save"))
            continue
        if fn == "checkpoint":
            continue
        if _TEMPSTATE.fullmatch(fn):
            leftovers.append((fn, "temporary file of an interrupted save"))
            continue
        if _recovery.ASIDE.fullmatch(fn):
            r = recoverable.get(fn)
            why = "earlier index moved aside by an interrupted re-save"
            if r is not None:
                what = "index put back" if r.action == "put back" else "save finished"
                why += f": its checkpoint is recoverable ({what} by the next read or save of it, or tfckpt cleanup)"
            leftovers.append((fn, why))
            continue
        if _STATE_TMP.fullmatch(fn):
            leftovers.append((fn, "temporary state file of an interrupted update"))
            continue
        size = entry.stat().st_size
        mtime = entry.stat().st_mtime
        c: Checkpoint | None = None
        if fn.endswith(".index"):
            c = get(fn[: -len(".index")])
            c.has_index, c.format = True, "V2"
        elif m := _DATA.match(fn):
            c = get(m.group("p"))
            c.data_shards.append((int(m.group("i")), int(m.group("n"))))
            if c.format == "?":
                c.format = "V2"
        elif fn.endswith(".meta"):
            c = get(fn[: -len(".meta")])
        elif is_v1_checkpoint(entry.path):
            m1 = _V1_SHARD.match(fn)
            c = get(m1.group("p") if m1 else fn)
            c.format = "V1"
        if c is None:
            continue
        c.files.append(fn)
        c.size += size
        if fn.endswith(".index") or c.mtime is None or (c.format != "V2" and mtime > c.mtime):
            c.mtime = mtime
    by_prefix = {os.path.basename(r.prefix): r for r in recoverable.values()}
    for c in ckpts.values():
        _check(directory, c, by_prefix.get(c.name))

    listing = Listing(directory, [], leftovers, os.path.isfile(os.path.join(directory, "checkpoint")))
    try:
        state = get_checkpoint_state(directory)
    except CheckpointError as e:
        state, listing.state_error = None, str(e)
    if listing.state_file and state is None and listing.state_error is None:
        listing.state_error = "the state file 'checkpoint' cannot be parsed"
    latest: str | None = None
    kept: list[str] = []
    stamps: list[float] = []
    if state is not None:
        latest = _rel(directory, state.model_checkpoint_path)
        kept = [_rel(directory, p) for p in state.all_model_checkpoint_paths]
        stamps = list(state.all_model_checkpoint_timestamps)
        listing.last_preserved_timestamp = state.last_preserved_timestamp or None
    missing: set[str] = set()
    elsewhere: set[str] = set()
    for name in [*kept, *([latest] if latest else [])]:
        if name not in ckpts:
            ckpts[name] = Checkpoint(name, step=_step(name))
            (elsewhere if os.path.isabs(name) and on_disk(name) else missing).add(name)
    for name, c in ckpts.items():
        if name == latest:
            c.status.insert(0, "latest")
        if name in kept:
            c.status.append("kept")
            i = kept.index(name)
            if i < len(stamps):
                c.timestamp = stamps[i]
        if name in missing or name in elsewhere:
            c.status.append("missing" if name in missing else "elsewhere")
            continue
        complete = not c.problems and c.format != "?"
        if c.format == "?" and not c.problems:
            c.problems.append("only a .meta file (no checkpoint data)")
        if not complete:
            c.status.append("incomplete")
        elif name not in kept and name != latest:
            lp = listing.last_preserved_timestamp
            if lp and c.mtime is not None and c.mtime <= lp + 1.0:
                c.status.append("preserved")
            else:
                c.status.append("untracked")
    listing.checkpoints = sorted(
        ckpts.values(), key=lambda c: (c.step is None, c.step or 0, c.timestamp or c.mtime or 0.0, c.name)
    )
    return listing


def _rel(directory: str, path: str) -> str:
    path = _V1_PATTERN.sub("", path)  # a sharded V1 checkpoint is named by its pattern
    if os.path.realpath(os.path.dirname(os.path.abspath(path))) == os.path.realpath(directory):
        return os.path.basename(path)
    return path


def _check(directory: str, c: Checkpoint, recovery: _recovery.Recovery | None = None) -> None:
    if c.format != "V2":
        return
    if not c.has_index:
        if recovery is not None:
            what = "its old index put back" if recovery.action == "put back" else "the save finished"
            c.problems.append(f"an interrupted re-save's; recoverable: {what} by the next read or save of it")
        else:
            c.problems.append(f"{len(c.data_shards)} data file(s) without an index")
        return
    try:
        with BundleReader(os.path.join(directory, c.name)) as r:
            n = r.header.num_shards
    except CheckpointError as e:
        c.problems.append(f"unreadable index: {e}")
        return
    have = {i for i, m in c.data_shards if m == n}
    missing = [i for i in range(n) if i not in have]
    if missing:
        c.problems.append(
            "index names missing data file(s): " + ", ".join(f".data-{i:05d}-of-{n:05d}" for i in missing))
    stray = sorted(f".data-{i:05d}-of-{m:05d}" for i, m in c.data_shards if m != n)
    if stray:
        c.problems.append("data file(s) of another save: " + ", ".join(stray))


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


_STYLE = {"latest": "bold green", "incomplete": "bold red", "missing": "red", "untracked": "yellow"}


def run(args: argparse.Namespace) -> int:
    listing = scan(args.dir)
    if args.json:
        dump_json({
            "directory": listing.directory,
            "state_file": listing.state_file,
            "state_error": listing.state_error,
            "last_preserved_timestamp": listing.last_preserved_timestamp,
            "checkpoints": [c.as_dict() for c in listing.checkpoints],
            "leftovers": [{"file": f, "problem": why} for f, why in listing.leftovers],
        })
        return 0
    rows, styles = [], []
    for c in listing.checkpoints:
        status = ", ".join(c.status)
        if c.problems:
            status += ": " + "; ".join(c.problems)
        rows.append(["-" if c.step is None else str(c.step), c.name, c.format, _fmt_time(c.timestamp or c.mtime),
                     "-" if "missing" in c.status or "elsewhere" in c.status else human_bytes(c.size), status])
        styles.append(next((_STYLE[s] for s in ("incomplete", "missing", "latest", "untracked") if s in c.status),
                           None))
    if not rows:
        print_line(f"no checkpoints in {listing.directory}")
    else:
        print_table(["step", "checkpoint", "format", "time (UTC)", "size", "status"], rows, align="rlllrl",
                    styles=styles)
    if listing.state_error:
        print_line(styled(f"state file: {listing.state_error}", "red"))
    elif not listing.state_file:
        print_line("no state file ('checkpoint'): nothing is marked latest")
    if listing.leftovers:
        print_line(styled("leftovers of interrupted saves:", "yellow"))
        for f, why in listing.leftovers:
            print_line(f"  {f}  ({why})")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ls",
        help="list the checkpoints in a directory (latest, kept, incomplete)",
        description="List the checkpoints a directory holds, from its 'checkpoint' state file and from the "
                    "files: step (the -N suffix), time, total size, which is latest, which the state file keeps, "
                    "which are incomplete, and leftovers of interrupted saves.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", help="a training directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
