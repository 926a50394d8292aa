"""The libraries measured side by side, behind one small interface.

Each peer converts a workload to its native in-memory form in :meth:`Peer.prepare`
(not timed: "the same arrays" as each library holds them), then is timed on
``save``, ``restore`` (into new arrays), ``restore_into`` (into the prepared,
existing arrays, where the library can) and ``read_one`` (open a checkpoint and
read one tensor). A peer whose library is not importable reports why and is
skipped.

Example:
    >>> [p.name for p in all_peers()][:3]
    ['raw', 'tfckpt', 'tfckpt-sync']
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from benchmarks.workloads import Workload

__all__ = ["Peer", "all_peers", "as_numpy"]


def _strings_to_blob(a: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A string tensor as (uint8 bytes, int64 lengths): how byte-only formats store strings."""
    flat = list(a.reshape(-1))
    blob = np.frombuffer(b"".join(flat), dtype=np.uint8).copy()
    return blob, np.array([len(e) for e in flat], dtype=np.int64)


class Peer:
    """One library (or one way of calling it)."""

    name = ""
    label = ""
    module = ""  # importable module the peer needs ("" = always available)
    imports: tuple[str, ...] = ()  # modules its operations import (loaded before a peak-RSS baseline is taken)
    max_tensors = 10**9  # workloads with more tensors are skipped (peer too slow to set up)
    fsync = False

    def unavailable(self) -> str | None:
        """Why the peer cannot run here, or None."""
        if self.module and importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed"
        return None

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        """The workload in this library's native form, plus notes on what had to be converted."""
        return w.arrays, []

    def save(self, state: Any, path: str) -> None:
        raise NotImplementedError

    def restore(self, path: str) -> Any:
        raise NotImplementedError

    def restore_into(self, path: str, state: Any) -> Any:
        """Restore into the existing arrays of ``state``; None means the peer cannot."""
        return None

    def read_one(self, path: str, name: str) -> Any:
        raise NotImplementedError


# -- the floor and tfckpt ----------------------------------------------------


class RawFloor(Peer):
    """Plain ``file.write`` of each tensor's memoryview, ``readinto`` preallocated arrays: no index, no CRC."""

    name = "raw"
    label = "raw floor (file.write / readinto)"

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        views: list[memoryview] = []
        self.layout: dict[str, tuple[int, np.dtype[Any], tuple[int, ...], int]] = {}
        off = 0
        for name, a in w.arrays.items():
            if a.dtype == object:
                blob = bytearray(b"".join(a.reshape(-1)))
                mv = memoryview(blob)
                self.layout[name] = (off, np.dtype(np.uint8), (len(blob),), len(blob))
            else:
                mv = a.reshape(-1).view(np.uint8).data
                self.layout[name] = (off, a.dtype, a.shape, a.nbytes)
            views.append(mv)
            off += mv.nbytes
        return views, ["strings written as their concatenated bytes"] if any(
            a.dtype == object for a in w.arrays.values()) else []

    def save(self, state: Any, path: str) -> None:
        with open(path, "wb", buffering=0) as f:
            for mv in state:
                done = f.write(mv)
                while done < len(mv):  # one call writes at most 0x7ffff000 bytes on Linux
                    done += f.write(mv[done:])

    @staticmethod
    def _fill(f: Any, mv: memoryview) -> None:
        done = f.readinto(mv)
        while done < len(mv):
            n = f.readinto(mv[done:])
            if not n:
                raise EOFError("raw floor file is short")
            done += n

    def restore(self, path: str) -> Any:
        out = {}
        with open(path, "rb", buffering=0) as f:
            for name, (_off, dt, shape, _n) in self.layout.items():
                a = np.empty(shape, dt)
                self._fill(f, a.reshape(-1).view(np.uint8).data)
                out[name] = a
        return out

    def restore_into(self, path: str, state: Any) -> Any:
        with open(path, "rb", buffering=0) as f:
            for mv in state:
                self._fill(f, mv)  # the workload's own buffers (writeable) or the string blobs' copies
        return state

    def read_one(self, path: str, name: str) -> Any:
        off, dt, shape, n = self.layout[name]
        a = np.empty(shape, dt)
        mv = a.reshape(-1).view(np.uint8).data
        fd = os.open(path, os.O_RDONLY)
        try:
            done = 0
            while done < n:
                got = os.preadv(fd, [mv[done:]], off + done)
                if not got:
                    raise EOFError("raw floor file is short")
                done += got
        finally:
            os.close(fd)
        return a


class Tfckpt(Peer):
    """``tfckpt.write`` / ``tfckpt.read`` / ``CheckpointReader.read_many(out=...)`` / ``get_tensor``."""

    name = "tfckpt"
    label = "tfckpt (sync=False)"
    module = "tfckpt"
    imports = ("tfckpt",)
    sync = False

    def save(self, state: Any, path: str) -> None:
        import tfckpt

        tfckpt.write(state, path, sync=self.sync)

    def restore(self, path: str) -> Any:
        import tfckpt

        return tfckpt.read(path)

    def restore_into(self, path: str, state: Any) -> Any:
        import tfckpt

        with tfckpt.CheckpointReader(path) as r:
            r.read_many(out=state)
        return state

    def read_one(self, path: str, name: str) -> Any:
        import tfckpt

        with tfckpt.CheckpointReader(path) as r:
            return r.get_tensor(name)


class TfckptSync(Tfckpt):
    name = "tfckpt-sync"
    label = "tfckpt (sync=True: fsync data, index, dir)"
    sync = True
    fsync = True


class TfckptMmap(Tfckpt):
    """``tfckpt.read(copy=False, verify_crc=False)``: arrays backed by a memory map of the data
    files, as safetensors' torch ``load_file`` returns (the pages are read when touched)."""

    name = "tfckpt-mmap"
    label = "tfckpt (copy=False, verify_crc=False: memory-mapped)"

    def restore(self, path: str) -> Any:
        import tfckpt

        return tfckpt.read(path, copy=False, verify_crc=False)

    def restore_into(self, path: str, state: Any) -> Any:
        return None

    def read_one(self, path: str, name: str) -> Any:
        import tfckpt

        with tfckpt.CheckpointReader(path, verify_crc=False) as r:
            return r.get_tensor(name, copy=False)


class _SaverCalls(Peer):
    """A TF1-style ``Saver`` (``self.saver``, made by ``prepare``) over the state: save without
    .meta and state file, restore into the state's own variables or arrays."""

    saver: Any

    def save(self, state: Any, path: str) -> None:
        self.saver.save(None, path, write_meta_graph=False, write_state=False)

    def restore(self, path: str) -> Any:
        raise NotImplementedError

    def restore_into(self, path: str, state: Any) -> Any:
        self.saver.restore(None, path)
        return state


class TfckptSaver(_SaverCalls):
    """``tfckpt.Saver`` over the arrays, called as the TF1 Saver peer is."""

    name = "tfckpt-saver"
    label = "tfckpt.Saver (sync=False; save / restore into the arrays)"
    module = "tfckpt"
    imports = ("tfckpt",)

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        import tfckpt

        self.saver = tfckpt.Saver(w.arrays, sync=False)
        return w.arrays, []

    read_one = Tfckpt.read_one


class TfckptTorch(_SaverCalls):
    """``tfckpt.Saver`` over the workload as torch tensors (the torch peer's state), called as
    the TF1 Saver peer is: what a PyTorch user of tfckpt does."""

    name = "tfckpt-torch"
    label = "tfckpt.Saver over torch tensors (sync=False; save / restore into the tensors)"
    module = "torch"
    imports = ("tfckpt", "torch")

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        import tfckpt

        state, notes = Torch().prepare(w)
        self.saver = tfckpt.Saver(state, sync=False)
        return state, [n for n in notes if not n.startswith("read one")]

    read_one = Tfckpt.read_one


# -- TensorFlow --------------------------------------------------------------


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


class TfSaveV2(Peer):
    """``tf.raw_ops.SaveV2`` / ``RestoreV2`` on eager tensors (read one: ``RestoreV2`` of one name)."""

    name = "tf-savev2"
    label = "TensorFlow raw_ops.SaveV2 / RestoreV2"
    module = "tensorflow"

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        tf = _tf()
        names = sorted(w.arrays)
        tensors = [tf.constant(w.arrays[n]) for n in names]
        self.dtypes = {n: t.dtype for n, t in zip(names, tensors)}
        return (names, tensors), ["RestoreV2 returns eager tensors (no .numpy() call timed)"]

    def save(self, state: Any, path: str) -> None:
        tf = _tf()
        names, tensors = state
        tf.raw_ops.SaveV2(prefix=path, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)

    def restore(self, path: str) -> Any:
        tf = _tf()
        names = list(self.dtypes)
        return tf.raw_ops.RestoreV2(prefix=path, tensor_names=names, shape_and_slices=[""] * len(names),
                                    dtypes=[self.dtypes[n] for n in names])

    def read_one(self, path: str, name: str) -> Any:
        tf = _tf()
        return tf.raw_ops.RestoreV2(prefix=path, tensor_names=[name], shape_and_slices=[""],
                                    dtypes=[self.dtypes[name]])[0]


class TfSaver(_SaverCalls):
    """TF1 ``tf.compat.v1.train.Saver`` over ``tf.Variable``s (eager): save, restore into the variables."""

    name = "tf-saver"
    label = "TensorFlow TF1 Saver (save / restore into variables)"
    module = "tensorflow"
    max_tensors = 25_000

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        tf = _tf()
        variables = {n: tf.Variable(a, name=f"v{i}") for i, (n, a) in enumerate(w.arrays.items())}
        self.saver = tf.compat.v1.train.Saver(var_list=variables)
        return variables, ["read one: tf.train.load_checkpoint(...).get_tensor"]

    def read_one(self, path: str, name: str) -> Any:
        tf = _tf()
        return tf.train.load_checkpoint(path).get_tensor(name)


# -- safetensors, torch, numpy -----------------------------------------------


def _blob_strings(w: Workload) -> tuple[dict[str, np.ndarray[Any, Any]], list[str]]:
    out: dict[str, np.ndarray[Any, Any]] = {}
    notes: list[str] = []
    for n, a in w.arrays.items():
        if a.dtype == object:
            out[f"{n}.bytes"], out[f"{n}.lengths"] = _strings_to_blob(a)
            if not notes:
                notes.append("no string dtype: strings stored as uint8 bytes + int64 lengths (converted untimed)")
        else:
            out[n] = a
    return out, notes


class SafetensorsNumpy(Peer):
    """``safetensors.numpy.save_file`` / ``load_file`` / ``safe_open(framework="np")``."""

    name = "safetensors"
    label = "safetensors (numpy save_file / load_file / safe_open)"
    module = "safetensors"
    imports = ("safetensors", "safetensors.numpy")

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        return _blob_strings(w)

    def save(self, state: Any, path: str) -> None:
        from safetensors.numpy import save_file

        save_file(state, path)

    def restore(self, path: str) -> Any:
        from safetensors.numpy import load_file

        return load_file(path)

    def read_one(self, path: str, name: str) -> Any:
        from safetensors import safe_open

        with safe_open(path, framework="np") as f:
            return f.get_tensor(name)


def _to_torch(a: np.ndarray[Any, Any]) -> Any:
    import torch

    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


class SafetensorsTorch(Peer):
    """``safetensors.torch.save_file`` / ``load_file`` / ``safe_open(framework="pt")`` on torch tensors."""

    name = "safetensors-pt"
    label = "safetensors (torch save_file / load_file / safe_open)"
    module = "torch"
    imports = ("torch", "safetensors", "safetensors.torch")

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("safetensors") is None:
            return "safetensors is not installed"
        return super().unavailable()

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        arrays, notes = _blob_strings(w)
        return {n: _to_torch(a) for n, a in arrays.items()}, notes

    def save(self, state: Any, path: str) -> None:
        from safetensors.torch import save_file

        save_file(state, path)

    def restore(self, path: str) -> Any:
        from safetensors.torch import load_file

        return load_file(path)

    def read_one(self, path: str, name: str) -> Any:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return f.get_tensor(name)


class Torch(Peer):
    """``torch.save`` / ``torch.load(weights_only=True)``; in place: ``load(mmap=True)`` + ``copy_``."""

    name = "torch"
    label = "torch.save / torch.load"
    module = "torch"
    imports = ("torch",)

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        arrays, notes = _blob_strings(w)
        return {n: _to_torch(a) for n, a in arrays.items()}, [*notes, "read one: torch.load(mmap=True)[name]"]

    def save(self, state: Any, path: str) -> None:
        import torch

        torch.save(state, path)

    def restore(self, path: str) -> Any:
        import torch

        return torch.load(path, weights_only=True)

    def restore_into(self, path: str, state: Any) -> Any:
        import torch

        loaded = torch.load(path, mmap=True, weights_only=True)
        with torch.no_grad():
            for n, t in state.items():
                t.copy_(loaded[n])
        return state

    def read_one(self, path: str, name: str) -> Any:
        import torch

        return torch.load(path, mmap=True, weights_only=True)[name]


class NumpySavez(Peer):
    """``np.savez`` / ``np.load`` (zip of .npy files, uncompressed)."""

    name = "npz"
    label = "numpy savez / load"

    def prepare(self, w: Workload) -> tuple[Any, list[str]]:
        out: dict[str, np.ndarray[Any, Any]] = {}
        notes: list[str] = []
        for n, a in w.arrays.items():
            if a.dtype == object:
                out[n] = np.array(list(a.reshape(-1)), dtype=np.bytes_).reshape(a.shape)
                if "strings as fixed-width S" not in " ".join(notes):
                    notes.append("strings as fixed-width S arrays (padded)")
            elif a.dtype.name == "bfloat16":
                out[n] = a.view(np.uint16)
                if "bfloat16" not in " ".join(notes):
                    notes.append("bfloat16 stored as a uint16 view")
            else:
                out[n] = a
        return out, notes

    def save(self, state: Any, path: str) -> None:
        np.savez(path, **state)

    def _file(self, path: str) -> str:
        return path if path.endswith(".npz") else path + ".npz"

    def restore(self, path: str) -> Any:
        with np.load(self._file(path)) as z:
            return {k: z[k] for k in z.files}

    def read_one(self, path: str, name: str) -> Any:
        with np.load(self._file(path)) as z:
            return z[name]


def all_peers() -> list[Peer]:
    """Every peer, the floor and tfckpt first."""
    return [RawFloor(), Tfckpt(), TfckptSync(), TfckptSaver(), TfckptTorch(), TfckptMmap(), TfSaveV2(), TfSaver(),
            SafetensorsNumpy(), SafetensorsTorch(), Torch(), NumpySavez()]


def as_numpy(value: Any) -> np.ndarray[Any, Any]:
    """Any peer's tensor as a numpy array (bfloat16 torch tensors via their bits)."""
    mod = type(value).__module__
    if mod.startswith("torch"):
        import torch

        if value.dtype == torch.bfloat16:
            value = value.view(torch.int16)
        return np.asarray(value.detach().cpu().numpy())
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)
