"""Transfer learning: restore part of a checkpoint into a model, renamed and re-laid-out.

:func:`restore_partial` picks checkpoint tensors with :class:`Rules` (include/exclude,
renames), applies layout transforms (:mod:`tfckpt._transforms`: transposes, reshapes,
split/concat, casts under a dtype policy), checks every shape and dtype against the
target state and assigns through the shared state model; it returns a
:class:`RestoreReport` and, with ``strict`` (the default), raises when anything is
missing, left over or mismatched. :func:`export_partial` / :func:`save_partial` undo
the transforms and renames to write a checkpoint in the original layout.
:func:`init_from_checkpoint` (in :mod:`tfckpt._init_from`) is TensorFlow's
``tf.compat.v1.train.init_from_checkpoint`` with its assignment_map semantics and messages.

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> from tfckpt._transforms import dense_kernel
    >>> p = tfckpt.write({"dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
    ...                   "dense/kernel/adam_m": np.zeros((2, 3), np.float32)},
    ...                  os.path.join(tempfile.mkdtemp(), "ckpt"))
    >>> model = {"fc.weight": np.zeros((3, 2), np.float32)}
    >>> rules = Rules().exclude("*/adam_m").map({"dense/kernel": "fc.weight"})
    >>> report = restore_partial(p, model, rules=rules, transforms={"fc.weight": dense_kernel()})
    >>> report.ok, report.renamed, model["fc.weight"][0].tolist()
    (True, {'dense/kernel': 'fc.weight'}, [0.0, 3.0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tfckpt import _state
from tfckpt._convert import to_array
from tfckpt._init_from import _as_array, init_from_checkpoint
from tfckpt._paths import PathLike
from tfckpt._rules import Rules
from tfckpt._transforms import (
    Cast,
    Concat,
    Reshape,
    Split,
    TorchKernel,
    Transform,
    TransformSet,
    Transpose,
    can_cast,
    cast_array,
    check_policy,
    conv2d_kernel,
    dense_kernel,
)
from tfckpt.bundle import write
from tfckpt.dtypes import as_dtype
from tfckpt.errors import InvalidArgumentError, InvalidTypeError, TensorNotFoundError
from tfckpt.reader import OBJECT_GRAPH_KEY, load_checkpoint

__all__ = [
    "Cast",
    "Concat",
    "Mismatch",
    "Reshape",
    "RestoreReport",
    "Rules",
    "Split",
    "TorchKernel",
    "Transform",
    "TransformSet",
    "Transpose",
    "conv2d_kernel",
    "dense_kernel",
    "export_partial",
    "init_from_checkpoint",
    "restore_partial",
    "save_partial",
]

Array = np.ndarray[Any, Any]
Transforms = TransformSet | Mapping[str, Transform | Sequence[Transform]] | None


class Mismatch(NamedTuple):
    """A target value the checkpoint tensor does not fit: ``expected`` is the target's, ``got`` the checkpoint's."""

    target: str
    checkpoint: str
    expected: str
    got: str


def _listing(title: str, items: Sequence[str], limit: int = 20) -> list[str]:
    if not items:
        return []
    lines = [f"  {title}:"] + [f"    {s}" for s in items[:limit]]
    if len(items) > limit:
        lines.append(f"    ... and {len(items) - limit} more")
    return lines


@dataclass
class RestoreReport:
    """What a partial restore did.

    Attributes:
        checkpoint: the checkpoint prefix read.
        loaded: target names that received a value.
        missing: target names the checkpoint did not provide.
        unexpected: checkpoint names the rules kept but nothing in the target takes.
        skipped: checkpoint names dropped by the rules (and the TF2 object graph).
        shape_mismatches / dtype_mismatches: :class:`Mismatch` entries (nothing assigned for them).
        renamed: checkpoint name -> target name, for names that changed.
        transformed: target name -> the transforms applied (``transpose[1, 0]``, ``cast float64->float32``).
        unused_rules: one line per rule (filter pattern, ``map`` name) that matched no checkpoint
            name, e.g. ``"rule 0 (strip_prefix 'bert/') matched nothing"``: a typo shows here
            (it does not make the report fail).
        state: the restored state (the same object for mutable targets, a new one for immutable ones).
    """

    checkpoint: str = ""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    shape_mismatches: list[Mismatch] = field(default_factory=list)
    dtype_mismatches: list[Mismatch] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    transformed: dict[str, list[str]] = field(default_factory=dict)
    unused_rules: list[str] = field(default_factory=list)
    state: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mismatched."""
        return not (self.missing or self.unexpected or self.shape_mismatches or self.dtype_mismatches)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able contents (without ``state``)."""
        return {
            "checkpoint": self.checkpoint,
            "ok": self.ok,
            "loaded": list(self.loaded),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "skipped": list(self.skipped),
            "shape_mismatches": [m._asdict() for m in self.shape_mismatches],
            "dtype_mismatches": [m._asdict() for m in self.dtype_mismatches],
            "renamed": dict(self.renamed),
            "transformed": {k: list(v) for k, v in self.transformed.items()},
            "unused_rules": list(self.unused_rules),
        }

    def __str__(self) -> str:
        head = (
            f"RestoreReport from {self.checkpoint}: {len(self.loaded)} loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.shape_mismatches)} shape mismatches, "
            f"{len(self.dtype_mismatches)} dtype mismatches, {len(self.skipped)} skipped"
        )
        lines = [head]
        lines += _listing("missing (in the target, not in the checkpoint)", self.missing)
        lines += _listing("unexpected (in the checkpoint, not in the target)", self.unexpected)
        lines += _listing(
            "shape mismatches (target <- checkpoint)",
            [f"{m.target} {m.expected} <- {m.checkpoint} {m.got}" for m in self.shape_mismatches],
        )
        lines += _listing(
            "dtype mismatches (target <- checkpoint)",
            [f"{m.target} {m.expected} <- {m.checkpoint} {m.got}" for m in self.dtype_mismatches],
        )
        lines += _listing("renamed", [f"{k} -> {v}" for k, v in self.renamed.items()])
        lines += _listing("transformed", [f"{k}: {', '.join(v)}" for k, v in self.transformed.items()])
        lines += _listing("rules that matched nothing", self.unused_rules)
        return "\n".join(lines)


def _shape(s: Sequence[int]) -> str:
    return "[" + ",".join(str(int(d)) for d in s) + "]"


# One planned target value: (checkpoint names read, how to build the value from them, descriptions).
_Plan = tuple[list[str], Callable[[list[Array]], Array], list[str]]


def _plan(mapping: Mapping[str, str], ts: TransformSet) -> dict[str, _Plan]:
    by_inter = {inter: ckpt for ckpt, inter in mapping.items()}
    splits = {s.source: s for s in ts.splits}
    in_concat = {src for c in ts.concats for src in c.sources}
    plan: dict[str, _Plan] = {}

    def put(target: str, entry: _Plan) -> None:
        if target in plan:
            raise InvalidArgumentError(
                f"checkpoint tensors {'+'.join(plan[target][0])} and {'+'.join(entry[0])} both map to {target!r}",
                key=target,
            )
        plan[target] = entry

    for inter, ckpt in by_inter.items():
        if inter in splits:
            s = splits[inter]
            for i, t in enumerate(s.targets):
                put(t, ([ckpt], lambda a, s=s, i=i: s.forward(a[0])[i], [f"{s.describe()} part {i}"]))  # type: ignore[misc]
        elif inter not in in_concat:
            put(inter, ([ckpt], lambda a: a[0], []))
    for c in ts.concats:
        if all(src in by_inter for src in c.sources):
            put(c.target, ([by_inter[src] for src in c.sources], c.forward, [c.describe()]))
    return plan


def restore_partial(
    ckpt_dir_or_file: PathLike,
    target: Any,
    *,
    rules: Rules | None = None,
    transforms: Transforms = None,
    strict: bool = True,
    dtype_policy: str = "never",
    sep: str = "/",
) -> RestoreReport:
    """Restore the tensors ``rules`` select from a checkpoint into ``target``.

    Args:
        ckpt_dir_or_file: a checkpoint prefix, or a directory (its latest checkpoint).
        target: a state (mapping of name -> array/tensor, torch module, JAX pytree, ...),
            named as :func:`tfckpt._state.flatten` names it (``sep`` joins nested keys). An
            object whose ``state_dict()`` grows on loading (a fresh optimizer) takes every
            kept tensor under its name, as :meth:`tfckpt.Saver.restore` gives it.
        rules: which checkpoint names to take and their target names (default: all, unchanged).
        transforms: a :class:`TransformSet` or ``{target pattern: transform(s)}``.
        strict: raise unless every target value is loaded and every kept tensor is used.
        dtype_policy: ``"never"`` (default: dtypes must match, as in ``Saver.restore``),
            ``"safe"``, ``"same_kind"`` or ``"unsafe"`` (numpy casting rules).

    Returns:
        The report; ``report.state`` is the restored state (a new object for immutable targets).
        Only the tensors that go somewhere are read.

    Raises:
        TensorNotFoundError: with ``strict``, a target value is missing from the checkpoint.
        InvalidArgumentError: with ``strict``, unexpected tensors or shape/dtype mismatches;
            always, conflicting rules (two names to one target). Nothing is assigned then.
    """
    rules = _rules_arg(rules)
    ts = TransformSet.coerce(transforms)
    check_policy(dtype_policy)
    leaves = _state.flatten(target, sep=sep)
    grows = _state.expandable_prefixes(target, sep=sep)  # optimizers: their saved state is taken whole

    def grown(name: str) -> bool:
        return any(not p or name.startswith(p + sep) for p in grows)

    with load_checkpoint(ckpt_dir_or_file) as reader:
        report = RestoreReport(checkpoint=reader.prefix)
        names = sorted(reader.get_variable_to_shape_map())
        usage = rules.usage()
        mapping = usage.apply_all(n for n in names if n != OBJECT_GRAPH_KEY)
        report.unused_rules = usage.unused()
        report.skipped = [n for n in names if n not in mapping]
        plan = _plan(mapping, ts)
        used = {c for entry in plan.values() for c in entry[0]}
        report.unexpected = [c for c in mapping if c not in used]
        report.missing = [t for t in leaves if t not in plan]
        values: dict[str, Array] = {}
        for t, (ckpts, build, steps) in plan.items():
            if t not in leaves and not grown(t):
                report.unexpected.extend(c for c in ckpts if c not in report.unexpected)
                continue
            for c in ckpts:
                if c != t:
                    report.renamed[c] = f"{report.renamed[c]}+{t}" if c in report.renamed else t
            source = ckpts[0] if len(ckpts) == 1 else "+".join(ckpts)
            steps = list(steps)
            try:
                value = build([_as_array(reader.get_tensor(c)) for c in ckpts])
                for tr in ts.for_name(t):
                    value = tr.forward(value)
                    steps.append(tr.describe())
            except InvalidArgumentError as e:
                if e.key is not None and e.path is not None:
                    raise
                raise InvalidArgumentError(f"restoring {t!r} from {source!r} of checkpoint {reader.prefix}: "
                                           f"{e.message}", key=t, path=reader.prefix) from None
            if t not in leaves:  # (new state of an optimizer: nothing to check it against)
                values[t] = value
                report.loaded.append(t)
                continue
            want_dtype, want_shape = _state.leaf_spec(leaves[t])
            if want_shape is not None and tuple(value.shape) != want_shape:
                report.shape_mismatches.append(Mismatch(t, source, _shape(want_shape), _shape(value.shape)))
                continue
            got = as_dtype(value.dtype)
            if want_dtype is not None and got != want_dtype:
                if not can_cast(got, want_dtype, dtype_policy):
                    report.dtype_mismatches.append(Mismatch(t, source, want_dtype.name, got.name))
                    continue
                value = cast_array(value, want_dtype, dtype_policy, name=t)
                steps.append(f"cast {got.name}->{want_dtype.name}")
            if steps:
                report.transformed[t] = steps
            values[t] = value
            report.loaded.append(t)
    report.unexpected.sort()
    if strict and not report.ok:
        msg = f"restore_partial failed (strict=True):\n{report}"
        if report.missing:
            raise TensorNotFoundError(msg, key=report.missing[0])
        raise InvalidArgumentError(msg)
    report.state = _state.assign(target, values, strict=False, sep=sep, source=report.checkpoint)
    return report


def _rules_arg(rules: object) -> Rules:
    """``rules`` (None: keep every name), checked to be a :class:`Rules`."""
    if rules is None:
        return Rules()
    if not isinstance(rules, Rules):
        hint = (" (for renames use tfckpt.Rules().map({...}) for whole names, or .sub()/.strip_prefix()/"
                ".add_prefix() for scopes)" if isinstance(rules, Mapping) else "")
        raise InvalidTypeError(f"rules must be a tfckpt.Rules, got {type(rules).__name__}{hint}")
    return rules


def _leaf_array(leaf: object) -> Array:
    if _state._is_variable(leaf):
        return np.asarray(leaf.numpy() if hasattr(leaf, "numpy") else leaf.value())  # type: ignore[attr-defined]
    return to_array(leaf)[1]


def export_partial(
    state: Any,
    *,
    rules: Rules | None = None,
    transforms: Transforms = None,
    strict: bool = True,
    sep: str = "/",
) -> dict[str, Array]:
    """Checkpoint name -> array for ``state``: the transforms undone, the rules inverted.

    The inverse of :func:`restore_partial` with the same ``rules`` and ``transforms``:
    restoring and exporting again gives back the original bytes.

    Raises:
        InvalidArgumentError: a rule or transform cannot be undone; with ``strict``, a name
            the rules cannot map back, or a split with some of its parts absent.
    """
    rules = _rules_arg(rules)
    ts = TransformSet.coerce(transforms)
    split_of = {t: s for s in ts.splits for t in s.targets}
    concat_of = {c.target: c for c in ts.concats}
    inter: dict[str, Array] = {}
    parts: dict[str, Array] = {}
    for name, leaf in _state.flatten(state, sep=sep).items():
        arr = ts.inverse(name, _leaf_array(leaf))
        if name in split_of:
            parts[name] = arr
        elif name in concat_of:
            c = concat_of[name]
            inter.update(zip(c.sources, c.inverse(arr)))
        else:
            inter[name] = arr
    for s in ts.splits:
        have = [t for t in s.targets if t in parts]
        if len(have) == len(s.targets):
            inter[s.source] = s.inverse([parts[t] for t in s.targets])
        elif have and strict:
            lacking = [t for t in s.targets if t not in parts]
            raise InvalidArgumentError(f"cannot rebuild {s.source!r}: missing parts {lacking}", key=s.source)
    if not strict:
        inv = rules.inverse()
        inter = {k: v for k, v in inter.items() if (old := inv.apply(k)) is not None and rules.apply(old) == k}
    back = rules.invert_names(inter)
    return {back[k]: v for k, v in inter.items()}


def save_partial(
    state: Any,
    prefix: PathLike,
    *,
    rules: Rules | None = None,
    transforms: Transforms = None,
    strict: bool = True,
    sep: str = "/",
) -> str:
    """Write :func:`export_partial` ``(state, ...)`` as a checkpoint at ``prefix``; return the prefix.

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> from tfckpt._transforms import dense_kernel
        >>> rules = Rules().map({"dense/kernel": "fc.weight"})
        >>> p = save_partial({"fc.weight": np.ones((3, 2), np.float32)}, os.path.join(tempfile.mkdtemp(), "ckpt"),
        ...                  rules=rules, transforms={"fc.weight": dense_kernel()})
        >>> tfckpt.list_variables(p)
        [('dense/kernel', [2, 3])]
    """
    return write(export_partial(state, rules=rules, transforms=transforms, strict=strict, sep=sep), prefix)
