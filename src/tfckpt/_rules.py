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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfckpt._paths import PathLike, as_path
from tfckpt.errors import InvalidArgumentError, InvalidTypeError, NotFoundError

__all__ = ["Pattern", "RuleUsage", "Rules"]

_KINDS = ("include", "exclude", "sub", "strip_prefix", "add_prefix", "strip_suffix", "add_suffix", "map")


def _check_str(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidTypeError(f"{what} must be a string, got {value!r}")


def _check_sub(pattern: str, repl: str) -> Pattern:
    """The compiled ``pattern``, after checking that ``repl`` is a valid template for it."""
    pat = Pattern("re:" + pattern)
    try:
        pat._re.sub(repl, "")  # (the template is compiled, and checked against the groups, even without a match)
    except (re.error, IndexError) as e:
        raise InvalidArgumentError(f"bad substitution {pattern!r} -> {repl!r}: {e}") from None
    return pat


def _is_str_pair(x: object) -> bool:
    return isinstance(x, list) and len(x) == 2 and all(isinstance(s, str) for s in x)


def _show(step: object) -> str:
    """A rule as it reads in its JSON file (shortened)."""
    try:
        text = json.dumps(step, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(step)
    return text if len(text) <= 200 else text[:197] + "..."


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


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

    def run_hit(self, name: str, used: list[bool]) -> tuple[str | None, bool]:
        """Like :meth:`run`, also telling whether the step matched ``name``; for filters,
        ``used[j]`` is set for every pattern ``j`` that matches (for ``map``, ``used`` is unused)."""
        k = self.kind
        if k in ("include", "exclude"):
            hit = False
            for j, p in enumerate(self.patterns):
                if (hit and used[j]) or not p.matches(name):
                    continue  # (a pattern already seen matching is not tried again after a hit)
                used[j] = hit = True
            if k == "include":
                return (name if hit else None), hit
            return (None if hit else name), hit
        if k == "sub":
            try:
                new, n = self.patterns[0]._re.subn(self.repl, name)
            except (re.error, IndexError) as e:
                raise InvalidArgumentError(f"bad substitution {self.text!r} -> {self.repl!r}: {e}") from None
            return new, n > 0
        if k == "strip_prefix":
            hit = name.startswith(self.text)
        elif k == "strip_suffix":
            hit = bool(self.text) and name.endswith(self.text)
        elif k == "map":
            hit = name in self.mapping
        else:
            hit = True
        return self.run(name), hit

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
        """Replace every match of the regex ``pattern`` (``re.sub``); ``inverse`` undoes it for saving.

        Raises:
            InvalidArgumentError: ``pattern`` or ``repl`` is not a string or not valid (a bad
                escape, a group the pattern does not have); a malformed ``inverse``.
        """
        _check_str(pattern, "the pattern of sub")
        _check_str(repl, f"the repl of sub {pattern!r}")
        if inverse is not None:
            if (not isinstance(inverse, (tuple, list)) or len(inverse) != 2
                    or not all(isinstance(s, str) for s in inverse)):
                raise InvalidTypeError(f"inverse of sub {pattern!r} must be (pattern, repl), got {inverse!r}")
            inverse = (inverse[0], inverse[1])
            _check_sub(*inverse)
        pat = _check_sub(pattern, repl)
        return self._add(_Step("sub", (pat,), text=pattern, repl=repl, inverse=inverse))

    def strip_prefix(self, prefix: str) -> Rules:
        """Remove ``prefix`` from names that start with it (others pass unchanged)."""
        _check_str(prefix, "strip_prefix")
        return self._add(_Step("strip_prefix", text=prefix))

    def add_prefix(self, prefix: str) -> Rules:
        """Put ``prefix`` in front of every name."""
        _check_str(prefix, "add_prefix")
        return self._add(_Step("add_prefix", text=prefix))

    def strip_suffix(self, suffix: str) -> Rules:
        """Remove ``suffix`` from names that end with it (others pass unchanged)."""
        _check_str(suffix, "strip_suffix")
        return self._add(_Step("strip_suffix", text=suffix))

    def add_suffix(self, suffix: str) -> Rules:
        """Append ``suffix`` to every name."""
        _check_str(suffix, "add_suffix")
        return self._add(_Step("add_suffix", text=suffix))

    def map(self, mapping: Mapping[str, str]) -> Rules:
        """Rename exact names (``{"old": "new"}``); other names pass unchanged."""
        if not isinstance(mapping, Mapping):
            raise InvalidTypeError(f"map() takes a mapping, got {type(mapping).__name__}")
        for k, v in mapping.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidTypeError(f"map() takes names (strings) to names, got {k!r}: {v!r}")
        return self._add(_Step("map", mapping=dict(mapping)))

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

    def usage(self) -> RuleUsage:
        """A :class:`RuleUsage` that applies these rules and records which of them matched.

        Example:
            >>> u = Rules().strip_prefix("bert/").strip_prefix("roberta/").usage()
            >>> u.apply("bert/w"), u.unused()
            ('w', ["rule 1 (strip_prefix 'roberta/') matched nothing"])
        """
        return RuleUsage(self._steps)

    def apply_all(self, names: Iterable[str]) -> dict[str, str]:
        """``{old: new}`` for every kept name (in input order).

        Raises:
            InvalidArgumentError: two names map to one new name (both are named).
        """
        return _apply_all(self.apply, names)

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
                    if isinstance(arg, str):
                        arg = [arg]
                    if not isinstance(arg, list) or not all(isinstance(a, str) for a in arg):
                        raise InvalidTypeError(f"{kind!r} takes a pattern or a list of patterns (strings), got {arg!r}")
                    getattr(r, kind)(*arg)
                elif kind == "sub":
                    inv = step.get("inverse")
                    if not _is_str_pair(arg):
                        raise InvalidTypeError(f"'sub' takes [pattern, repl], got {arg!r} (two strings)")
                    if inv is not None and not _is_str_pair(inv):
                        raise InvalidTypeError(f"'inverse' takes [pattern, repl], got {inv!r} (two strings)")
                    r.sub(arg[0], arg[1], inverse=None if inv is None else (inv[0], inv[1]))
                elif kind == "map":
                    if not isinstance(arg, Mapping):
                        raise InvalidTypeError(f"'map' takes an object of old name -> new name, got {arg!r}")
                    r.map(arg)
                else:
                    if not isinstance(arg, str):
                        raise InvalidTypeError(f"{kind!r} takes a string, got {arg!r}")
                    getattr(r, kind)(arg)
            except InvalidArgumentError as e:
                raise InvalidArgumentError(f"rule {i} ({kind}): {e.message}; the rule: {_show(step)}") from None
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
        except UnicodeDecodeError as e:
            raise InvalidArgumentError(f"rules file {p} is not UTF-8 text: {e}", path=p) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError(f"rules file {p} is not JSON: {e}", path=p) from None
        except RecursionError:
            raise InvalidArgumentError(f"rules file {p}: JSON nested too deeply", path=p) from None
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


def _apply_all(apply: Callable[[str], str | None], names: Iterable[str]) -> dict[str, str]:
    """``{old: new}`` for every name ``apply`` keeps (see :meth:`Rules.apply_all`)."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for n in names:
        new = apply(n)
        if new is None:
            continue
        if new in seen and seen[new] != n:
            raise InvalidArgumentError(f"rules map both {seen[new]!r} and {n!r} to {new!r}", key=new)
        seen[new] = n
        out[n] = new
    return out


class RuleUsage:
    """Applies a :class:`Rules`' steps like :meth:`Rules.apply` and records which matched a name.

    A step *matches* a name that reaches it when it acts on it: a filter pattern matches it,
    a ``sub`` pattern is found in it, the name starts (ends) with a ``strip_prefix``
    (``strip_suffix``), it is a key of a ``map``; ``add_prefix``/``add_suffix`` match every
    name that reaches them. The bookkeeping is a flag per step (and per pattern / map key),
    so tracking costs next to nothing. Get one from :meth:`Rules.usage`.
    """

    def __init__(self, steps: Sequence[_Step]) -> None:
        self._steps = list(steps)
        self._hit = [False] * len(self._steps)
        self._used: list[list[bool]] = [[False] * len(s.patterns) if s.kind in ("include", "exclude") else []
                                        for s in self._steps]
        self._keys: list[set[str]] = [set() for _ in self._steps]

    def apply(self, name: str) -> str | None:
        """The new name for ``name`` (as :meth:`Rules.apply`), recording the steps it matched."""
        out = name
        for i, step in enumerate(self._steps):
            new, hit = step.run_hit(out, self._used[i])
            if hit:
                self._hit[i] = True
                if step.kind == "map":
                    self._keys[i].add(out)
            if new is None:
                return None
            out = new
        return out

    def apply_all(self, names: Iterable[str]) -> dict[str, str]:
        """:meth:`Rules.apply_all`, recording the steps the names matched."""
        return _apply_all(self.apply, names)

    def unused(self) -> list[str]:
        """One line per step that matched no name so far, and per filter pattern or ``map``
        name that did not (``"rule 2 (strip_prefix 'bert/') matched nothing"``)."""
        out: list[str] = []
        for i, step in enumerate(self._steps):
            head = f"rule {i} ({step.describe()})"
            if not self._hit[i]:
                out.append(f"{head} matched nothing")
            elif step.kind in ("include", "exclude"):
                idle = [p.text for p, u in zip(step.patterns, self._used[i]) if not u]
                if idle:
                    word = "pattern" if len(idle) == 1 else "patterns"
                    out.append(f"{head}: {word} {_names(idle)} matched nothing")
            elif step.kind == "map" and len(self._keys[i]) < len(step.mapping):
                idle = [k for k in step.mapping if k not in self._keys[i]]
                out.append(f"{head}: {_names(idle)} matched nothing")
        return out
