"""PyTorch <-> numpy for checkpoints: :func:`to_numpy`, :func:`from_numpy`, :func:`assign_`.

bfloat16 and float8 tensors have no numpy dtype in numpy itself; they travel
as ``ml_dtypes`` arrays (the same bits, reinterpreted through an integer view,
so no rounding ever happens).

Example:
    >>> import torch, numpy as np
    >>> to_numpy(torch.tensor([1.5, 2.0], dtype=torch.bfloat16)).dtype.name
    'bfloat16'
    >>> t = torch.zeros(2, dtype=torch.float16)
    >>> _ = assign_(t, np.array([1.0, 2.0], np.float16))
    >>> t.tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import torch

from tfckpt.errors import InvalidArgumentError, UnimplementedError

__all__ = ["assign_", "from_numpy", "numpy_dtype", "to_numpy", "unassignable"]

# torch dtypes numpy cannot hold natively: (torch dtype, integer view dtype, ml_dtypes type)
_BITS: list[tuple[Any, Any, Any]] = [(torch.bfloat16, torch.int16, ml_dtypes.bfloat16)]
for _t, _m in (("float8_e4m3fn", "float8_e4m3fn"), ("float8_e5m2", "float8_e5m2"),
               ("float8_e4m3fnuz", "float8_e4m3fnuz"), ("float8_e5m2fnuz", "float8_e5m2fnuz")):
    if hasattr(torch, _t) and hasattr(ml_dtypes, _m):
        _BITS.append((getattr(torch, _t), torch.uint8, getattr(ml_dtypes, _m)))

_TO_ML = {t: (view, ml) for t, view, ml in _BITS}
_FROM_ML = {np.dtype(ml): (t, view) for t, view, ml in _BITS}
_NUMPY_OF: dict[Any, np.dtype[Any]] = {}  # torch dtype -> numpy_dtype(it), as found


def numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    """The numpy dtype a torch dtype is stored as (``ml_dtypes.bfloat16`` for ``torch.bfloat16``).

    Raises:
        UnimplementedError: the dtype has no TensorFlow counterpart (e.g. quantized types).
    """
    npd = _NUMPY_OF.get(dtype)
    if npd is None:
        if dtype in _TO_ML:
            npd = np.dtype(_TO_ML[dtype][1])
        else:
            try:
                npd = np.dtype(str(torch.empty((), dtype=dtype).numpy().dtype))
            except (TypeError, RuntimeError):
                raise UnimplementedError(f"torch dtype {dtype} has no TensorFlow equivalent") from None
        _NUMPY_OF[dtype] = npd
    return npd


def to_numpy(t: torch.Tensor) -> np.ndarray[Any, Any]:
    """A numpy array with ``t``'s values (detached, moved to CPU, conjugation resolved).

    CPU tensors share memory with the result where possible; copy it before mutating.
    """
    if type(t) is torch.Tensor:  # (the usual case first: one call. numpy() refuses GPU, sparse,
        try:  # grad-requiring, conjugate- or negative-bit tensors and dtypes numpy lacks)
            a = t.numpy()
        except (TypeError, RuntimeError):
            pass
        else:
            if a.flags.c_contiguous:
                return a
    if not isinstance(t, torch.Tensor):
        raise InvalidArgumentError(f"expected a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise UnimplementedError(f"cannot store a {t.layout} tensor; convert it with .to_dense() first")
    if is_lazy(t):
        raise InvalidArgumentError("cannot store an uninitialized parameter of a lazy module (torch.nn.Lazy*): "
                                   "run one forward pass first, so that it has its shape and values")
    if t.is_meta:
        raise InvalidArgumentError("cannot store a tensor on the meta device: it has a shape but no values")
    x = t.detach() if t.requires_grad else t
    if not x.is_cpu:
        x = x.cpu()
    if x.is_conj():
        x = x.resolve_conj()
    if x.is_neg():
        x = x.resolve_neg()
    if not x.is_contiguous():
        x = x.contiguous()
    bits = _TO_ML.get(x.dtype)
    if bits is not None:
        return x.view(bits[0]).numpy().view(bits[1])
    try:
        return x.numpy()
    except TypeError:
        raise UnimplementedError(f"torch dtype {x.dtype} has no TensorFlow equivalent") from None


def inplace_numpy(t: torch.Tensor) -> np.ndarray[Any, Any] | None:
    """A writeable numpy array over ``t``'s own memory (dense contiguous CPU tensors of a dtype
    TensorFlow has), so restoring can read into it directly; None otherwise."""
    if is_lazy(t):
        return None
    if type(t) is torch.Tensor and not t.is_inference():  # (the usual case first: see to_numpy)
        try:
            a = t.numpy()
        except (TypeError, RuntimeError):
            pass
        else:
            fl = a.flags
            return a if fl.writeable and fl.c_contiguous else None
    if (not t.is_cpu or t.layout != torch.strided or not t.is_contiguous() or t.is_conj()
            or t.is_neg() or t.is_inference()):
        return None
    x = t.detach() if t.requires_grad else t
    bits = _TO_ML.get(x.dtype)
    try:
        arr = x.view(bits[0]).numpy().view(bits[1]) if bits is not None else x.numpy()
    except (TypeError, RuntimeError):
        return None
    return arr if arr.flags.writeable and arr.flags.c_contiguous else None


def from_numpy(arr: np.ndarray[Any, Any]) -> torch.Tensor:
    """A CPU tensor holding ``arr``'s values (bfloat16/float8 kept bit for bit)."""
    a = np.asarray(arr)
    if not a.flags.c_contiguous:
        a = a.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    bits = _FROM_ML.get(a.dtype)
    if bits is not None:
        return torch.from_numpy(a.view(np.dtype("int16") if bits[1] is torch.int16 else np.uint8).copy()).view(bits[0])
    if a.dtype.kind in "SUO":
        raise UnimplementedError("string tensors cannot become torch tensors")
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)


def _shape_str(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def unassignable(t: torch.Tensor) -> str | None:
    """Why values cannot be copied into ``t`` in place (None: they can): an inference tensor
    outside ``torch.inference_mode()``, which torch refuses to update; a lazy module's
    uninitialized parameter; a meta tensor (no memory); a sparse tensor; a tensor whose
    elements share memory (``expand``)."""
    if is_lazy(t):
        return ("cannot restore into an uninitialized parameter of a lazy module (torch.nn.Lazy*): run one "
                "forward pass first, so that it has its shape")
    if t.is_inference() and not torch.is_inference_mode_enabled():
        return ("cannot restore into an inference tensor (made under torch.inference_mode()) outside "
                "inference mode; clone it, or restore inside torch.inference_mode()")
    if t.is_meta:
        return ("cannot restore into a tensor on the meta device (it has no memory): create it on a real device "
                "(a torch.nn.Module built on the meta device is fine: it takes the checkpoint's tensors)")
    if t.layout != torch.strided:
        return f"cannot restore into a {t.layout} tensor in place: give a dense tensor (t.to_dense())"
    if _overlaps(t):
        return ("cannot restore into a tensor whose elements share memory (made by expand() or as_strided()): "
                "give a tensor of its own (t.clone())")
    return None


def _overlaps(t: torch.Tensor) -> bool:
    if t.is_contiguous():
        return False
    check = getattr(torch, "_debug_has_internal_overlap", None)
    return check is not None and check(t) == 1  # (1: yes; 2: too hard to tell, left to copy_)


def is_lazy(t: object) -> bool:
    """True for a lazy module's uninitialized parameter or buffer (no shape yet)."""
    lazy = getattr(torch.nn.parameter, "is_lazy", None)
    return bool(lazy(t)) if lazy is not None else False


_MODULE_METHODS = ("load_state_dict", "_load_from_state_dict", "state_dict", "_save_to_state_dict",
                   "get_extra_state", "set_extra_state")
_MODULE_HOOKS = ("_load_state_dict_pre_hooks", "_load_state_dict_post_hooks", "_state_dict_hooks",
                 "_state_dict_pre_hooks")


def plain_module(module: torch.nn.Module) -> bool:
    """True when ``module`` and its submodules save and load their state the stock way: no
    ``state_dict``/``load_state_dict`` hooks, overrides or extra state, so the tensors of
    ``state_dict()`` are the parameters' and buffers' own memory, and ``load_state_dict`` would
    only copy values into them (which a restore into that memory has done already)."""
    base = torch.nn.Module
    swap = getattr(torch.__future__, "get_swap_module_params_on_conversion", lambda: False)()
    if swap:
        return False
    for m in module.modules():
        cls, own = type(m), vars(m)
        if any(getattr(cls, name, None) is not getattr(base, name) or name in own for name in _MODULE_METHODS):
            return False  # (overridden by its class, or on the instance: a wrapper, a patch)
        if any(getattr(m, hooks, None) for hooks in _MODULE_HOOKS):
            return False
    return True


def bump_versions(tensors: list[torch.Tensor]) -> None:
    """Mark ``tensors`` as modified in place for autograd (what ``copy_`` does)."""
    bump = getattr(torch.autograd.graph, "increment_version", None)
    if bump is not None:
        bump(tensors)


def assign_(t: torch.Tensor, arr: np.ndarray[Any, Any]) -> torch.Tensor:
    """Copy ``arr`` into ``t`` in place, keeping ``t``'s dtype and device; return ``t``.

    Raises:
        InvalidArgumentError: the shapes differ (TensorFlow's ``Assign`` message), or ``t``
            cannot be updated in place (:func:`unassignable`).
    """
    a = np.asarray(arr)
    if (why := unassignable(t)) is not None:
        raise InvalidArgumentError(why)
    if tuple(t.shape) != tuple(a.shape):
        raise InvalidArgumentError(
            "Assign requires shapes of both tensors to match. "
            f"lhs shape= {_shape_str(tuple(t.shape))} rhs shape= {_shape_str(tuple(a.shape))}"
        )
    src = from_numpy(a)
    with torch.no_grad():
        t.copy_(src)
    return t
