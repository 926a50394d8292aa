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
from dataclasses import dataclass
from typing import Any

from tfckpt._paths import PathLike
from tfckpt._rules import Rules
from tfckpt._transforms import TorchKernel, TransformSet
from tfckpt.errors import InvalidArgumentError, InvalidTypeError
from tfckpt.reader import load_checkpoint
from tfckpt.transfer import RestoreReport, restore_partial

__all__ = ["load_into_torch", "rules", "weight_layers"]

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_KERNEL = re.compile(r"^(?P<layer>.+)/(?P<attr>_?kernel)" + re.escape(_SUFFIX) + "$")
_TORCH_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


@dataclass
class _Layer:
    """A layer with a kernel: its name (the path its kernel key is under), every object path that
    reaches it, and the checkpoint keys of its kernel and bias (None: no bias)."""

    name: str
    paths: set[str]
    kernel: str
    bias: str | None


def _value_key(graph: Any, node_id: int) -> str | None:
    for a in graph.nodes[node_id].attributes:
        if a.name == "VARIABLE_VALUE":
            return str(a.checkpoint_key)
    return None


def _graph_layers(graph: Any) -> list[_Layer]:
    """The layers with a kernel, in the order a walk of the object graph meets them (children in
    the order the model tracked them: its layers' order, for subclassed models too), reached by
    any path but through an optimizer."""
    layers: dict[int, _Layer] = {}
    seen: set[int] = set()
    stack: list[tuple[int, str]] = [(0, "")]
    while stack:
        node_id, path = stack.pop()
        if node_id in layers:
            layers[node_id].paths.add(path)
        if node_id in seen:
            continue
        seen.add(node_id)
        children = {c.local_name: c.node_id for c in graph.nodes[node_id].children}
        for attr in ("kernel", "_kernel"):
            kernel = _value_key(graph, children[attr]) if attr in children else None
            if kernel is not None and path:
                bias = _value_key(graph, children["bias"]) if "bias" in children else None
                m = _KERNEL.match(kernel)
                name = m.group("layer") if m and not kernel.startswith("optimizer/") else path
                layers[node_id] = _Layer(name, {path}, kernel, bias)
                break
        for c in reversed(graph.nodes[node_id].children):
            if c.local_name != "optimizer" and not c.local_name.endswith("OPTIMIZER_SLOT"):
                stack.append((c.node_id, f"{path}/{c.local_name}" if path else c.local_name))
    return list(layers.values())


def _name_layers(names: Any) -> list[_Layer]:
    """The layers with a kernel of a checkpoint without an object graph, by key, in natural order."""
    out = []
    for n in names:
        m = _KERNEL.match(n)
        if m and ".OPTIMIZER_SLOT" not in n and not n.startswith("optimizer/"):
            layer = m.group("layer")
            bias = f"{layer}/bias{_SUFFIX}"
            out.append(_Layer(layer, {layer}, n, bias if bias in names else None))
    return sorted(out, key=lambda la: _natural(la.name))


def _layers(ckpt_dir_or_file: PathLike) -> list[_Layer]:
    with load_checkpoint(ckpt_dir_or_file) as reader:
        graph = reader.object_graph()
        return _graph_layers(graph) if graph is not None else _name_layers(reader.get_variable_to_shape_map())


def weight_layers(ckpt_dir_or_file: PathLike) -> dict[str, str]:
    """Layer path -> its kernel key, for every layer with a kernel, in the model's order: the
    order its object graph lists them (a Sequential's or functional model's layer order, and a
    subclassed model's attribute order), else natural order of the names (``_operations/2``
    before ``_operations/10``).

    A kernel TensorFlow stored under the optimizer's path (``tf.train.Checkpoint(model=m,
    optimizer=opt)`` keeps each variable once, under its shortest path) is found through the
    object graph, listed under its layer's path. Optimizer copies are left out.
    """
    return {la.name if not la.name.startswith("optimizer/") else min(la.paths): la.kernel
            for la in _layers(ckpt_dir_or_file)}


def rules(
    layer_map: Mapping[str, str], *, kernel_attr: str | Mapping[str, str] = "kernel"
) -> tuple[Rules, TransformSet]:
    """Rules and transforms taking each Keras layer path's kernel and bias to ``<torch name>.weight``/``.bias``.

    ``kernel_attr``: ``"kernel"`` (Keras 2) or ``"_kernel"`` (Keras 3), or a per-layer mapping.
    """
    pairs = []
    for layer, dst in layer_map.items():
        attr = kernel_attr if isinstance(kernel_attr, str) else kernel_attr.get(layer, "kernel")
        pairs.append((_Layer(layer, {layer}, f"{layer}/{attr}{_SUFFIX}", f"{layer}/bias{_SUFFIX}"), dst))
    return _rules_for(pairs)


def _rules_for(pairs: list[tuple[_Layer, str]]) -> tuple[Rules, TransformSet]:
    """Rules taking each layer's kernel and bias keys to ``<dst>.weight``/``.bias``, and the kernel transforms."""
    mapping: dict[str, str] = {}
    ts = TransformSet()
    for la, dst in pairs:
        mapping[la.kernel] = f"{dst}.weight"
        if la.bias is not None:
            mapping[la.bias] = f"{dst}.bias"
        ts.add("re:" + re.escape(f"{dst}.weight"), TorchKernel())
    return Rules().include(*("re:" + re.escape(k) for k in mapping)).map(mapping), ts


def _torch_layers(module: Any) -> list[str]:
    if not callable(getattr(module, "named_modules", None)):
        raise InvalidTypeError(f"pairing layers by order needs a torch.nn.Module, got {type(module).__name__}: "
                               "pass layer_map ({keras layer path: torch module name}) for a state dict")
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
    registration order. ``layer_map`` keys may be any object path of a layer (those of
    :func:`weight_layers`, or another path TensorFlow lists it under). Note that a Keras
    ``Flatten`` after a conv flattens NHWC, so the torch model must flatten a
    ``permute(0, 2, 3, 1)``-ed tensor to use the next Dense as is.

    Raises:
        InvalidArgumentError: automatic pairing finds different layer counts; and as
            :func:`tfckpt.restore_partial` with ``strict``.
        InvalidTypeError: no ``layer_map`` and ``module`` is not a torch module.
    """
    layers = _layers(ckpt_dir_or_file)
    if layer_map is None:
        torch_names = _torch_layers(module)
        if len(torch_names) != len(layers):
            names = ", ".join(la.name for la in layers)
            raise InvalidArgumentError(
                f"cannot pair {len(layers)} Keras layers with kernels ({names}) with "
                f"{len(torch_names)} torch layers ({', '.join(torch_names)}): pass layer_map"
            )
        pairs: list[tuple[_Layer, str]] = list(zip(layers, torch_names))
    else:
        by_path = {p: la for la in layers for p in (la.name, *la.paths)}
        pairs = []
        for path, dst in layer_map.items():
            la = by_path.get(path)
            if la is None:  # (a layer the checkpoint lacks: its names, for the report's missing list)
                la = _Layer(path, {path}, f"{path}/kernel{_SUFFIX}", f"{path}/bias{_SUFFIX}")
            pairs.append((la, dst))
    r, ts = _rules_for(pairs)
    return restore_partial(ckpt_dir_or_file, module, rules=r, transforms=ts, strict=strict, dtype_policy=dtype_policy)
