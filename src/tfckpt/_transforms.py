"""Layout transforms applied to tensors on load and undone on save.

A :class:`Transform` maps one array to one array (``forward`` on load,
``inverse`` on save): :class:`Transpose` (with :func:`dense_kernel` for
TensorFlow ``[in, out]`` <-> torch ``Linear.weight`` ``[out, in]`` and
:func:`conv2d_kernel` for HWIO <-> OIHW), :class:`TorchKernel` (picks the
transpose by rank), :class:`Reshape` and :class:`Cast`. :class:`Split` (one
tensor -> several, e.g. a fused qkv kernel) and :class:`Concat` (several ->
one) work on names as well as arrays. A :class:`TransformSet` says which
target names get which transforms.

Every forward result is a C-contiguous copy, so ``inverse(forward(a))`` has
the same bytes as ``a``.

Example:
    >>> import numpy as np
    >>> k = np.arange(6, dtype=np.float32).reshape(2, 3)      # TF Dense kernel [in=2, out=3]
    >>> t = dense_kernel()
    >>> t.forward(k).shape, t.inverse(t.forward(k)).tobytes() == k.tobytes()
    ((3, 2), True)
    >>> Cast("float16").forward(np.array([1.5], np.float64))
    array([1.5], dtype=float16)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfckpt._rules import Pattern
from tfckpt.dtypes import DType, as_dtype
from tfckpt.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "DTYPE_POLICIES",
    "Cast",
    "Concat",
    "Reshape",
    "Split",
    "TorchKernel",
    "Transform",
    "TransformSet",
    "Transpose",
    "cast_array",
    "conv2d_kernel",
    "dense_kernel",
]

Array = np.ndarray[Any, Any]

#: Accepted dtype policies: numpy's casting rules plus ``"never"`` (same dtype only).
DTYPE_POLICIES = ("never", "no", "equiv", "safe", "same_kind", "unsafe")


def _dtype(x: object) -> DType:
    try:
        return as_dtype(x)  # type: ignore[arg-type]
    except (InvalidArgumentError, TypeError, ValueError):
        raise InvalidArgumentError(f"unknown dtype {x!r}") from None


def check_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`DTYPE_POLICIES`, else InvalidArgumentError."""
    if policy not in DTYPE_POLICIES:
        raise InvalidArgumentError(f"dtype policy must be one of {', '.join(DTYPE_POLICIES)}; got {policy!r}")
    return policy


def can_cast(src: DType, dst: DType, policy: str) -> bool:
    """Whether ``policy`` allows converting ``src`` values to ``dst``.

    Example:
        >>> f32, f64 = as_dtype("float32"), as_dtype("float64")
        >>> can_cast(f64, f32, "same_kind"), can_cast(f64, f32, "safe"), can_cast(f32, f32, "never")
        (True, False, True)
    """
    check_policy(policy)
    if src == dst:
        return True
    if policy in ("never", "no") or src.is_string or dst.is_string:
        return False
    return bool(np.can_cast(src.numpy_dtype, dst.numpy_dtype, casting=policy))  # type: ignore[arg-type]


def cast_array(value: Array, dtype: DType | str, policy: str, *, name: str = "") -> Array:
    """``value`` converted to ``dtype`` if ``policy`` allows it.

    Raises:
        InvalidArgumentError: the policy forbids the conversion.
    """
    dst = _dtype(dtype)
    src = as_dtype(value.dtype)
    if src == dst:
        return value
    if not can_cast(src, dst, policy):
        what = f"tensor {name!r}: " if name else ""
        raise InvalidArgumentError(f"{what}cannot cast {src.name} to {dst.name} with dtype policy {policy!r}", key=name)
    return np.ascontiguousarray(value.astype(dst.numpy_dtype))


class Transform:
    """One array in, one array out; :meth:`inverse` undoes :meth:`forward`."""

    def forward(self, array: Array) -> Array:
        """The transformed array (applied on load)."""
        raise NotImplementedError

    def inverse(self, array: Array) -> Array:
        """The original layout back (applied on save)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short description for reports."""
        return type(self).__name__

    def __repr__(self) -> str:
        return self.describe()


class Transpose(Transform):
    """Permute axes (``None``: reverse them).

    Example:
        >>> Transpose((3, 2, 0, 1)).forward(np.zeros((3, 3, 2, 4))).shape   # HWIO -> OIHW
        (4, 2, 3, 3)
    """

    def __init__(self, axes: Sequence[int] | None = None) -> None:
        if axes is not None:
            axes = tuple(int(a) for a in axes)
            if sorted(axes) != list(range(len(axes))):
                raise InvalidArgumentError(f"transpose axes must be a permutation of 0..n-1, got {axes}")
        self.axes: tuple[int, ...] | None = axes

    def _check(self, array: Array) -> None:
        if self.axes is not None and array.ndim != len(self.axes):
            raise InvalidArgumentError(
                f"transpose {list(self.axes)} needs a rank-{len(self.axes)} tensor, got shape {list(array.shape)}"
            )

    def forward(self, array: Array) -> Array:
        self._check(array)
        return np.ascontiguousarray(np.transpose(array, self.axes))

    def inverse(self, array: Array) -> Array:
        self._check(array)
        back = None if self.axes is None else tuple(int(i) for i in np.argsort(self.axes))
        return np.ascontiguousarray(np.transpose(array, back))

    def describe(self) -> str:
        return "transpose" if self.axes is None else f"transpose{list(self.axes)}"


def dense_kernel() -> Transpose:
    """TensorFlow dense kernel ``[in, out]`` <-> torch ``Linear.weight`` ``[out, in]``."""
    return Transpose((1, 0))


def conv2d_kernel() -> Transpose:
    """TensorFlow conv kernel HWIO <-> torch ``Conv2d.weight`` OIHW."""
    return Transpose((3, 2, 0, 1))


# TF kernel layout -> torch weight layout, by rank: dense, conv1d (WIO), conv2d (HWIO), conv3d (DHWIO).
_TORCH_AXES = {2: (1, 0), 3: (2, 1, 0), 4: (3, 2, 0, 1), 5: (4, 3, 0, 1, 2)}


class TorchKernel(Transform):
    """A TensorFlow kernel into torch's weight layout, the transpose chosen by rank (2, 3, 4 or 5).

    Example:
        >>> TorchKernel().forward(np.zeros((3, 3, 2, 4))).shape, TorchKernel().forward(np.zeros((5, 7))).shape
        ((4, 2, 3, 3), (7, 5))
    """

    def _t(self, array: Array) -> Transpose:
        axes = _TORCH_AXES.get(array.ndim)
        if axes is None:
            raise InvalidArgumentError(f"no TensorFlow->torch kernel layout for shape {list(array.shape)}")
        return Transpose(axes)

    def forward(self, array: Array) -> Array:
        return self._t(array).forward(array)

    def inverse(self, array: Array) -> Array:
        return self._t(array).inverse(array)

    def describe(self) -> str:
        return "torch_kernel"


class Reshape(Transform):
    """Reshape to ``shape``; the inverse reshapes to ``source_shape`` (required for saving)."""

    def __init__(self, shape: Sequence[int], source_shape: Sequence[int] | None = None) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.source_shape = None if source_shape is None else tuple(int(d) for d in source_shape)

    def forward(self, array: Array) -> Array:
        try:
            return np.ascontiguousarray(array.reshape(self.shape))
        except ValueError:
            raise InvalidArgumentError(f"cannot reshape {list(array.shape)} to {list(self.shape)}") from None

    def inverse(self, array: Array) -> Array:
        if self.source_shape is None:
            raise InvalidArgumentError(f"reshape to {list(self.shape)} has no source_shape: it cannot be undone")
        try:
            return np.ascontiguousarray(array.reshape(self.source_shape))
        except ValueError:
            raise InvalidArgumentError(f"cannot reshape {list(array.shape)} to {list(self.source_shape)}") from None

    def describe(self) -> str:
        return f"reshape{list(self.shape)}"


class Cast(Transform):
    """Convert to ``dtype`` under ``policy``; the inverse converts back to ``source_dtype``
    (``unsafe``: it is a round trip of a cast that was allowed)."""

    def __init__(self, dtype: DType | str, *, source_dtype: DType | str | None = None, policy: str = "same_kind"):
        self.dtype = _dtype(dtype)
        self.source_dtype = None if source_dtype is None else _dtype(source_dtype)
        self.policy = check_policy(policy)

    def forward(self, array: Array) -> Array:
        return cast_array(array, self.dtype, self.policy)

    def inverse(self, array: Array) -> Array:
        if self.source_dtype is None:
            raise InvalidArgumentError(f"cast to {self.dtype.name} has no source_dtype: it cannot be undone")
        return cast_array(array, self.source_dtype, "unsafe")

    def describe(self) -> str:
        return f"cast->{self.dtype.name}"


def _join_parts(parts: Sequence[Array], axis: int, what: str) -> Array:
    """``parts`` concatenated along ``axis``, numpy's complaints (shapes, axis) as InvalidArgumentError."""
    try:
        return np.ascontiguousarray(np.concatenate(list(parts), axis=axis))
    except (ValueError, IndexError) as e:  # (numpy's AxisError is both)
        raise InvalidArgumentError(f"{what}: {e}") from None


def _sections(total: int, sizes: Sequence[int] | None, parts: int, what: str) -> list[int]:
    if sizes is None:
        if total % parts:
            raise InvalidArgumentError(f"{what}: axis of size {total} does not split into {parts} equal parts")
        return [total // parts] * parts
    if sum(sizes) != total:
        raise InvalidArgumentError(f"{what}: sizes {list(sizes)} do not add up to {total}")
    return list(sizes)


class Split:
    """One tensor ``source`` (a name after the rules) split along ``axis`` into ``targets``.

    Example:
        >>> s = Split("qkv", ["q", "k", "v"], axis=1)
        >>> [p.shape for p in s.forward(np.zeros((4, 12)))], s.inverse([np.zeros((4, 4))] * 3).shape
        ([(4, 4), (4, 4), (4, 4)], (4, 12))
    """

    def __init__(self, source: str, targets: Sequence[str], *, axis: int = 0,
                 sizes: Sequence[int] | None = None) -> None:
        if len(targets) < 1 or (sizes is not None and len(sizes) != len(targets)):
            raise InvalidArgumentError(f"split of {source!r}: need one size per target, got {targets!r}, {sizes!r}")
        self.source = source
        self.targets = list(targets)
        self.axis = int(axis)
        self.sizes = None if sizes is None else [int(s) for s in sizes]

    def forward(self, array: Array) -> list[Array]:
        """The parts, in ``targets`` order."""
        if not -array.ndim <= self.axis < array.ndim:
            raise InvalidArgumentError(f"split of {self.source!r}: no axis {self.axis} in shape {list(array.shape)}")
        secs = _sections(array.shape[self.axis], self.sizes, len(self.targets), f"split of {self.source!r}")
        cuts = np.cumsum(secs)[:-1]
        return [np.ascontiguousarray(p) for p in np.split(array, cuts, axis=self.axis)]

    def inverse(self, parts: Sequence[Array]) -> Array:
        """The parts joined back into one array."""
        return _join_parts(parts, self.axis, f"joining the split parts {self.targets} back into {self.source!r}")

    def describe(self) -> str:
        return f"split(axis={self.axis})"


class Concat:
    """Several tensors ``sources`` (names after the rules) joined along ``axis`` into ``target``."""

    def __init__(self, sources: Sequence[str], target: str, *, axis: int = 0,
                 sizes: Sequence[int] | None = None) -> None:
        if len(sources) < 1 or (sizes is not None and len(sizes) != len(sources)):
            raise InvalidArgumentError(f"concat into {target!r}: need one size per source, got {sources!r}, {sizes!r}")
        self.sources = list(sources)
        self.target = target
        self.axis = int(axis)
        self.sizes = None if sizes is None else [int(s) for s in sizes]

    def forward(self, parts: Sequence[Array]) -> Array:
        """The parts (in ``sources`` order) joined."""
        return _join_parts(parts, self.axis, f"concat into {self.target!r}")

    def inverse(self, array: Array) -> list[Array]:
        """The array cut back into its parts (equal sizes unless ``sizes`` was given)."""
        what = f"concat into {self.target!r}"
        if not -array.ndim <= self.axis < array.ndim:
            raise InvalidArgumentError(f"{what}: no axis {self.axis} in shape {list(array.shape)}", key=self.target)
        if self.sizes is None and array.shape[self.axis] % len(self.sources):
            what += " (parts of unequal sizes need Concat(..., sizes=[...]) to be cut back)"
        secs = _sections(array.shape[self.axis], self.sizes, len(self.sources), what)
        cuts = np.cumsum(secs)[:-1]
        return [np.ascontiguousarray(p) for p in np.split(array, cuts, axis=self.axis)]

    def describe(self) -> str:
        return f"concat(axis={self.axis})"


class TransformSet:
    """Which target names get which transforms.

    ``add(pattern, *transforms)``: names matching ``pattern`` (glob or ``re:``) get the
    transforms, in order, on load; the first matching pattern wins. ``split``/``concat``
    declare one-to-many and many-to-one tensors (names after the rules); the per-name
    transforms then apply to each resulting target name.

    Example:
        >>> ts = TransformSet().add("*.weight", dense_kernel())
        >>> ts.for_name("fc.weight"), ts.for_name("fc.bias")
        ([transpose[1, 0]], [])
    """

    def __init__(self) -> None:
        self._entries: list[tuple[Pattern, list[Transform]]] = []
        self.splits: list[Split] = []
        self.concats: list[Concat] = []

    def add(self, pattern: str, *transforms: Transform) -> TransformSet:
        """Give names matching ``pattern`` the ``transforms`` (applied in order on load)."""
        for t in transforms:
            if not isinstance(t, Transform):
                raise InvalidTypeError(f"transforms for {pattern!r}: not a Transform: {t!r:.80} (to use a function, "
                                       "subclass tfckpt.transfer.Transform with forward and inverse)")
        self._entries.append((Pattern(pattern), list(transforms)))
        return self

    def split(self, source: str, targets: Sequence[str], *, axis: int = 0,
              sizes: Sequence[int] | None = None) -> TransformSet:
        """Declare a :class:`Split`."""
        self.splits.append(Split(source, targets, axis=axis, sizes=sizes))
        return self

    def concat(self, sources: Sequence[str], target: str, *, axis: int = 0,
               sizes: Sequence[int] | None = None) -> TransformSet:
        """Declare a :class:`Concat`."""
        self.concats.append(Concat(sources, target, axis=axis, sizes=sizes))
        return self

    def for_name(self, name: str) -> list[Transform]:
        """The transforms for target ``name`` (possibly none)."""
        for pattern, ts in self._entries:
            if pattern.matches(name):
                return list(ts)
        return []

    def forward(self, name: str, array: Array) -> Array:
        """Apply ``name``'s transforms on load."""
        for t in self.for_name(name):
            array = t.forward(array)
        return array

    def inverse(self, name: str, array: Array) -> Array:
        """Undo ``name``'s transforms for saving."""
        for t in reversed(self.for_name(name)):
            array = t.inverse(array)
        return array

    @classmethod
    def coerce(cls, value: TransformSet | Mapping[str, Transform | Sequence[Transform]] | None) -> TransformSet:
        """A TransformSet from itself, ``None`` or ``{pattern: transform or [transforms]}``."""
        if value is None:
            return cls()
        if isinstance(value, TransformSet):
            return value
        if not isinstance(value, Mapping):
            raise InvalidTypeError(f"transforms must be a TransformSet or a mapping, got {type(value).__name__}")
        ts = cls()
        for pattern, t in value.items():
            ts.add(pattern, *(t if isinstance(t, (list, tuple)) else [t]))
        return ts
