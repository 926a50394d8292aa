"""The ``checkpoint`` state file and checkpoint-path helpers (TensorFlow's checkpoint_management).

The state file is a ``CheckpointState`` in protobuf text format::

    model_checkpoint_path: "model.ckpt-2"
    all_model_checkpoint_paths: "model.ckpt-1"
    all_model_checkpoint_paths: "model.ckpt-2"

Relative paths in it are relative to the directory that holds it. It is
replaced atomically (temp file, fsync, rename) so a reader sees the old or the
new state, never a mix.

Example:
    >>> import tempfile, os, numpy as np, tfckpt
    >>> d = tempfile.mkdtemp()
    >>> _ = tfckpt.write({"w": np.zeros(2)}, os.path.join(d, "model.ckpt-1"))
    >>> update_checkpoint_state(d, os.path.join(d, "model.ckpt-1"))
    >>> latest_checkpoint(d) == os.path.join(d, "model.ckpt-1")
    True
"""

from __future__ import annotations

import glob
import logging
import os
import re
import uuid
from collections.abc import Sequence

from google.protobuf import text_format

from tfckpt._paths import PathLike, as_path
from tfckpt._proto import checkpoint_pb2
from tfckpt._recovery import recover_prefix
from tfckpt._storage import read_whole_file, remove_quietly, write_bytes_atomic
from tfckpt.errors import CheckpointError, FailedPreconditionError, InvalidArgumentError

__all__ = [
    "CheckpointState",
    "checkpoint_exists",
    "generate_checkpoint_state_proto",
    "get_checkpoint_mtimes",
    "get_checkpoint_state",
    "latest_checkpoint",
    "meta_graph_filename",
    "remove_checkpoint",
    "update_checkpoint_state",
    "update_checkpoint_state_internal",
]

logger = logging.getLogger("tfckpt")

CheckpointState = checkpoint_pb2.CheckpointState

# State files are tiny; refuse to parse something absurd.
_MAX_STATE_FILE = 64 << 20


def _relpath_if_relative(p: str, save_dir: str) -> str:
    # TensorFlow's os.path.relpath(p, "") raises for a save path without a directory
    # ("model.ckpt"); the current directory is what is meant.
    return p if os.path.isabs(p) else os.path.relpath(p, save_dir or os.curdir)


def generate_checkpoint_state_proto(
    save_dir: PathLike,
    model_checkpoint_path: PathLike,
    all_model_checkpoint_paths: list[str] | None = None,
    all_model_checkpoint_timestamps: Sequence[float] | None = None,
    last_preserved_timestamp: float | None = None,
) -> checkpoint_pb2.CheckpointState:
    """Build a ``CheckpointState``; the model path is appended to the list if it is not last."""
    save_dir = as_path(save_dir, "save_dir")
    model = as_path(model_checkpoint_path, "model_checkpoint_path")
    if all_model_checkpoint_paths is None:
        all_model_checkpoint_paths = []
    if not all_model_checkpoint_paths or all_model_checkpoint_paths[-1] != model:
        all_model_checkpoint_paths.append(model)
    all_model_checkpoint_paths = [as_path(p, "all_model_checkpoint_paths item") for p in all_model_checkpoint_paths]
    if all_model_checkpoint_timestamps and len(all_model_checkpoint_timestamps) != len(all_model_checkpoint_paths):
        raise InvalidArgumentError(
            "Checkpoint timestamps, if provided, must match checkpoint paths (got paths "
            f"{all_model_checkpoint_paths} and timestamps {list(all_model_checkpoint_timestamps)})"
        )
    if not os.path.isabs(save_dir):
        model = _relpath_if_relative(model, save_dir)
        all_model_checkpoint_paths = [_relpath_if_relative(p, save_dir) for p in all_model_checkpoint_paths]
    return checkpoint_pb2.CheckpointState(
        model_checkpoint_path=model,
        all_model_checkpoint_paths=all_model_checkpoint_paths,
        all_model_checkpoint_timestamps=list(all_model_checkpoint_timestamps or []),
        last_preserved_timestamp=last_preserved_timestamp or 0.0,
    )


def update_checkpoint_state_internal(
    save_dir: PathLike,
    model_checkpoint_path: PathLike,
    all_model_checkpoint_paths: list[str] | None = None,
    latest_filename: str | None = None,
    save_relative_paths: bool = False,
    all_model_checkpoint_timestamps: Sequence[float] | None = None,
    last_preserved_timestamp: float | None = None,
    sync: bool = True,
) -> None:
    """Write the state file atomically (``checkpoint.tmp<uuid>`` then rename)."""
    save_dir = as_path(save_dir, "save_dir")
    model = as_path(model_checkpoint_path, "model_checkpoint_path")
    coord = os.path.join(save_dir, latest_filename or "checkpoint")
    if save_relative_paths:
        base = save_dir or os.curdir
        if os.path.isabs(model):
            model = os.path.relpath(model, base)
        paths = [os.path.relpath(p, base) if os.path.isabs(p) else p for p in (all_model_checkpoint_paths or [])]
        all_model_checkpoint_paths = paths
    state = generate_checkpoint_state_proto(
        save_dir, model, all_model_checkpoint_paths, all_model_checkpoint_timestamps, last_preserved_timestamp
    )
    if coord == state.model_checkpoint_path:
        raise FailedPreconditionError(
            f"Save path '{model}' conflicts with path used for checkpoint state.  Please use a different save path."
        )
    text = text_format.MessageToString(state, as_utf8=True)
    write_bytes_atomic(coord, text.encode("utf-8"), sync=sync, tmp=f"{coord}.tmp{uuid.uuid4().hex}")


def update_checkpoint_state(
    save_dir: PathLike,
    model_checkpoint_path: PathLike,
    all_model_checkpoint_paths: list[str] | None = None,
    latest_filename: str | None = None,
    all_model_checkpoint_timestamps: Sequence[float] | None = None,
    last_preserved_timestamp: float | None = None,
) -> None:
    """TensorFlow's public ``update_checkpoint_state`` (paths stored as given)."""
    update_checkpoint_state_internal(
        save_dir,
        model_checkpoint_path,
        all_model_checkpoint_paths,
        latest_filename,
        save_relative_paths=False,
        all_model_checkpoint_timestamps=all_model_checkpoint_timestamps,
        last_preserved_timestamp=last_preserved_timestamp,
    )


def get_checkpoint_state(
    checkpoint_dir: PathLike, latest_filename: str | None = None
) -> checkpoint_pb2.CheckpointState | None:
    """Read the state file; None if there is none or it cannot be parsed (a warning is logged).

    Relative paths come back joined onto ``checkpoint_dir``.

    Raises:
        InvalidArgumentError: the file parses but names no checkpoint (e.g. it is empty).
    """
    checkpoint_dir = as_path(checkpoint_dir, "checkpoint_dir")
    coord = os.path.join(checkpoint_dir, latest_filename or "checkpoint")
    if not os.path.isfile(coord):
        return None
    try:
        text = read_whole_file(coord, max_size=_MAX_STATE_FILE).decode("utf-8", "surrogateescape")
        state = checkpoint_pb2.CheckpointState()
        text_format.Merge(text, state)
    except (CheckpointError, text_format.ParseError, UnicodeError) as e:
        logger.warning("%s: %s", type(e).__name__, e)
        logger.warning("%s: Checkpoint ignored", coord)
        return None
    if not state.model_checkpoint_path:
        raise InvalidArgumentError(f"Invalid checkpoint state loaded from {checkpoint_dir}", path=coord)
    if not os.path.isabs(state.model_checkpoint_path):
        state.model_checkpoint_path = os.path.join(checkpoint_dir, state.model_checkpoint_path)
    for i, p in enumerate(state.all_model_checkpoint_paths):
        if not os.path.isabs(p):
            state.all_model_checkpoint_paths[i] = os.path.join(checkpoint_dir, p)
    return state


def glob_files(pattern: str) -> list[str]:
    """The files matching ``pattern``, whose directory part is taken literally: only the file
    name may hold wildcards (``model.ckpt-7-?????-of-00002``). A directory named ``run[1]``
    must not match ``run1``: retention would delete another run's checkpoints (TensorFlow's
    globbing of the whole path does).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(d, "run1")); open(os.path.join(d, "run1", "a.index"), "w").close()
        >>> glob_files(os.path.join(d, "run[1]", "a.index")), len(glob_files(os.path.join(d, "run1", "*.index")))
        ([], 1)
    """
    d, base = os.path.split(pattern)
    return glob.glob(os.path.join(glob.escape(d), base) if d else base)


def literal_pattern(prefix: str) -> str:
    """``prefix`` for :func:`glob_files` matching itself only (its file name escaped)."""
    d, base = os.path.split(prefix)
    return os.path.join(d, glob.escape(base)) if d else glob.escape(base)


def checkpoint_exists(checkpoint_prefix: PathLike) -> bool:
    """True if ``<prefix>.index`` (V2) or ``<prefix>`` (V1 file or pattern) exists.

    A checkpoint that a killed re-save left without its index is recovered first (see
    :mod:`tfckpt._recovery`), so that a restarted program finds it before its first save."""
    prefix = as_path(checkpoint_prefix, "checkpoint_prefix")
    return on_disk(prefix) or recover_prefix(prefix)


def on_disk(prefix: str) -> bool:
    """:func:`checkpoint_exists` without recovering anything (for tools that only look)."""
    return bool(os.path.exists(prefix + ".index") or glob_files(prefix + ".index") or glob_files(prefix))


def named_checkpoint(checkpoint_dir: PathLike, latest_filename: str | None = None) -> tuple[str | None, str]:
    """``(latest checkpoint or None, the path the state file names or "")``: what
    :func:`latest_checkpoint` finds, and, when it finds nothing, which checkpoint is gone (no log)."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    named = str(state.model_checkpoint_path) if state is not None else ""
    return (named if named and checkpoint_exists(named) else None), named


def latest_checkpoint(checkpoint_dir: PathLike, latest_filename: str | None = None) -> str | None:
    """The newest complete checkpoint named by the state file in ``checkpoint_dir``, or None."""
    latest, named = named_checkpoint(checkpoint_dir, latest_filename)
    if latest is None and named:
        logger.error("Couldn't match files for checkpoint %s", named)
    return latest


def get_checkpoint_mtimes(checkpoint_prefixes: Sequence[PathLike]) -> list[float]:
    """Modification times (seconds) of the given checkpoints; missing ones are skipped."""
    out = []
    for p in checkpoint_prefixes:
        prefix = as_path(p, "checkpoint_prefixes item")
        matches = glob_files(prefix + ".index") or glob_files(prefix)  # (the file name may be a pattern)
        if matches:
            out.append(os.stat(matches[0]).st_mtime_ns / 1e9)
    return out


def remove_checkpoint(checkpoint_prefix: PathLike, checkpoint_format_version: int = 2,
                      meta_graph_suffix: str = "meta") -> None:
    """Delete a checkpoint's files: its ``.meta``, then ``.index`` and data files (V2) or the file(s) (V1)."""
    prefix = as_path(checkpoint_prefix, "checkpoint_prefix")
    patterns = [literal_pattern(meta_graph_filename(prefix, meta_graph_suffix))]
    if checkpoint_format_version == 2:
        patterns += [literal_pattern(prefix) + ".index", literal_pattern(prefix) + ".data-?????-of-?????"]
    else:
        patterns.append(prefix)  # (a V1 prefix may be a pattern of its shards)
    for pat in patterns:
        for f in glob_files(pat):
            remove_quietly(f)


_SHARD_SUFFIX = re.compile(r"-[\d\?]+-of-\d+$")


def meta_graph_filename(checkpoint_filename: PathLike, meta_graph_suffix: str = "meta") -> str:
    """``model.ckpt-7-?????-of-00002`` -> ``model.ckpt-7.meta``."""
    basename = _SHARD_SUFFIX.sub("", as_path(checkpoint_filename, "checkpoint_filename"))
    return f"{basename}.{meta_graph_suffix}"
