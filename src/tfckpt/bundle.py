"""Writing bare tensor bundles: :func:`write`.

A bundle is ``<prefix>.index`` plus ``<prefix>.data-*`` files: no state file,
no ``.meta``. Use :class:`tfckpt.Saver` for managed checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from tfckpt._format.bundle_reader import BundleReader
from tfckpt._format.bundle_writer import BundleWriter, in_checkpoint, sort_by_name
from tfckpt._gcpause import paused_gc
from tfckpt._paths import PathLike, as_path
from tfckpt.errors import CheckpointError, InvalidArgumentError, InvalidTypeError

__all__ = ["BundleReader", "BundleWriter", "write"]


def write(
    tensors: Mapping[str, object] | Iterable[tuple[str, object]],
    prefix: PathLike,
    *,
    num_shards: int = 1,
    sync: bool = True,
) -> str:
    """Write ``tensors`` (name -> array-like) as a TensorFlow V2 bundle at ``prefix``; return the prefix.

    Tensors are written in sorted-name order, so with ``num_shards=1`` the files
    are byte-identical to TensorFlow's ``SaveV2`` given the names sorted. With
    ``num_shards > 1`` tensors are spread over the data files, balanced by
    bytes, and written in parallel. ``sync=False`` skips the fsyncs (faster, but
    a power cut may lose the checkpoint; a killed process cannot).

    The write is atomic: data files and index go to temporary names first and
    the index is renamed into place last.

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> p = tfckpt.write({"b": np.ones(2, np.float32), "a": "text"},
        ...                  os.path.join(tempfile.mkdtemp(), "ckpt"))
        >>> tfckpt.read(p)["b"]
        array([1., 1.], dtype=float32)

    Raises:
        InvalidTypeError: ``tensors`` is not a mapping or pairs; ``prefix`` is not a path.
        InvalidArgumentError: bad names (empty, duplicate, not str) or values.
        ResourceExhaustedError: the disk is full; nothing is left behind.
    """
    with paused_gc():  # 100,000 tensors allocate enough to trigger full collections of a big process
        # A mapping's names are sorted alone (no list of pairs: 64 bytes a tensor at 100,000 tensors).
        mapping = isinstance(tensors, Mapping)
        items = _items(tensors, prefix)
        w = BundleWriter(as_path(prefix, "prefix"), num_shards=num_shards, sync=sync)
        try:
            try:
                sort_by_name(items, pairs=not mapping)
            except (AttributeError, TypeError):
                bad = next(k for k in (items if mapping else [it[0] for it in items]) if not isinstance(k, str))
                raise InvalidArgumentError(f"tensor names must be str, got {type(bad).__name__}: {bad!r}") from None
        except CheckpointError as e:  # (names sorted here: say which checkpoint, as the writer's errors do)
            raise in_checkpoint(e, w.prefix) from None
        if mapping:
            w.add_arrays(items, list(map(tensors.__getitem__, items)))  # type: ignore[index]
        else:
            w.add_many(items)
        done = w.finish()
        del w, items  # freed while the collector is paused: re-enabling it finds nothing to traverse
    return done


def _items(tensors: object, prefix: object) -> list[Any]:
    """The names of mapping ``tensors``, or its (name, value) pairs as a list.

    Raises:
        InvalidTypeError: ``tensors`` is neither (a path there, with a mapping as ``prefix``,
            says the arguments are swapped), or a pair is not a pair.
    """
    if isinstance(tensors, Mapping):
        return list(tensors)
    if isinstance(tensors, (str, bytes, os.PathLike)) or not isinstance(tensors, Iterable):
        hint = " (the arguments are write(tensors, prefix): tensors first)" if isinstance(prefix, Mapping) else ""
        raise InvalidTypeError(f"tensors must be a mapping of name -> value or an iterable of (name, value) "
                               f"pairs, got {type(tensors).__name__}{hint}")
    items = list(tensors)
    if set(map(type, items)) <= {tuple, list} and set(map(len, items)) == {2}:
        return items  # (the common case, checked at C speed: a loop of isinstance takes 0.6 us a pair)
    for it in items:  # (tuple subclasses, or a bad pair to report)
        if not (isinstance(it, (tuple, list)) and len(it) == 2):
            raise InvalidTypeError(f"tensors: expected (name, value) pairs, got {type(it).__name__}: {it!r:.80}")
    return items
