"""Port Keras ``Dense``/``Conv`` layers from a TF2 object-based checkpoint into PyTorch.

A ``tf.train.Checkpoint(model=model)`` stores a layer's weights under keys such as
``model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE`` (Keras 3) or
``model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`` (Keras 2). Each
layer path maps to a torch module name; kernels are transposed by rank into torch
layout (Dense ``[in, out]`` -> ``Linear.weight`` ``[out, in]``, Conv2D HWIO -> OIHW,
Conv1D/Conv3D likewise), biases are copied. Optimizer state is skipped.

Example:
    >>> r, _ = rules({"model/layer_with_weights-0": "fc"})
    >>> r.apply("model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    'fc.weight'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tfckpt._paths import PathLike
from tfckpt._rules import Rules
from tfckpt._transforms import TorchKernel, TransformSet
from tfckpt.errors import InvalidArgumentError
from tfckpt.reader import load_checkpoint
from tfckpt.transfer import RestoreReport, restore_partial

__all__ = ["load_into_torch", "rules", "weight_layers"]

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_KERNEL = re.compile(r"^(?P<layer>.+)/(?P<attr>_?kernel)" + re.escape(_SUFFIX) + "$")
_TORCH_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def weight_layers(ckpt_dir_or_file: PathLike) -> dict[str, str]:
    """Layer path -> its kernel key, for every layer with a kernel, in natural order
    (``_operations/2`` before ``_operations/10``) -- the order of a Sequential/functional model.

    Optimizer copies (``.OPTIMIZER_SLOT``, ``optimizer/...``) are left out.
    """
    with load_checkpoint(ckpt_dir_or_file) as reader:
        names = reader.get_variable_to_shape_map()
    out = {}
    for n in names:
        m = _KERNEL.match(n)
        if m and ".OPTIMIZER_SLOT" not in n and not n.startswith("optimizer/"):
            out[m.group("layer")] = n
    return {k: out[k] for k in sorted(out, key=_natural)}


def rules(
    layer_map: Mapping[str, str], *, kernel_attr: str | Mapping[str, str] = "kernel"
) -> tuple[Rules, TransformSet]:
    """Rules and transforms taking each Keras layer path's kernel and bias to ``<torch name>.weight``/``.bias``.

    ``kernel_attr``: ``"kernel"`` (Keras 2) or ``"_kernel"`` (Keras 3), or a per-layer mapping.
    """
    mapping: dict[str, str] = {}
    ts = TransformSet()
    for layer, dst in layer_map.items():
        attr = kernel_attr if isinstance(kernel_attr, str) else kernel_attr.get(layer, "kernel")
        mapping[f"{layer}/{attr}{_SUFFIX}"] = f"{dst}.weight"
        mapping[f"{layer}/bias{_SUFFIX}"] = f"{dst}.bias"
        ts.add("re:" + re.escape(f"{dst}.weight"), TorchKernel())
    r = Rules().include(*("re:" + re.escape(k) for k in mapping)).map(mapping)
    return r, ts


def _torch_layers(module: Any) -> list[str]:
    return [n for n, m in module.named_modules() if type(m).__name__ in _TORCH_TYPES and n]


def load_into_torch(
    ckpt_dir_or_file: PathLike,
    module: Any,
    layer_map: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
    dtype_policy: str = "never",
) -> RestoreReport:
    """Load Keras layer weights into a torch module's ``Linear``/``Conv`` layers.

    Without ``layer_map`` the Keras layers with kernels (in :func:`weight_layers` order) are
    paired with the module's ``Linear``/``Conv1d``/``Conv2d``/``Conv3d`` submodules in
    registration order. Note that a Keras ``Flatten`` after a conv flattens NHWC, so the
    torch model must flatten a ``permute(0, 2, 3, 1)``-ed tensor to use the next Dense as is.

    Raises:
        InvalidArgumentError: automatic pairing finds different layer counts; and as
            :func:`tfckpt.restore_partial` with ``strict``.
    """
    kernels = weight_layers(ckpt_dir_or_file)
    if layer_map is None:
        torch_names = _torch_layers(module)
        if len(torch_names) != len(kernels):
            raise InvalidArgumentError(
                f"cannot pair {len(kernels)} Keras layers with kernels ({', '.join(kernels)}) with "
                f"{len(torch_names)} torch layers ({', '.join(torch_names)}): pass layer_map"
            )
        layer_map = dict(zip(kernels, torch_names))
    attrs = {layer: (_KERNEL.match(kernels[layer]).group("attr") if layer in kernels else "kernel")  # type: ignore[union-attr]
             for layer in layer_map}
    r, ts = rules(layer_map, kernel_attr=attrs)
    return restore_partial(ckpt_dir_or_file, module, rules=r, transforms=ts, strict=strict, dtype_policy=dtype_policy)
