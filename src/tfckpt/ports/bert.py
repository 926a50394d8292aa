"""Port a TensorFlow BERT checkpoint (google-research/bert naming) to a PyTorch ``BertModel``.

TensorFlow names such as ``bert/encoder/layer_3/attention/self/query/kernel`` become the
Hugging Face ``BertModel`` ``state_dict`` names
(``encoder.layer.3.attention.self.query.weight``); dense kernels are transposed
(``[in, out]`` -> ``[out, in]``), LayerNorm ``gamma``/``beta`` become ``weight``/``bias``
and embedding tables get ``.weight``. Optimizer slots (``adam_m``/``adam_v``,
``AdamWeightDecayOptimizer``/``_1``, ``Adam``/``_1``, ``LAMB``/``_1``, ``Momentum``),
``global_step`` and the pre-training heads (``cls/...``) are skipped. For a model that
nests the encoder (``BertForSequenceClassification``: ``bert.embeddings...``) pass
``prefix="bert."`` and ``strict=False`` (its head is new).

Example:
    >>> r = rules()
    >>> r.apply("bert/embeddings/LayerNorm/gamma"), r.apply("bert/pooler/dense/kernel/adam_m")
    ('embeddings.LayerNorm.weight', None)
    >>> r.inverse().apply("encoder.layer.0.output.dense.weight")
    'bert/encoder/layer_0/output/dense/kernel'
"""

from __future__ import annotations

from typing import Any

from tfckpt._paths import PathLike
from tfckpt._rules import Rules
from tfckpt._transforms import TransformSet, dense_kernel
from tfckpt.transfer import RestoreReport, restore_partial, save_partial

__all__ = ["load", "rules", "save", "transforms"]


def rules(*, prefix: str = "") -> Rules:
    """TensorFlow BERT names -> ``BertModel`` ``state_dict`` names (with ``prefix`` in front)."""
    r = (
        Rules()
        .include("bert/*")
        .exclude(r"re:.*/(adam_[mv]|AdamWeightDecayOptimizer(_1)?|Adam(_1)?|LAMB(_1)?|Momentum)$")  # optimizer slots
        .strip_prefix("bert/")
        .sub(r"^encoder/layer_(\d+)/", r"encoder/layer/\1/", inverse=(r"^encoder/layer/(\d+)/", r"encoder/layer_\1/"))
        .sub(r"/kernel$", "/weight", inverse=(r"/weight$", "/kernel"))
        .sub(r"/LayerNorm/gamma$", "/LayerNorm/weight", inverse=(r"/LayerNorm/weight$", "/LayerNorm/gamma"))
        .sub(r"/LayerNorm/beta$", "/LayerNorm/bias", inverse=(r"/LayerNorm/bias$", "/LayerNorm/beta"))
        .sub(r"_embeddings$", "_embeddings/weight", inverse=(r"_embeddings/weight$", "_embeddings"))
        .sub("/", ".", inverse=("[.]", "/"))
    )
    return r.add_prefix(prefix) if prefix else r


def transforms() -> TransformSet:
    """Transpose every dense kernel (``query``/``key``/``value``/``dense`` weights) into torch layout."""
    return TransformSet().add(r"re:.*\.(query|key|value|dense)\.weight$", dense_kernel())


def load(ckpt_dir_or_file: PathLike, target: Any, *, prefix: str = "",
         strict: bool = True, dtype_policy: str = "never") -> RestoreReport:
    """Restore a TensorFlow BERT checkpoint into ``target`` (a torch module or its ``state_dict``).

    Raises:
        TensorNotFoundError / InvalidArgumentError: with ``strict``, as :func:`tfckpt.restore_partial`.
    """
    return restore_partial(ckpt_dir_or_file, target, rules=rules(prefix=prefix), transforms=transforms(),
                           strict=strict, dtype_policy=dtype_policy)


def save(state: Any, prefix_path: PathLike, *, prefix: str = "", strict: bool = True) -> str:
    """Write a ``BertModel`` state back as a TensorFlow BERT checkpoint (model variables only).

    A model that nests the encoder under ``prefix`` has a head of its own
    (``BertForSequenceClassification``'s ``classifier``): pass ``strict=False`` to leave out
    what has no BERT name instead of raising.
    """
    return save_partial(state, prefix_path, rules=rules(prefix=prefix), transforms=transforms(), strict=strict)
