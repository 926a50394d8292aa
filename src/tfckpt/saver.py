"""``tf.compat.v1.train.Saver`` for numpy, PyTorch and JAX state, and a TF1-style ``Variable``.

The saver writes TensorFlow checkpoints (``prefix.index`` + ``prefix.data-*`` + ``prefix.meta``
and the ``checkpoint`` state file) with TensorFlow's file names, retention rules and
error messages; TensorFlow restores them and this saver restores TensorFlow's.

``sess`` -- a Session in TensorFlow -- is here the state holding the values (see
:mod:`tfckpt._state`): a mapping of arrays, a torch module/optimizer, a JAX pytree,
a mix of those, or ``None`` when ``var_list`` holds the variables itself.

Commit order of :meth:`Saver.save`: data files and index (the index rename is the
commit point), then the ``.meta`` file, then the state file (atomic rename), then
the deletion of evicted checkpoints. So ``latest_checkpoint`` never names an
incomplete checkpoint, whenever the process dies.

Differences from TensorFlow, all deliberate: ``save_path`` may be a ``pathlib.Path``;
missing parent directories are created (TensorFlow creates one level); ``var_list=None``
means "every value of ``sess``" rather than "every variable of the graph" (so there is no
eager-mode ``RuntimeError`` for it); a name-based restore checks every dtype and shape
before assigning anything (TensorFlow may have assigned some variables when it fails).

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> d = tempfile.mkdtemp()
    >>> v1 = tfckpt.Variable(np.zeros(3, np.float32), name="v1")
    >>> saver = tfckpt.Saver([v1], max_to_keep=2)
    >>> _ = v1.assign(np.arange(3, dtype=np.float32))
    >>> path = saver.save(None, os.path.join(d, "model.ckpt"), global_step=7, write_meta_graph=False)
    >>> os.path.basename(path)
    'model.ckpt-7'
    >>> _ = v1.assign(np.zeros(3, np.float32)); _ = saver.restore(None, path); v1.numpy()
    array([0., 1., 2.], dtype=float32)
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Callable, Mapping
from itertools import repeat
from operator import attrgetter, is_, itemgetter
from typing import Any

import numpy as np

from tfckpt import _state
from tfckpt._convert import framework_of, to_array
from tfckpt._format.bundle_writer import BundleWriter, sort_by_name
from tfckpt._gcpause import paused_gc
from tfckpt._lock import DirectoryLock
from tfckpt._paths import as_path
from tfckpt._proto import meta_graph_pb2
from tfckpt._restore import restore_entries
from tfckpt._retention import SaverRetention, check_options, wall_clock
from tfckpt._state import Entry, resolve_var_list, state_entries
from tfckpt._storage import write_bytes_atomic
from tfckpt.checkpoint_management import (
    checkpoint_exists,
    get_checkpoint_mtimes,
    meta_graph_filename,
    remove_checkpoint,
    update_checkpoint_state_internal,
)
from tfckpt.errors import (
    CheckpointError,
    FailedPreconditionError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    TensorNotFoundError,
)
from tfckpt.reader import OBJECT_GRAPH_KEY, CheckpointReader
from tfckpt.variables import SaveSliceInfo, Variable

_TARGET = attrgetter("target")

__all__ = ["SaveSliceInfo", "Saver", "Variable"]

logger = logging.getLogger("tfckpt")
_warned_no_meta = False

_GRAPH_MISMATCH = (
    "Restoring from checkpoint failed. This is most likely due to a mismatch between the current graph and "
    "the graph from the checkpoint. Please ensure that you have not altered the graph expected based on the "
    "checkpoint. Original error:\n\n"
)
_KEY_MISSING = (
    "Restoring from checkpoint failed. This is most likely due to a Variable name or other graph key that is "
    "missing from the checkpoint. Please ensure that you have not altered the graph expected based on the "
    "checkpoint. Original error:\n\n"
)
_V1_WARNING = (
    "*******************************************************\n"
    "TensorFlow's V1 checkpoint format has been deprecated.\n"
    "Consider switching to the more efficient V2 format:\n"
    "   `tf.train.Saver(write_version=tf.train.SaverDef.V2)`\n"
    "now on by default.\n"
    "*******************************************************"
)

SAVE_COUNTER_KEY = "save_counter"  # where CheckpointManager stores its count (TF2: + _VALUE_SUFFIX)
# checkpoint keys that never belong to a state's objects (not handed to an optimizer restored whole)
_NOT_STATE = frozenset({OBJECT_GRAPH_KEY, SAVE_COUNTER_KEY, SAVE_COUNTER_KEY + "/.ATTRIBUTES/VARIABLE_VALUE"})


def _as_str(path: object) -> str:
    if isinstance(path, (str, bytes, os.PathLike)):
        return as_path(path, "path")
    raise InvalidTypeError(f"Expected binary or unicode string, got {path!r}")


def _as_saver_def(saver_def: object) -> meta_graph_pb2.SaverDef:
    if isinstance(saver_def, meta_graph_pb2.SaverDef):
        return saver_def
    descriptor = getattr(saver_def, "DESCRIPTOR", None)
    if getattr(descriptor, "full_name", None) == "tensorflow.SaverDef":  # TensorFlow's own class
        data: bytes = saver_def.SerializeToString()  # type: ignore[attr-defined]
        out: meta_graph_pb2.SaverDef = meta_graph_pb2.SaverDef.FromString(data)
        return out
    raise InvalidArgumentError(f"saver_def must be a saver_pb2.SaverDef: {saver_def}")


def _device_of(value: object) -> str:
    fw = framework_of(value)
    if fw == "torch" and hasattr(value, "device"):
        return str(value.device)
    if fw == "jax" and hasattr(value, "devices"):
        try:
            return ",".join(sorted(str(d) for d in value.devices()))
        except (TypeError, AttributeError):
            return "cpu"
    return "cpu"


class Saver:
    """Saves and restores variables as TensorFlow checkpoints (``tf.compat.v1.train.Saver``).

    Args:
        var_list: what to save. ``None``: every value of the state passed to :meth:`save` /
            :meth:`restore` as ``sess``, named by its path (``"model/dense/kernel"``). A list
            (nested lists/tuples/sets are flattened) of :class:`Variable` (keyed by op name,
            ``"v1"``) or of names (``str``, looked up in ``sess``). A dict checkpoint key ->
            Variable, name, array/tensor, or list of sliced Variables (renaming and subsets).
        reshape: on restore, reshape each saved tensor to the target's shape when the
            element counts agree (row-major), instead of failing on the shape mismatch.
        sharded: write several data files in parallel: one per device when torch tensors
            live on several devices (``cpu``, ``cuda:0``, ... sorted), otherwise
            ``min(cpu_count, 4, number of tensors)`` files balanced by size; one index.
        max_to_keep: how many recent checkpoints to keep; ``None``/``0`` keeps all (and
            tracks none). Older ones are deleted, one per save.
        keep_checkpoint_every_n_hours: additionally keep one checkpoint per this many hours
            (on a fixed grid from construction time). The default 10000 disables it.
        name: name scope of the save/restore ops in TensorFlow; here the prefix of the
            tensor names in :meth:`as_saver_def` (``"<name>/Const:0"``); with ``saver_def``
            it is prepended to the SaverDef's names, as TensorFlow does on import.
        restore_sequentially: TensorFlow restores one variable per op group to limit memory
            on graph execution. Here ``True`` reads and assigns one tensor at a time (peak
            memory of one tensor; a failure midway leaves the earlier ones restored);
            ``False`` (default) reads and checks every tensor before assigning any.
        saver_def: an existing ``SaverDef`` (e.g. from a ``.meta``); its ``max_to_keep``,
            ``keep_checkpoint_every_n_hours``, ``sharded`` and ``version`` override the
            constructor arguments.
        builder: TensorFlow's graph builder (``BulkSaverBuilder``). There is no graph here:
            accepted for compatibility and ignored.
        defer_build: in TensorFlow, build the save/restore ops later with :meth:`build`.
            Here it only enforces TensorFlow's contract: ``var_list`` must be None and
            :meth:`build` must be called before :meth:`save`.
        allow_empty: with nothing to save, :meth:`save` returns None and :meth:`restore`
            does nothing, instead of ``ValueError("No variables to save")``.
        write_version: ``2`` (V2, ``.index`` + ``.data``) or ``1`` (deprecated V1 single file).
        pad_step_number: name checkpoints ``prefix-00000007`` instead of ``prefix-7``.
        save_relative_paths: store paths relative to the directory in the state file, so the
            directory can be moved.
        filename: default checkpoint filename recorded in the ``.meta`` (``"model"``).
        clock: seconds since the epoch (default ``time.time``); injectable for tests.
        sync: fsync files and directories (default). ``False`` is faster; a crash of the
            process still cannot corrupt anything, a power cut may lose recent saves.
    """

    def __init__(
        self,
        var_list: object = None,
        reshape: bool = False,
        sharded: bool = False,
        max_to_keep: int | None = 5,
        keep_checkpoint_every_n_hours: float = 10000.0,
        name: str | None = None,
        restore_sequentially: bool = False,
        saver_def: object = None,
        builder: object = None,
        defer_build: bool = False,
        allow_empty: bool = False,
        write_version: int = 2,
        pad_step_number: bool = False,
        save_relative_paths: bool = False,
        filename: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sync: bool = True,
    ) -> None:
        if defer_build and var_list:
            raise InvalidArgumentError(
                "If `var_list` is provided then build cannot be deferred. Either set defer_build=False or "
                "var_list=None."
            )
        check_options(max_to_keep, keep_checkpoint_every_n_hours)
        self._clock = clock or wall_clock
        self._sync = sync
        self._reshape = reshape
        self._restore_sequentially = restore_sequentially
        self._builder = builder
        self._allow_empty = allow_empty
        self._pad_step_number = pad_step_number
        self._save_relative_paths = save_relative_paths
        self._filename = filename or "model"
        self._name = name
        self._built = not defer_build
        self._entries: list[Entry] | None = None
        self._is_empty = False
        if var_list is not None:
            self._entries = resolve_var_list(var_list)
            if not self._entries:
                if not allow_empty:
                    raise InvalidArgumentError("No variables to save")
                self._is_empty = True
        if saver_def is not None:
            sd = _as_saver_def(saver_def)
            if not sd.save_tensor_name:
                raise InvalidArgumentError(f"saver_def must specify the save_tensor_name: {sd}")
            if not sd.restore_op_name:
                raise InvalidArgumentError(f"saver_def must specify the restore_op_name: {sd}")
            if name:
                for f in ("filename_tensor_name", "save_tensor_name", "restore_op_name"):
                    setattr(sd, f, f"{name}/{getattr(sd, f)}")
            self.saver_def = sd
        else:
            scope = name or "save"
            # TensorFlow's graph names: the sharded save ends in an Identity (V2) or ShardedFilespec (V1)
            save_tensor = "control_dependency"
            if sharded:
                save_tensor = "Identity" if write_version == 2 else "ShardedFilespec"
            self.saver_def = meta_graph_pb2.SaverDef(
                filename_tensor_name=f"{scope}/Const:0",
                save_tensor_name=f"{scope}/{save_tensor}:0",
                restore_op_name=f"{scope}/restore_all",
                max_to_keep=max_to_keep or 0,
                sharded=sharded,
                keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
                version=write_version,  # type: ignore[arg-type]
            )
        self._write_version = int(self.saver_def.version)
        self._sharded = bool(self.saver_def.sharded)
        # The SaverDef field is a float32: TensorFlow's graph-mode period is float32-rounded.
        period = float(self.saver_def.keep_checkpoint_every_n_hours) * 3600.0
        self._retention = SaverRetention(self.saver_def.max_to_keep, period, self._clock())
        self._meta_cache: tuple[object, bytes] | None = None
        # Directory locks: held for one save, or for the Saver's lifetime (CheckpointManager).
        self._locks: dict[str, DirectoryLock] = {}
        self._cleaned: set[str] = set()

    # -- bookkeeping (TensorFlow's API) ------------------------------------

    def build(self) -> None:
        """Mark a ``defer_build`` saver as built (there are no ops to build)."""
        self._built = True

    @property
    def last_checkpoints(self) -> list[str]:
        """Paths of the tracked (not yet deleted) checkpoints, oldest first."""
        return self._retention.paths

    def set_last_checkpoints(self, last_checkpoints: list[str]) -> None:
        """Replace the tracked list (timestamps +inf: never deleted when evicted). Deprecated in TF."""
        assert isinstance(last_checkpoints, list)
        self._retention.set_entries([(s, math.inf) for s in last_checkpoints])

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time: list[tuple[str, float]]) -> None:
        """Replace the tracked list with ``(path, timestamp)`` pairs."""
        assert isinstance(last_checkpoints_with_time, list)
        self._retention.set_entries(last_checkpoints_with_time)

    def recover_last_checkpoints(self, checkpoint_paths: list[str]) -> None:
        """Track ``checkpoint_paths`` (e.g. from a state file) with their files' mtimes; missing ones skipped."""
        entries = []
        for p in checkpoint_paths:
            try:
                mtimes = get_checkpoint_mtimes([p])
            except (NotFoundError, FileNotFoundError):
                continue
            if mtimes:
                entries.append((p, mtimes[0]))
        self._retention.set_entries(entries)

    def as_saver_def(self) -> meta_graph_pb2.SaverDef:
        """The ``SaverDef`` describing this saver (the object itself, not a copy)."""
        return self.saver_def

    def to_proto(self, export_scope: str | None = None) -> meta_graph_pb2.SaverDef | None:
        """The SaverDef; with ``export_scope``, a copy with the scope stripped (None if a name is outside it)."""
        if export_scope is None:
            return self.saver_def
        names = ("filename_tensor_name", "save_tensor_name", "restore_op_name")
        if not all(getattr(self.saver_def, f).startswith(export_scope) for f in names):
            return None
        sd = meta_graph_pb2.SaverDef()
        sd.CopyFrom(self.saver_def)
        for f in names:
            setattr(sd, f, getattr(sd, f)[len(export_scope):].lstrip("/"))
        return sd

    @staticmethod
    def from_proto(saver_def: object, import_scope: str | None = None) -> Saver:
        """``Saver(saver_def=saver_def, name=import_scope)``."""
        return Saver(saver_def=saver_def, name=import_scope)

    # -- saving ------------------------------------------------------------

    def _resolve(self, sess: object) -> list[Entry]:
        if self._entries is not None:
            return self._entries
        if sess is None:
            return []
        return state_entries(sess)

    def _step(self, global_step: object, flat: Mapping[str, object]) -> int:
        if isinstance(global_step, (numbers.Integral, np.integer)):
            return int(global_step)  # type: ignore[arg-type]
        if isinstance(global_step, str):
            name = global_step[:-2] if global_step.endswith(":0") else global_step
            if name not in flat:
                raise TensorNotFoundError(f"global_step {global_step!r} is not a value of the state", key=name)
            global_step = flat[name]
        _, arr = to_array(global_step, "global_step")
        if arr.size != 1 or arr.dtype.kind not in "iufb":
            raise InvalidArgumentError(f"global_step must be a scalar number, got {arr!r}")
        value = arr.reshape(()).item()
        if not math.isfinite(value) or value != int(value):
            raise InvalidArgumentError(f"global_step must be a whole number, got {value!r} (the checkpoint's name "
                                       "holds an integer step: a fraction would be cut off, and its name shared)")
        return int(value)

    def _values(self, entries: list[Entry], sess: object) -> tuple[dict[str, object], list[object]]:
        flat = _state.flatten(sess) if sess is not None else {}
        values: list[object] = list(map(_TARGET, entries))
        if not any(map(isinstance, values, repeat(str))):  # (values held by the entries: the usual case)
            return flat, values
        values = []
        for e in entries:
            if isinstance(e.target, str):
                name = e.target
                if name not in flat and name.endswith(":0"):
                    name = name[:-2]
                if name not in flat:
                    raise TensorNotFoundError(
                        f"Cannot save {e.key!r}: {name!r} is not a value of the state passed as `sess`", key=e.key
                    )
                values.append(flat[name])
            else:
                values.append(e.target)
        return flat, values

    def _write_checkpoint(self, sess: object, checkpoint_file: str,
                          extra: Mapping[str, object] | None = None) -> tuple[str, list[Entry], list[object]]:
        """Write the data files and index (no state file, no .meta); return (model path, entries, values)."""
        entries = self._resolve(sess)
        _, values = self._values(entries, sess)
        items: list[tuple[str, object, SaveSliceInfo | None]] = [
            (e.key, v, e.slice_info) for e, v in zip(entries, values)
        ]
        items += [(k, v, None) for k, v in (extra or {}).items()]
        sort_by_name(items)
        if self._write_version == 1:
            from tfckpt._format.v1_writer import write_v1

            shards = self._num_shards(items)[0] if self._sharded else 0
            return write_v1(checkpoint_file, items, num_shards=shards, sync=self._sync), entries, values
        if self._write_version != 2:
            raise FailedPreconditionError(f"Unexpected write_version: {self._write_version}")
        num_shards, shard_of = self._num_shards(items)
        w = BundleWriter(checkpoint_file, num_shards=num_shards, sync=self._sync)
        if shard_of is None and all(map(is_, map(itemgetter(2), items), repeat(None))):
            w.add_arrays(list(map(itemgetter(0), items)), list(map(itemgetter(1), items)))
        else:
            for key, value, sl in items:
                shard = shard_of(value) if shard_of else None
                if sl is not None:
                    w.add_slice(key, sl.full_shape, sl.slice_spec, value, shard=shard)
                else:
                    w.add(key, value, shard=shard)
        return w.finish(), entries, values

    def _num_shards(self, items: list[tuple[str, object, SaveSliceInfo | None]]
                    ) -> tuple[int, Callable[[object], int] | None]:
        if not self._sharded:
            return 1, None
        devices = sorted({_device_of(v) for _, v, _ in items})
        if len(devices) > 1:
            index = {d: i for i, d in enumerate(devices)}
            return len(devices), lambda v: index[_device_of(v)]
        return max(1, min(os.cpu_count() or 1, 4, len(items))), None

    def save(
        self,
        sess: object,
        save_path: str | bytes | os.PathLike[str],
        global_step: object = None,
        latest_filename: str | None = None,
        meta_graph_suffix: str = "meta",
        write_meta_graph: bool = True,
        write_state: bool = True,
        strip_default_attrs: bool = False,
        save_debug_info: bool = False,
    ) -> str | None:
        """Save a checkpoint; return its path (``save_path`` or ``save_path-<step>``), None if empty.

        Args:
            sess: the state holding the values (None when ``var_list`` holds Variables).
            save_path: the checkpoint prefix, e.g. ``"train/model.ckpt"``.
            global_step: appended to the name: an int, numpy/torch/jax scalar, Variable, or
                the name of a value of ``sess``.
            latest_filename: the state file's name in the save directory (default ``checkpoint``).
            meta_graph_suffix: suffix of the MetaGraph file (``.meta``).
            write_meta_graph: also write ``<checkpoint>.meta`` describing the variables.
            write_state: track the checkpoint, update the state file and apply retention.
            strip_default_attrs: passed to the MetaGraph writer.
            save_debug_info: accepted for compatibility (there is no graph debug info).

        Raises:
            ValueError: ``latest_filename`` with a directory or colliding with ``save_path``,
                a missing parent directory, nothing to save.
            RuntimeError: ``defer_build`` saver not built.
        """
        if not self._built:
            raise FailedPreconditionError("`build()` should be called before save if defer_build==True")
        if latest_filename is None:
            latest_filename = "checkpoint"
        if self._write_version != 2:
            for line in _V1_WARNING.split("\n"):
                logger.warning(line)
        if os.path.split(latest_filename)[0]:
            raise InvalidArgumentError("'latest_filename' must not contain path components")
        save_path = _as_str(save_path)
        if global_step is not None:
            flat = _state.flatten(sess) if isinstance(global_step, str) and sess is not None else {}
            step = self._step(global_step, flat)
            checkpoint_file = f"{save_path}-{step:08d}" if self._pad_step_number else f"{save_path}-{step}"
        else:
            checkpoint_file = save_path
            if os.path.basename(save_path) == latest_filename and not self._sharded:
                raise InvalidArgumentError(
                    f"'latest_filename' collides with 'save_path': '{latest_filename}' and '{save_path}'")
        save_path_parent = os.path.dirname(save_path)
        if save_path_parent and not os.path.isdir(save_path_parent):
            try:
                os.makedirs(save_path_parent, exist_ok=True)
            except OSError:
                raise InvalidArgumentError(f"Parent directory of {save_path} doesn't exist, can't save.") from None
        lock = self._lock_for_save(save_path_parent)
        try:
            with paused_gc():  # a save allocates a few objects per variable: no collections meanwhile
                return self._save_locked(sess, save_path, checkpoint_file, save_path_parent, latest_filename,
                                         meta_graph_suffix, write_meta_graph, write_state, strip_default_attrs)
        finally:
            if lock is not None:
                lock.release()

    def _save_locked(self, sess: object, save_path: str, checkpoint_file: str, save_path_parent: str,
                     latest_filename: str, meta_graph_suffix: str, write_meta_graph: bool, write_state: bool,
                     strip_default_attrs: bool) -> str | None:
        entries = [] if self._is_empty else self._resolve(sess)
        model_path: str | None = None
        if entries:
            try:
                model_path, entries, values = self._write_checkpoint(sess, checkpoint_file)
            except CheckpointError as e:
                if not os.path.isdir(save_path_parent or "."):
                    raise InvalidArgumentError(f"Parent directory of {save_path} doesn't exist, can't save.") from e
                raise
        elif not self._allow_empty and not self._is_empty:
            raise InvalidArgumentError("No variables to save")
        else:
            values = []
        if write_meta_graph:
            untrainable = _state.untrainable_paths(sess) if sess is not None and self._entries is None else set()
            try:
                self._write_meta(checkpoint_file, entries, values, meta_graph_suffix, strip_default_attrs,
                                 untrainable)
            except CheckpointError:
                if model_path is not None:  # (not recorded yet: nothing would ever remove it)
                    remove_checkpoint(model_path, self._write_version, meta_graph_suffix)
                raise
        if model_path is not None and write_state:
            self._retention.record(model_path, self._clock())
            update_checkpoint_state_internal(
                save_dir=save_path_parent,
                model_checkpoint_path=model_path,
                all_model_checkpoint_paths=self.last_checkpoints,
                latest_filename=latest_filename,
                save_relative_paths=self._save_relative_paths,
                sync=self._sync,
            )
            self._delete_old(meta_graph_suffix)
        return model_path

    def _claim(self, directory: str) -> None:
        """Hold the writer lock of ``directory`` until :meth:`close` (the CheckpointManager's mode)."""
        key = os.path.realpath(directory or ".")
        self._retake(key)
        if key not in self._locks:
            from tfckpt.cleanup import claim_directory

            self._locks[key] = claim_directory(key)
            self._cleaned.add(key)

    def _lock_for_save(self, directory: str) -> DirectoryLock | None:
        """Lock ``directory`` for one save (None if this Saver holds it already).

        The first save into a directory also removes the leftovers of saves that were
        killed there (temp files, data files without an index): see :func:`tfckpt.cleanup.cleanup`.
        """
        key = os.path.realpath(directory or ".")
        self._retake(key)
        if key in self._locks:
            return None
        if key not in self._cleaned:
            from tfckpt.cleanup import claim_directory

            lock = claim_directory(key)
            self._cleaned.add(key)
            return lock
        lock = DirectoryLock(key)
        lock.acquire()
        return lock

    def _retake(self, key: str) -> None:
        """Take again a lifetime lock that a fork dropped (a forked child's copy of this Saver must
        not save as if it held its parent's lock: AlreadyExistsError while the parent lives)."""
        lock = self._locks.get(key)
        if lock is not None and not lock.locked:
            del self._locks[key]
            lock.acquire()
            self._locks[key] = lock

    def close(self) -> None:
        """Release directory locks held for this Saver's lifetime (also done when it is collected)."""
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()

    def __enter__(self) -> Saver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delete_old(self, meta_graph_suffix: str) -> None:
        for ev in self._retention.evict():
            if ev.keep:
                continue
            try:
                remove_checkpoint(ev.path, self._write_version, meta_graph_suffix)
            except Exception as e:  # TensorFlow swallows deletion failures
                logger.warning("Ignoring: %s", e)

    def _write_meta(self, checkpoint_file: str, entries: list[Entry], values: list[object],
                    suffix: str, strip_default_attrs: bool, untrainable: set[str]) -> None:
        try:
            from tfckpt import meta_graph

            spec_cls = meta_graph.VariableSpec
            build = meta_graph.saver_meta_graph
            is_trainable = meta_graph.is_trainable
        except (ImportError, AttributeError):
            global _warned_no_meta
            if not _warned_no_meta:
                logger.warning("tfckpt.meta_graph is not available: no .meta files are written (first: %s)",
                               checkpoint_file)
                _warned_no_meta = True
            return
        fields = getattr(spec_cls, "__dataclass_fields__", {})
        raw: list[dict[str, Any]] = []
        for e, v in zip(entries, values):
            dtype, shape = _state.leaf_spec(v)
            if dtype is None:
                dtype, arr = to_array(v, e.key)
                shape = tuple(arr.shape)
            kw: dict[str, Any] = {"name": e.key, "dtype": dtype, "shape": tuple(shape or ()),
                                  "trainable": is_trainable(e.key, v, dtype)
                                  and not (isinstance(e.target, str) and e.target in untrainable),
                                  "slice_spec": e.slice_info.spec if e.slice_info is not None else ""}
            op_name = getattr(v, "op_name", None) if isinstance(v, Variable) else None
            if "var_name" in fields and op_name is not None and op_name != e.key:
                kw["var_name"] = op_name
            raw.append(kw)
        options = (self._sharded, self.saver_def.max_to_keep, float(self.saver_def.keep_checkpoint_every_n_hours),
                   self._write_version, self._filename, strip_default_attrs)
        cache_key = (tuple([tuple(kw.values()) for kw in raw]), options)  # names, DTypes, int tuples, flags
        if self._meta_cache is not None and self._meta_cache[0] == cache_key:
            data = self._meta_cache[1]
        else:
            specs = [spec_cls(**kw) for kw in raw]
            data = build(
                specs,
                sharded=self._sharded,
                max_to_keep=self.saver_def.max_to_keep,
                keep_checkpoint_every_n_hours=float(self.saver_def.keep_checkpoint_every_n_hours),
                version=self._write_version,
                filename=self._filename,
                strip_default_attrs=strip_default_attrs,
            )
            self._meta_cache = (cache_key, data)
        write_bytes_atomic(meta_graph_filename(checkpoint_file, suffix), data, sync=self._sync)

    # -- restoring ---------------------------------------------------------

    def restore(self, sess: object, save_path: str | bytes | os.PathLike[str] | None) -> Any:
        """Restore the saved values into ``sess`` / the Variables; return the restored state.

        Mutable values (numpy arrays, torch tensors, Variables) are written in place; with an
        immutable state (a JAX pytree) use the returned one. Writeable contiguous numpy arrays,
        CPU torch tensors and Variables of the stored dtype and shape are read straight into
        (no intermediate copy); every shape is checked before anything is written, but a
        checksum error found while reading leaves the state partly restored (the
        ``DataLossError`` says so). With ``sess=None`` the result is
        a dict name -> numpy array (a ``str`` target's name, else the checkpoint key); with
        ``sess=None`` and ``var_list=None`` it holds every tensor of the checkpoint.

        Raises:
            ValueError: ``save_path`` is None or not a checkpoint.
            NotFoundError: a key is missing (``Key w not found in checkpoint`` in the message).
            InvalidArgumentError: dtype or shape mismatch (TensorFlow's messages).
        """
        if self._is_empty:
            return None
        if save_path is None:
            raise InvalidArgumentError("Can't load save_path when it is None.")
        save_path = _as_str(save_path)
        if not checkpoint_exists(save_path):
            raise InvalidArgumentError("The passed save_path is not a valid checkpoint: " + save_path)
        logger.info("Restoring parameters from %s", save_path)
        with CheckpointReader(save_path) as reader:
            entries = list(self._resolve(sess))
            if self._entries is None and sess is None:  # everything, as a dict
                entries = [Entry(n, n) for n in reader.get_variable_to_shape_map() if n != OBJECT_GRAPH_KEY]
            if self._entries is None and sess is not None:
                have = {e.key for e in entries}
                prefixes = _state.expandable_prefixes(sess)
                if prefixes:
                    for name in reader.get_variable_to_shape_map():
                        if name not in have and name not in _NOT_STATE and any(
                            not p or name.startswith(p + "/") for p in prefixes
                        ):
                            entries.append(Entry(name, name, None, expand=True))
            if not entries:
                if self._allow_empty:
                    return sess
                raise InvalidArgumentError("No variables to save")
            try:
                with paused_gc():
                    return restore_entries(reader, entries, sess, reshape=self._reshape,
                                           sequential=self._restore_sequentially)
            except TensorNotFoundError as e:
                raise TensorNotFoundError(_KEY_MISSING + e.message, key=e.key, path=save_path) from None
            except NotFoundError:
                raise
            except InvalidArgumentError as e:
                where = f"\n\t [[restoring {e.key} from checkpoint {save_path}]]" if e.key and e.key not in e.message \
                    else ""
                raise InvalidArgumentError(_GRAPH_MISMATCH + e.message + where, key=e.key, path=save_path) from None

    def __repr__(self) -> str:
        n = "state" if self._entries is None else len(self._entries)
        return f"<tfckpt.Saver variables={n} max_to_keep={self.saver_def.max_to_keep} version=V{self._write_version}>"
