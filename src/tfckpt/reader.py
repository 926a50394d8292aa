"""Reading checkpoints: TensorFlow's ``CheckpointReader`` and ``checkpoint_utils`` functions.

Works on every format TensorFlow has written: V2 bundles (sharded or not,
partitioned variables, snappy index blocks, TF2 object-based keys) and legacy
V1 tables (single file or ``-?????-of-N`` shards). Opening reads only the
index; each ``get_tensor`` reads and CRC-checks one tensor.

Example:
    >>> import tempfile, os, numpy as np, tfckpt
    >>> p = tfckpt.write({"w": np.arange(6.0).reshape(2, 3), "step": np.int64(7)},
    ...                  os.path.join(tempfile.mkdtemp(), "ckpt"))
    >>> r = tfckpt.load_checkpoint(p)
    >>> r.get_variable_to_shape_map()
    {'step': [], 'w': [2, 3]}
    >>> r.get_variable_to_dtype_map()["w"].name
    'float64'
    >>> int(r.get_tensor("step"))
    7
    >>> tfckpt.list_variables(p)
    [('step', []), ('w', [2, 3])]
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from tfckpt._format.bundle_reader import BundleReader
from tfckpt._format.slices import TensorSlice
from tfckpt._format.v1 import V1Reader, v1_files
from tfckpt._gcpause import paused_gc
from tfckpt._paths import PathLike, as_path
from tfckpt._proto import checkpoint_pb2, tensor_pb2
from tfckpt._recovery import recover_prefix
from tfckpt.checkpoint_management import latest_checkpoint, named_checkpoint
from tfckpt.dtypes import DType
from tfckpt.errors import (
    CheckpointNotFoundError,
    DataLossError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
)

__all__ = [
    "OBJECT_GRAPH_KEY",
    "CheckpointReader",
    "NewCheckpointReader",
    "list_variables",
    "load_checkpoint",
    "load_variable",
    "read",
]

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_TEMP_SUFFIX = re.compile(r"\.tempstate\d+$")


def _key(name: object, prefix: str) -> str:
    """A tensor name as the index holds it: ``str``, or ``bytes`` (as TensorFlow's reader takes,
    decoded as the reader decodes keys)."""
    if isinstance(name, str):
        return name
    if isinstance(name, bytes):
        return name.decode("utf-8", "surrogateescape")
    raise InvalidTypeError(f"a tensor name must be a str (or bytes), got {type(name).__name__}: {name!r:.80} "
                           f"(reading checkpoint {prefix})", path=prefix)


def _explain_bad_prefix(prefix: str) -> None:
    """Raise a helpful error when ``prefix`` is a file of a checkpoint rather than its prefix."""
    base = os.path.basename(prefix)
    if base == "checkpoint" and os.path.isfile(prefix):
        target = latest_checkpoint(os.path.dirname(prefix) or ".")
        hint = f"; it names {target!r}" if target else ""
        raise InvalidArgumentError(
            f"{prefix} is a checkpoint state file, not a checkpoint: pass its directory "
            f"{os.path.dirname(prefix) or '.'!r} or a checkpoint prefix{hint}",
            path=prefix,
        )
    if _DATA_SUFFIX.search(prefix) and os.path.isfile(prefix):
        p = _DATA_SUFFIX.sub("", prefix)
        raise InvalidArgumentError(
            f"{prefix} is a data file of the checkpoint {p!r}; pass the prefix {p!r}", path=prefix
        )
    if prefix.endswith(".index") and os.path.isfile(prefix):
        p = prefix[: -len(".index")]
        raise InvalidArgumentError(f"{prefix} is the index of the checkpoint {p!r}; pass the prefix {p!r}",
                                   path=prefix)
    if prefix.endswith(".meta") and os.path.isfile(prefix):
        p = prefix[: -len(".meta")]
        raise InvalidArgumentError(
            f"{prefix} is a MetaGraph file, not a checkpoint; pass the checkpoint prefix (e.g. {p!r})",
            path=prefix,
        )
    if _TEMP_SUFFIX.search(prefix):
        raise InvalidArgumentError(f"{prefix} is a temporary file left by an interrupted save", path=prefix)


class CheckpointReader:
    """A checkpoint opened for reading (TensorFlow's ``CheckpointReader``), V1 or V2.

    Args:
        prefix: the checkpoint prefix (``dir/model.ckpt-7``) or V1 file pattern.
        verify_crc: check every CRC-32C on read (default). Turning it off trades
            safety for a little speed.
    """

    def __init__(self, prefix: PathLike, *, verify_crc: bool = True) -> None:
        prefix = as_path(prefix, "prefix")
        self.prefix = prefix
        self._impl: BundleReader | V1Reader
        if os.path.isfile(prefix + ".index") or recover_prefix(prefix):  # (a killed re-save's, recovered)
            self._impl = BundleReader(prefix, verify_crc=verify_crc)
            self.format = "V2"
        else:
            _explain_bad_prefix(prefix)
            files = v1_files(prefix)
            if not files:
                if os.path.isdir(prefix):
                    raise NotFoundError(
                        f"Unsuccessful TensorSliceReader constructor: Failed to find any matching files for "
                        f"{prefix} ({prefix} is a directory without a readable 'checkpoint' state file; pass a "
                        f"checkpoint prefix)",
                        path=prefix,
                    )
                v2 = sorted(glob.glob(prefix + ".index")) if any(c in prefix for c in "*?[") else []
                hint = f" (the pattern matches V2 checkpoints: pass one prefix, such as {v2[0][:-6]})" if v2 else ""
                raise NotFoundError(
                    f"Unsuccessful TensorSliceReader constructor: Failed to find any matching files for {prefix}"
                    f"{hint}",
                    path=prefix,
                )
            try:
                self._impl = V1Reader(prefix, verify_crc=verify_crc)
            except DataLossError as e:
                raise DataLossError(
                    f"Unable to open table file {e.path or prefix}: {e.message}: perhaps your file is in a "
                    f"different file format and you need to use a different restore operator?",
                    path=e.path or prefix, key=e.key, offset=e.offset,
                ) from None
            self.format = "V1"
        self._names: list[str] | None = None

    # -- TensorFlow's API --------------------------------------------------

    def _all_names(self) -> list[str]:
        if self._names is None:
            self._names = self._impl.names()
        return self._names

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        """Every tensor name -> its (full) shape as a list of ints."""
        return {n: list(self._impl.shape(n)) for n in self._all_names()}

    def get_variable_to_dtype_map(self) -> dict[str, DType]:
        """Every tensor name -> its :class:`tfckpt.DType`."""
        return {n: self._impl.dtype(n) for n in self._all_names()}

    def has_tensor(self, name: str) -> bool:
        return self._impl.has(_key(name, self.prefix))

    def get_tensor(self, name: str, *, copy: bool = True) -> Any:
        """The tensor's value as numpy: a numpy scalar for rank 0, ``bytes`` for a scalar string.

        ``copy=False`` returns a read-only zero-copy view of the data file where possible.

        Raises:
            TensorNotFoundError: ``Key <name> not found in checkpoint``.
            DataLossError: checksum mismatch or truncated data.
        """
        name = _key(name, self.prefix)
        if isinstance(self._impl, BundleReader):
            arr = self._impl.read(name, copy=copy)
        else:
            arr = self._impl.read(name)
        if arr.ndim == 0:
            return arr[()]
        return arr

    def debug_string(self) -> bytes:
        """One line per entry, ``b"<key> (<DT_NAME>) [d0,d1]\\n"``, exactly as TensorFlow prints it.

        As in TensorFlow, a V2 bundle lists its index keys in order: a partitioned
        tensor appears as its slice entries (raw slice keys, slice shapes), not as
        one full entry; a V1 checkpoint appends ``", N slices"`` to partitioned tensors.
        """
        lines: list[bytes] = []
        if isinstance(self._impl, BundleReader):
            for key, e in self._impl.raw_entries():
                if e.slices:
                    continue
                dims = ",".join(str(d) for d in e.shape)
                lines.append(key + f" ({_dt_name(e.dtype)}) [{dims}]\n".encode())
            return b"".join(lines)
        for n in self._all_names():
            dims = ",".join(str(d) for d in self._impl.shape(n))
            line = f"{n} ({_dt_name(self._impl.dtype(n).as_datatype_enum)}) [{dims}]"
            if self._impl.slices(n):
                line += f", {len(self._impl.slices(n))} slices"
            lines.append((line + "\n").encode("utf-8", "surrogateescape"))
        return b"".join(lines)

    # -- beyond TensorFlow ---------------------------------------------------

    def read_into(self, name: str, out: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Read ``name`` straight into ``out`` (same dtype and shape, C-contiguous): no extra copy."""
        name = _key(name, self.prefix)
        if isinstance(self._impl, BundleReader):
            return self._impl.read(name, out=out)
        value = self._impl.read(name)
        if not (isinstance(out, np.ndarray) and out.shape == value.shape and out.dtype == value.dtype
                and out.flags.writeable):
            into = (f"an array of {out.dtype}{list(out.shape)}" if isinstance(out, np.ndarray)
                    else f"a {type(out).__name__}")
            raise InvalidArgumentError(
                f"cannot read {name!r} ({value.dtype}{list(value.shape)}) of checkpoint {self.prefix} into {into} "
                "(must be a writeable numpy array of that dtype and shape)", key=name, path=self.prefix)
        out[...] = value
        return out

    def read_many(self, names: Iterable[str] | None = None, *,
                  out: Mapping[str, np.ndarray[Any, Any]] | None = None,
                  copy: bool = True) -> dict[str, np.ndarray[Any, Any]]:
        """Read many tensors at once: ``names`` (default: the keys of ``out``, else every tensor),
        each into ``out[name]`` when ``out`` has it (same dtype and shape, C-contiguous) or into a
        new array. Scalars come back as 0-d arrays.

        Faster than one :meth:`get_tensor` per name: small tensors stored next to each other
        are fetched with one system call per run, straight into their destinations, and every
        CRC is still checked.

        ``copy=False`` (not with ``out``) returns read-only arrays backed by a memory map of
        the data files instead: nothing is copied, and the pages are read when first touched
        (the CRC check, unless the reader was opened with ``verify_crc=False``, touches them
        all once). They stay valid after the reader is closed. String tensors, partitioned
        tensors, big-endian bundles and V1 checkpoints are still read into new arrays.

        Example:
            >>> import tempfile, os, numpy as np, tfckpt
            >>> p = tfckpt.write({"a": np.ones(3), "b": np.arange(2)}, os.path.join(tempfile.mkdtemp(), "c"))
            >>> buf = np.zeros(3)
            >>> with tfckpt.CheckpointReader(p) as r:
            ...     got = r.read_many(["a", "b"], out={"a": buf})
            >>> got["a"] is buf, buf.tolist(), got["b"].tolist()
            (True, [1.0, 1.0, 1.0], [0, 1])
        """
        if isinstance(names, (str, bytes)):
            raise InvalidTypeError(f"read_many of checkpoint {self.prefix}: `names` is one name ({names!r:.80}); "
                                   "pass a list of names, or use get_tensor", path=self.prefix)
        if not copy and out is not None:
            raise InvalidArgumentError(f"read_many of checkpoint {self.prefix}: copy=False returns views of the "
                                       "files; it cannot fill `out`", path=self.prefix)
        if names is not None and not isinstance(names, (list, tuple)):
            names = list(names)
        if names is not None and not all(type(n) is str for n in names):
            names = [_key(n, self.prefix) for n in names]  # bytes, as get_tensor takes them
        if isinstance(self._impl, BundleReader):
            return self._impl.read_many(names, out, copy=copy)
        wanted = list(names) if names is not None else list(out) if out is not None else self._all_names()
        result: dict[str, np.ndarray[Any, Any]] = {}
        for n in wanted:
            dest = out.get(n) if out is not None else None
            result[n] = self.read_into(n, dest) if dest is not None else self._impl.read(n)
        return result

    def get_slices(self, name: str) -> list[str]:
        """The stored slices of a partitioned tensor, as slice strings (empty for whole tensors)."""
        return [s.spec() for s in self._impl.slices(_key(name, self.prefix))]

    def get_stored_slice(self, name: str, slice_spec: str) -> np.ndarray[Any, Any]:
        """One stored slice of a partitioned tensor, exactly as saved."""
        return self._impl.read_stored_slice(_key(name, self.prefix), TensorSlice.parse(slice_spec))

    def get_slice(self, name: str, slice_spec: str) -> np.ndarray[Any, Any]:
        """Any rectangular region (``"0,2:-"``) of a tensor, read from the slices that overlap it."""
        name, sl = _key(name, self.prefix), TensorSlice.parse(slice_spec)
        if isinstance(self._impl, BundleReader):
            return self._impl.read_slice(name, sl)
        return np.array(self._impl.read(name)[sl.index(self._impl.shape(name))])

    @property
    def is_object_based(self) -> bool:
        """True for a TF2 ``tf.train.Checkpoint`` (it stores an object graph)."""
        return self.has_tensor(OBJECT_GRAPH_KEY)

    def object_graph(self) -> checkpoint_pb2.TrackableObjectGraph | None:
        """The parsed ``TrackableObjectGraph`` of a TF2 checkpoint, or None."""
        if not self.is_object_based:
            return None
        raw = self.get_tensor(OBJECT_GRAPH_KEY)
        if not isinstance(raw, bytes):
            raise DataLossError(f"{self.prefix}: {OBJECT_GRAPH_KEY} is not a scalar string", path=self.prefix)
        try:
            graph: checkpoint_pb2.TrackableObjectGraph = checkpoint_pb2.TrackableObjectGraph.FromString(raw)
        except DecodeError:
            raise DataLossError(f"{self.prefix}: corrupt object graph", path=self.prefix) from None
        return graph

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tfckpt.CheckpointReader {self.format} {self.prefix!r}>"


def _dt_name(enum: int) -> str:
    try:
        return str(tensor_pb2.DataType.Name(enum))
    except ValueError:
        return str(enum)


def NewCheckpointReader(filepattern: PathLike) -> CheckpointReader:
    """TensorFlow's ``tf.compat.v1.train.NewCheckpointReader``."""
    return CheckpointReader(filepattern)


def resolve_checkpoint(ckpt_dir_or_file: PathLike) -> str:
    """The checkpoint prefix a path names: a directory's latest checkpoint, else the path itself."""
    path = as_path(ckpt_dir_or_file, "ckpt_dir_or_file")
    if os.path.isdir(path):
        latest, named = named_checkpoint(path)  # (why in the error, not in a log line before it)
        if latest is None:
            why = f" (its 'checkpoint' file names {named}, whose files are missing)" if named else ""
            raise CheckpointNotFoundError(
                f"Couldn't find 'checkpoint' file or checkpoints in given directory {path}{why}", path=path)
        return latest
    return path


def load_checkpoint(ckpt_dir_or_file: PathLike) -> CheckpointReader:
    """A reader for a checkpoint prefix, or for the latest checkpoint of a directory.

    Raises:
        CheckpointNotFoundError: a directory without a checkpoint (a ``ValueError`` and a
            ``NotFoundError``: TensorFlow raises ``ValueError`` there).
        NotFoundError: no checkpoint at the prefix.
    """
    return CheckpointReader(resolve_checkpoint(ckpt_dir_or_file))


def load_variable(ckpt_dir_or_file: PathLike, name: str) -> Any:
    """One tensor's value; a trailing ``":0"`` on ``name`` is ignored."""
    if name.endswith(":0"):
        name = name[:-2]
    with load_checkpoint(ckpt_dir_or_file) as r:
        return r.get_tensor(name)


def list_variables(ckpt_dir_or_file: PathLike) -> list[tuple[str, list[int]]]:
    """Sorted ``(name, shape)`` pairs of every tensor in the checkpoint."""
    with load_checkpoint(ckpt_dir_or_file) as r:
        return sorted(r.get_variable_to_shape_map().items())


def read(prefix: PathLike, names: list[str] | None = None, *, verify_crc: bool = True,
         copy: bool = True) -> dict[str, Any]:
    """Read tensors (all, or ``names``) into a dict of numpy arrays (0-d arrays for scalars).

    ``copy=False`` maps the data files instead of reading them: read-only arrays, no copy
    (see :meth:`CheckpointReader.read_many`); with ``verify_crc=False`` too, opening a model
    for inference reads nothing but the index until the weights are used.
    """
    with CheckpointReader(resolve_checkpoint(prefix), verify_crc=verify_crc) as r, paused_gc():
        return r.read_many(names, copy=copy)


