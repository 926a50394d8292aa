"""JAX <-> numpy for checkpoints: :func:`to_numpy` and :func:`from_numpy`.

JAX arrays are immutable, so restoring builds new arrays; :func:`from_numpy`
keeps the dtype and the sharding (device placement) of the array it replaces.

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> to_numpy(jnp.arange(3, dtype=jnp.int32))
    array([0, 1, 2], dtype=int32)
    >>> from_numpy(np.array([1.0, 2.0]), like=jnp.zeros(2, jnp.bfloat16)).dtype
    dtype(bfloat16)
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from tfckpt.errors import InvalidArgumentError

__all__ = ["from_numpy", "stored_spec", "to_numpy"]


def _is_key(x: Any) -> bool:
    return bool(jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key))


def to_numpy(x: Any) -> np.ndarray[Any, Any]:
    """The values of a jax array (fetched from its devices) as numpy (bfloat16 as ``ml_dtypes``;
    a typed PRNG key array (``jax.random.key``) as its ``uint32`` key data)."""
    if isinstance(x, jax.core.Tracer):
        raise InvalidArgumentError("cannot save a traced value (inside jax.jit, grad or vmap): it has no values "
                                   "yet; save outside the transformed function")
    try:
        if _is_key(x):
            x = jax.random.key_data(x)
        return np.asarray(jax.device_get(x))
    except RuntimeError as e:  # (a deleted or donated array)
        raise InvalidArgumentError(f"cannot read the jax array's values: {e}") from None


def stored_spec(x: Any) -> tuple[np.dtype[Any], tuple[int, ...]]:
    """The numpy dtype and shape :func:`to_numpy` gives ``x`` (a key array: its key data's)."""
    if _is_key(x):
        x = jax.eval_shape(jax.random.key_data, x)
    return np.dtype(x.dtype), tuple(int(d) for d in x.shape)


def _weak(x: Any, dtype: Any) -> Any:
    """``x`` marked weakly typed, as the array it replaces was (a Python scalar's jnp.asarray:
    keeps dtype promotion and jit's cache as they were)."""
    try:
        from jax._src.lax.lax import _convert_element_type

        return _convert_element_type(x, np.dtype(dtype), weak_type=True)
    except (ImportError, TypeError, AssertionError):  # pragma: no cover - another jax
        return x


def from_numpy(arr: np.ndarray[Any, Any], like: Any = None) -> Any:
    """A jax array with ``arr``'s values; with ``like``, of ``like``'s dtype, shape and sharding.

    Raises:
        InvalidArgumentError: ``arr`` and ``like`` differ in shape.
    """
    a = np.asarray(arr)
    if like is None:
        return jax.numpy.asarray(a)
    if _is_key(like):
        impl = jax.random.key_impl(like)
        data = from_numpy(a, jax.random.key_data(like))
        return jax.random.wrap_key_data(data, impl=impl)
    if tuple(like.shape) != tuple(a.shape):
        lhs = ",".join(str(d) for d in like.shape)
        rhs = ",".join(str(d) for d in a.shape)
        raise InvalidArgumentError(
            f"Assign requires shapes of both tensors to match. lhs shape= [{lhs}] rhs shape= [{rhs}]"
        )
    a = a.astype(like.dtype, copy=False)
    out = None
    sharding = getattr(like, "sharding", None)
    if sharding is not None:
        try:
            out = jax.device_put(a, sharding)
        except (ValueError, TypeError):
            pass
    if out is None:
        out = jax.numpy.asarray(a)
    return _weak(out, like.dtype) if getattr(like, "weak_type", False) else out
