"""Ordered rename rules: which checkpoint tensors to take, and under what name.

A :class:`Rules` object is a pipeline of steps applied in order to a name.
Filters (``include``/``exclude``) drop a name; rewrites (``sub``,
``strip_prefix``, ``add_prefix``, ``strip_suffix``, ``add_suffix``, ``map``)
change it. ``apply(name)`` returns the final name, or ``None`` when a filter
dropped it. A filter sees the name as the steps before it left it.

Patterns are globs (``fnmatch``: ``*`` also matches ``/``) or, with a ``re:``
prefix, regular expressions that must match the whole name.

File format (``Rules.from_file`` / ``to_dict``): JSON, either a list of steps
or ``{"rules": [steps]}``; each step is a one-key object, plus an optional
``"inverse"`` for ``sub``::

    {"rules": [
      {"include": ["bert/*"]},
      {"exclude": ["re:.*/adam_[mv]$", "global_step"]},
      {"sub": ["layer_(\\\\d+)", "layer.\\\\1"], "inverse": ["layer\\\\.(\\\\d+)", "layer_\\\\1"]},
      {"strip_prefix": "bert/"},
      {"add_prefix": "model."},
      {"map": {"old/name": "new.name"}}
    ]}

Example:
    >>> r = Rules().include("bert/*").exclude(r"re:.*adam_[mv]$").strip_prefix("bert/").sub("/", ".")
    >>> r.apply("bert/pooler/dense/kernel"), r.apply("bert/pooler/dense/kernel/adam_m"), r.apply("global_step")
    ('pooler.dense.kernel', None, None)
    >>> r2 = Rules().strip_prefix("bert/").sub("/", ".", inverse=("[.]", "/"))
    >>> r2.inverse().apply("pooler.dense.kernel")
    'bert/pooler/dense/kernel'
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfckpt._paths import PathLike, as_path
from tfckpt.errors import InvalidArgumentError, NotFoundError

__all__ = ["Pattern", "Rules"]

_KINDS = ("include", "exclude", "sub", "strip_prefix", "add_prefix", "strip_suffix", "add_suffix", "map")


class Pattern:
    """A glob (``"bert/*"``) or, prefixed with ``re:``, a full-match regex (``"re:.*adam_[mv]$"``).

    Example:
        >>> Pattern(r"re:layer_\\d+").matches("layer_12"), Pattern("a/*").matches("a/b/c")
        (True, True)
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidArgumentError(f"a pattern must be a string, got {type(text).__name__}")
        self.text = text
        source = text[3:] if text.startswith("re:") else fnmatch.translate(text)
        try:
            self._re = re.compile(source)
        except re.error as e:
            raise InvalidArgumentError(f"bad pattern {text!r}: {e}") from None

    def matches(self, name: str) -> bool:
        """True if the whole ``name`` matches."""
        return self._re.fullmatch(name) is not None

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


@dataclass(frozen=True)
class _Step:
    kind: str
    patterns: tuple[Pattern, ...] = ()
    text: str = ""
    repl: str = ""
    inverse: tuple[str, str] | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind in ("include", "exclude"):
            return f"{self.kind} {', '.join(repr(p.text) for p in self.patterns)}"
        if self.kind == "sub":
            return f"sub {self.text!r} -> {self.repl!r}"
        if self.kind == "map":
            return f"map of {len(self.mapping)} names"
        return f"{self.kind} {self.text!r}"

    def run(self, name: str) -> str | None:
        k = self.kind
        if k == "include":
            return name if any(p.matches(name) for p in self.patterns) else None
        if k == "exclude":
            return None if any(p.matches(name) for p in self.patterns) else name
        if k == "sub":
            try:
                return self.patterns[0]._re.sub(self.repl, name)
            except (re.error, IndexError) as e:
                raise InvalidArgumentError(f"bad substitution {self.text!r} -> {self.repl!r}: {e}") from None
        if k == "strip_prefix":
            return name[len(self.text):] if name.startswith(self.text) else name
        if k == "add_prefix":
            return self.text + name
        if k == "strip_suffix":
            return name[: len(name) - len(self.text)] if self.text and name.endswith(self.text) else name
        if k == "add_suffix":
            return name + self.text
        return self.mapping.get(name, name)

    def to_dict(self) -> dict[str, Any]:
        if self.kind in ("include", "exclude"):
            return {self.kind: [p.text for p in self.patterns]}
        if self.kind == "sub":
            d: dict[str, Any] = {"sub": [self.text, self.repl]}
            if self.inverse is not None:
                d["inverse"] = list(self.inverse)
            return d
        if self.kind == "map":
            return {"map": dict(self.mapping)}
        return {self.kind: self.text}


class Rules:
    """An ordered list of include/exclude filters and renames; builder methods return ``self``.

    ``Rules()`` with no steps takes every name unchanged.
    """

    def __init__(self, steps: Iterable[_Step] = ()) -> None:
        self._steps: list[_Step] = list(steps)

    # -- building ----------------------------------------------------------

    def _add(self, step: _Step) -> Rules:
        self._steps.append(step)
        return self

    def include(self, *patterns: str) -> Rules:
        """Keep only names matching one of ``patterns`` (at this point of the pipeline)."""
        if not patterns:
            raise InvalidArgumentError("include() needs at least one pattern")
        return self._add(_Step("include", tuple(Pattern(p) for p in patterns)))

    def exclude(self, *patterns: str) -> Rules:
        """Drop names matching any of ``patterns``."""
        if not patterns:
            raise InvalidArgumentError("exclude() needs at least one pattern")
        return self._add(_Step("exclude", tuple(Pattern(p) for p in patterns)))

    def sub(self, pattern: str, repl: str, *, inverse: tuple[str, str] | None = None) -> Rules:
        """Replace every match of the regex ``pattern`` (``re.sub``); ``inverse`` undoes it for saving."""
        if inverse is not None:
            if len(inverse) != 2 or not all(isinstance(s, str) for s in inverse):
                raise InvalidArgumentError(f"inverse of sub {pattern!r} must be (pattern, repl), got {inverse!r}")
            inverse = (str(inverse[0]), str(inverse[1]))
        pat = Pattern("re:" + pattern)
        return self._add(_Step("sub", (pat,), text=pattern, repl=repl, inverse=inverse))

    def strip_prefix(self, prefix: str) -> Rules:
        """Remove ``prefix`` from names that start with it (others pass unchanged)."""
        return self._add(_Step("strip_prefix", text=str(prefix)))

    def add_prefix(self, prefix: str) -> Rules:
        """Put ``prefix`` in front of every name."""
        return self._add(_Step("add_prefix", text=str(prefix)))

    def strip_suffix(self, suffix: str) -> Rules:
        """Remove ``suffix`` from names that end with it (others pass unchanged)."""
        return self._add(_Step("strip_suffix", text=str(suffix)))

    def add_suffix(self, suffix: str) -> Rules:
        """Append ``suffix`` to every name."""
        return self._add(_Step("add_suffix", text=str(suffix)))

    def map(self, mapping: Mapping[str, str]) -> Rules:
        """Rename exact names (``{"old": "new"}``); other names pass unchanged."""
        if not isinstance(mapping, Mapping):
            raise InvalidArgumentError(f"map() takes a mapping, got {type(mapping).__name__}")
        return self._add(_Step("map", mapping={str(k): str(v) for k, v in mapping.items()}))

    # -- using -------------------------------------------------------------

    @property
    def steps(self) -> list[str]:
        """One readable line per step."""
        return [s.describe() for s in self._steps]

    def apply(self, name: str) -> str | None:
        """The new name for ``name``, or ``None`` when a filter drops it."""
        out = name
        for step in self._steps:
            new = step.run(out)
            if new is None:
                return None
            out = new
        return out

    def apply_all(self, names: Iterable[str]) -> dict[str, str]:
        """``{old: new}`` for every kept name (in input order).

        Raises:
            InvalidArgumentError: two names map to one new name (both are named).
        """
        out: dict[str, str] = {}
        seen: dict[str, str] = {}
        for n in names:
            new = self.apply(n)
            if new is None:
                continue
            if new in seen and seen[new] != n:
                raise InvalidArgumentError(
                    f"rules map both {seen[new]!r} and {n!r} to {new!r}", key=new
                )
            seen[new] = n
            out[n] = new
        return out

    def inverse(self) -> Rules:
        """Rules mapping new names back to old ones (steps reversed, each undone).

        Filters stay filters (they see the same intermediate name on the way back);
        ``map`` must be one-to-one and ``sub`` needs its ``inverse=``. The result is
        only right for names this object produces: check with :meth:`invert_names`.

        Raises:
            InvalidArgumentError: a step cannot be undone.
        """
        undo = {"strip_prefix": "add_prefix", "add_prefix": "strip_prefix",
                "strip_suffix": "add_suffix", "add_suffix": "strip_suffix"}
        steps: list[_Step] = []
        for i in range(len(self._steps) - 1, -1, -1):
            s = self._steps[i]
            if s.kind in ("include", "exclude"):
                steps.append(s)
            elif s.kind in undo:
                steps.append(_Step(undo[s.kind], text=s.text))
            elif s.kind == "sub":
                if s.inverse is None:
                    raise InvalidArgumentError(
                        f"rule {i} ({s.describe()}) has no inverse: give sub(pattern, repl, inverse=(pattern, repl))"
                    )
                steps.append(Rules().sub(s.inverse[0], s.inverse[1], inverse=(s.text, s.repl))._steps[0])
            else:
                back: dict[str, str] = {}
                for k, v in s.mapping.items():
                    if v in back:
                        raise InvalidArgumentError(
                            f"rule {i} (map) cannot be inverted: both {back[v]!r} and {k!r} map to {v!r}", key=v
                        )
                    back[v] = k
                steps.append(_Step("map", mapping=back))
        return Rules(steps)

    def invert_names(self, new_names: Iterable[str]) -> dict[str, str]:
        """``{new: old}`` for ``new_names``, checking that ``apply(old) == new`` for each.

        Raises:
            InvalidArgumentError: a name cannot be mapped back exactly.
        """
        inv = self.inverse()
        out: dict[str, str] = {}
        for new in new_names:
            old = inv.apply(new)
            if old is None or self.apply(old) != new:
                raise InvalidArgumentError(
                    f"cannot map {new!r} back to a checkpoint name: the inverse rules give {old!r}, "
                    f"which maps to {None if old is None else self.apply(old)!r}",
                    key=new,
                )
            out[new] = old
        return out

    # -- serialisation -----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form read back by :meth:`from_dict` (``{"rules": [...]}``)."""
        return {"rules": [s.to_dict() for s in self._steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Rules:
        """Rules from ``{"rules": [steps]}`` or a list of steps (see the module docstring).

        Raises:
            InvalidArgumentError: an unknown step or a malformed argument.
        """
        if isinstance(data, Mapping):
            extra = set(data) - {"rules"}
            if extra or "rules" not in data:
                raise InvalidArgumentError(f"rules must be {{'rules': [...]}}, got keys {sorted(data)}")
            data = data["rules"]
        if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
            raise InvalidArgumentError(f"rules must be a list of steps, got {type(data).__name__}")
        r = cls()
        for i, step in enumerate(data):
            if not isinstance(step, Mapping):
                raise InvalidArgumentError(f"rule {i}: expected an object, got {step!r}")
            kinds = [k for k in step if k in _KINDS]
            unknown = [k for k in step if k not in _KINDS and k != "inverse"]
            if len(kinds) != 1 or unknown or ("inverse" in step and kinds != ["sub"]):
                raise InvalidArgumentError(f"rule {i}: expected exactly one of {', '.join(_KINDS)}, got {dict(step)!r}")
            kind = kinds[0]
            arg = step[kind]
            try:
                if kind in ("include", "exclude"):
                    pats = [arg] if isinstance(arg, str) else list(arg)
                    getattr(r, kind)(*pats)
                elif kind == "sub":
                    inv = step.get("inverse")
                    if not isinstance(arg, Sequence) or isinstance(arg, str) or len(arg) != 2:
                        raise InvalidArgumentError(f"'sub' takes [pattern, repl], got {arg!r}")
                    r.sub(arg[0], arg[1], inverse=None if inv is None else (inv[0], inv[1]))
                elif kind == "map":
                    r.map(arg)
                else:
                    if not isinstance(arg, str):
                        raise InvalidArgumentError(f"{kind!r} takes a string, got {arg!r}")
                    getattr(r, kind)(arg)
            except (InvalidArgumentError, TypeError, IndexError, KeyError) as e:
                raise InvalidArgumentError(f"rule {i} ({kind}): {e}") from None
        return r

    @classmethod
    def from_file(cls, path: PathLike) -> Rules:
        """Rules from a JSON file (format in the module docstring).

        Raises:
            NotFoundError: no such file.
            InvalidArgumentError: not JSON, or not valid rules.
        """
        p = as_path(path, "path")
        try:
            with open(p, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise NotFoundError(f"rules file {p} not found", path=p) from None
        except OSError as e:
            raise InvalidArgumentError(f"cannot read rules file {p}: {e}", path=p) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError(f"rules file {p} is not JSON: {e}", path=p) from None
        try:
            return cls.from_dict(data)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"rules file {p}: {e.message}", path=p) from None

    def __len__(self) -> int:
        return len(self._steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rules) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Rules(" + "; ".join(self.steps) + ")"
