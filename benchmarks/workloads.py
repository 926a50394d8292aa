"""Benchmark workloads: deterministic model states generated in memory.

Every workload is a ``name -> numpy array`` mapping in tfckpt's own value
conventions (bfloat16 as ``ml_dtypes.bfloat16``, strings as object arrays of
``bytes``). Peers convert it to their native form before anything is timed.

Two sizes exist: ``full`` (the published numbers) and ``quick`` (a few MB, for
the test-suite run that checks the harness, not the timings).

Example:
    >>> w = build("mixed", quick=True)
    >>> w.name, w.target in w.arrays, w.nbytes > 0
    ('mixed', True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["NAMES", "Workload", "build", "describe"]

Arrays = dict[str, np.ndarray[Any, Any]]
_TILE = 16 << 20


@dataclass
class Workload:
    """A generated state plus the tensor that "read one" fetches."""

    name: str
    arrays: Arrays
    target: str
    description: str
    repeats: int
    notes: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(payload_size(a) for a in self.arrays.values())

    @property
    def count(self) -> int:
        return len(self.arrays)


def payload_size(a: np.ndarray[Any, Any]) -> int:
    """Bytes of a tensor's payload (strings: total length of the elements)."""
    if a.dtype == object:
        return sum(len(e) for e in a.reshape(-1))
    return int(a.nbytes)


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray[Any, Any]:
    """Fast random payload of any fixed-size dtype (random bytes; NaN patterns are fine for I/O)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if n * dt.itemsize > _TILE:  # big tensors: a random 16 MiB block repeated (nothing here compresses)
        block = _random(rng, (_TILE // dt.itemsize,), dt)
        out = np.empty(n, dtype=dt)
        for start in range(0, n, block.size):
            stop = min(n, start + block.size)
            out[start:stop] = block[: stop - start]
        return out.reshape(shape)
    if dt == np.float32:
        f32: np.ndarray[Any, Any] = rng.random(n, dtype=np.float32)
        return f32.reshape(shape)
    if dt == np.bool_:
        bits: np.ndarray[Any, Any] = rng.integers(0, 2, n, dtype=np.uint8) == 1
        return bits.reshape(shape)
    out = np.empty(n * dt.itemsize, dtype=np.uint8)
    words = n * dt.itemsize // 8
    if words:
        out[: words * 8].view(np.uint64)[:] = rng.integers(0, 1 << 63, words, dtype=np.uint64)
    tail = n * dt.itemsize - words * 8
    if tail:
        out[words * 8 :] = rng.integers(0, 256, tail, dtype=np.uint8)
    typed: np.ndarray[Any, Any] = out.view(dt)
    return typed.reshape(shape)


def _bert(quick: bool) -> Workload:
    """BERT-base: 199 float32 tensors, 110M parameters (440 MB); ``quick`` divides hidden sizes by 16."""
    rng = np.random.default_rng(1)
    h, inter, vocab, pos = (768, 3072, 30522, 512) if not quick else (48, 192, 1000, 64)
    arrays: Arrays = {}

    def add(name: str, *shape: int) -> None:
        arrays[name] = _random(rng, shape, np.float32)

    add("bert/embeddings/word_embeddings", vocab, h)
    add("bert/embeddings/position_embeddings", pos, h)
    add("bert/embeddings/token_type_embeddings", 2, h)
    add("bert/embeddings/LayerNorm/gamma", h)
    add("bert/embeddings/LayerNorm/beta", h)
    for layer in range(12):
        p = f"bert/encoder/layer_{layer}"
        for part in ("query", "key", "value"):
            add(f"{p}/attention/self/{part}/kernel", h, h)
            add(f"{p}/attention/self/{part}/bias", h)
        add(f"{p}/attention/output/dense/kernel", h, h)
        add(f"{p}/attention/output/dense/bias", h)
        add(f"{p}/attention/output/LayerNorm/gamma", h)
        add(f"{p}/attention/output/LayerNorm/beta", h)
        add(f"{p}/intermediate/dense/kernel", h, inter)
        add(f"{p}/intermediate/dense/bias", inter)
        add(f"{p}/output/dense/kernel", inter, h)
        add(f"{p}/output/dense/bias", h)
        add(f"{p}/output/LayerNorm/gamma", h)
        add(f"{p}/output/LayerNorm/beta", h)
    add("bert/pooler/dense/kernel", h, h)
    add("bert/pooler/dense/bias", h)
    mb = sum(a.nbytes for a in arrays.values()) / 1e6
    return Workload("bert", arrays, "bert/encoder/layer_6/intermediate/dense/kernel",
                    f"BERT-base-like state: {len(arrays)} float32 tensors, {mb:.0f} MB", repeats=7)


def _small(quick: bool) -> Workload:
    """20,000 float32 tensors of 1-100 KB each (uniform), about 1 GB."""
    rng = np.random.default_rng(2)
    n = 20_000 if not quick else 300
    sizes = rng.integers(256, 25_601, n)  # float32 elements: 1 KB .. 100 KB
    arrays: Arrays = {}
    for i, s in enumerate(sizes):
        arrays[f"model/block_{i // 100:03d}/param_{i % 100:02d}"] = _random(rng, (int(s),), np.float32)
    mb = sum(a.nbytes for a in arrays.values()) / 1e6
    return Workload("small", arrays, f"model/block_{(n // 2) // 100:03d}/param_{(n // 2) % 100:02d}",
                    f"{n:,} float32 tensors of 1-100 KB ({mb:.0f} MB)", repeats=5)


def _huge(quick: bool) -> Workload:
    """One 2 GiB float32 tensor (``quick``: 8 MiB)."""
    rng = np.random.default_rng(3)
    n = (2 << 30) // 4 if not quick else (8 << 20) // 4
    arrays: Arrays = {"embedding/table": _random(rng, (n // 1024, 1024), np.float32)}
    return Workload("huge", arrays, "embedding/table",
                    f"one float32 tensor of {n * 4 / 2**30:.2f} GiB ({n * 4 / 1e6:.0f} MB)", repeats=5)


def _mixed(quick: bool) -> Workload:
    """bfloat16, float16, float32, int8, int64, bool, complex64 and string tensors (~250 MB)."""
    rng = np.random.default_rng(4)
    k = 1 if not quick else 64  # quick: divide every size by 64
    arrays: Arrays = {}
    for i in range(40):
        arrays[f"mixed/bf16_{i:02d}"] = _random(rng, (1024, 1024 // k), ml_dtypes.bfloat16)
    for i in range(20):
        arrays[f"mixed/f16_{i:02d}"] = _random(rng, (1024, 1024 // k), np.float16)
        arrays[f"mixed/f32_{i:02d}"] = _random(rng, (1024, 1024 // k), np.float32)
    for i in range(10):
        arrays[f"mixed/int8_{i:02d}"] = _random(rng, (4096, 1024 // k), np.int8)
        arrays[f"mixed/int64_{i:02d}"] = _random(rng, (100_000 // k,), np.int64)
    for i in range(5):
        arrays[f"mixed/mask_{i:02d}"] = _random(rng, ((1 << 20) // k,), np.bool_)
    for i in range(2):
        arrays[f"mixed/c64_{i:02d}"] = _random(rng, (100_000 // k,), np.complex64)
    vocab = np.empty(50_000 // k, dtype=object)
    lengths = rng.integers(1, 17, vocab.size)
    letters = rng.integers(97, 123, int(lengths.sum()), dtype=np.uint8).tobytes()
    pos = 0
    for i, n in enumerate(lengths):
        vocab[i] = letters[pos : pos + int(n)]
        pos += int(n)
    arrays["mixed/vocab"] = vocab
    for i in range(10):
        s = np.empty((), dtype=object)
        s[()] = f"asset_{i}.txt".encode()
        arrays[f"mixed/asset_path_{i}"] = s
    arrays["global_step"] = np.array(123456, dtype=np.int64)
    mb = sum(payload_size(a) for a in arrays.values()) / 1e6
    return Workload("mixed", arrays, "mixed/bf16_17",
                    f"{len(arrays)} tensors: bfloat16, float16, float32, int8, int64, bool, complex64, "
                    f"a {vocab.size:,}-word string vocabulary and scalar strings ({mb:.0f} MB)", repeats=9)


def _index(quick: bool) -> Workload:
    """100,000 tiny float32 tensors (16 elements) with realistic names: an index-bound checkpoint."""
    rng = np.random.default_rng(5)
    n = 100_000 if not quick else 2_000
    data = rng.random((n, 16), dtype=np.float32)
    arrays: Arrays = {}
    for i in range(n):
        arrays[f"model/stage_{i // 1000:03d}/unit_{i % 1000:03d}/batch_norm/moving_mean"] = data[i].copy()
    target = f"model/stage_{(n * 3 // 4) // 1000:03d}/unit_{(n * 3 // 4) % 1000:03d}/batch_norm/moving_mean"
    return Workload("index100k", arrays, target,
                    f"{n:,} tensors of 16 float32 (an index-bound checkpoint), opened to read one", repeats=5)


_BUILDERS: dict[str, Callable[[bool], Workload]] = {
    "bert": _bert,
    "small": _small,
    "huge": _huge,
    "mixed": _mixed,
    "index100k": _index,
}
NAMES = tuple(_BUILDERS)


def build(name: str, *, quick: bool = False) -> Workload:
    """Generate workload ``name`` (one of :data:`NAMES`)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(NAMES)}") from None
    w = builder(quick)
    if quick:
        w.repeats = 2
    return w


def describe(name: str) -> str:
    """One-line description of a workload without generating it."""
    doc = _BUILDERS[name].__doc__ or ""
    return doc.strip().splitlines()[0]
