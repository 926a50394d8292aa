"""Retention policies: which checkpoints to keep, as pure objects without I/O.

Two policies reproduce TensorFlow exactly:

* :class:`SaverRetention` -- ``tf.compat.v1.train.Saver``: ``max_to_keep`` most recent
  checkpoints; on each save at most one is evicted, and an evicted checkpoint is kept
  (preserved, no longer tracked) when its timestamp is past a fixed grid of
  ``keep_checkpoint_every_n_hours`` periods that starts at construction time.
* :class:`ManagerRetention` -- ``tf.train.CheckpointManager``: every checkpoint beyond
  ``max_to_keep`` is swept at once; one is preserved when it is at least
  ``keep_checkpoint_every_n_hours`` newer than the last preserved one.

Both take timestamps from the caller (so tests use a fake clock) and answer with
:class:`Eviction` records; the caller deletes files. New policies (best-k by metric,
every-N-steps, pinning) subclass :class:`RetentionPolicy` and override
:meth:`RetentionPolicy.evict`.

Example:
    >>> p = SaverRetention(max_to_keep=2, keep_every_secs=10000 * 3600.0, now=0.0)
    >>> for i in range(1, 4):
    ...     p.record(f"ckpt-{i}", float(i))
    >>> p.paths, p.evict()
    (['ckpt-2', 'ckpt-3'], [Eviction(path='ckpt-1', timestamp=1.0, keep=False)])
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

from tfckpt.errors import InvalidTypeError

__all__ = ["Eviction", "ManagerRetention", "RetentionPolicy", "SaverRetention", "check_options", "wall_clock"]


def wall_clock() -> float:
    """``time.time()``, looked up at each call (so a test that patches ``time.time`` after a
    Saver or CheckpointManager is made still moves their clock, as it moves TensorFlow's)."""
    return time.time()


def check_options(max_to_keep: object, keep_checkpoint_every_n_hours: object) -> None:
    """Reject retention options of the wrong type when the saver is made (TensorFlow fails later,
    in protobuf or arithmetic, with a bare ``TypeError``); ``None`` is allowed for both.

    Example:
        >>> check_options(5, 0.5)
        >>> check_options("5", None)
        Traceback (most recent call last):
        ...
        tfckpt.errors.InvalidTypeError: max_to_keep must be an int or None, got str: '5'

    Raises:
        InvalidTypeError: ``max_to_keep`` is not an integer, or the hours are not a number (or NaN).
    """
    if max_to_keep is not None and not isinstance(max_to_keep, numbers.Integral):
        raise InvalidTypeError(f"max_to_keep must be an int or None, got {type(max_to_keep).__name__}: "
                               f"{max_to_keep!r:.80}")
    hours = keep_checkpoint_every_n_hours
    if hours is not None and (not isinstance(hours, numbers.Real) or math.isnan(hours)):
        raise InvalidTypeError(f"keep_checkpoint_every_n_hours must be a number of hours or None, got "
                               f"{type(hours).__name__}: {hours!r:.80}")


@dataclass(frozen=True, slots=True)
class Eviction:
    """A checkpoint leaving the tracked list: delete its files unless ``keep``."""

    path: str
    timestamp: float
    keep: bool


class RetentionPolicy:
    """Tracks ``(path, timestamp)`` pairs, oldest first; subclasses decide evictions."""

    def __init__(self, max_to_keep: int | None) -> None:
        self.max_to_keep = max_to_keep
        self.entries: list[tuple[str, float]] = []

    @property
    def paths(self) -> list[str]:
        """Tracked paths, oldest to newest."""
        return [p for p, _ in self.entries]

    @property
    def timestamps(self) -> list[float]:
        return [t for _, t in self.entries]

    def _touch(self, path: str, timestamp: float) -> None:
        self.entries = [e for e in self.entries if e[0] != path]
        self.entries.append((path, timestamp))

    def record(self, path: str, timestamp: float) -> None:
        """A checkpoint was written at ``timestamp`` (re-saving a path moves it to the end)."""
        self._touch(path, timestamp)

    def evict(self) -> list[Eviction]:
        """Decide which checkpoints leave the tracked list (called after :meth:`record`)."""
        raise NotImplementedError


class SaverRetention(RetentionPolicy):
    """``tf.compat.v1.train.Saver``'s rules.

    ``max_to_keep`` 0 or None tracks nothing and deletes nothing. A negative value (not
    validated by TensorFlow either) evicts the checkpoint just saved. ``keep_every_secs``
    is ``keep_checkpoint_every_n_hours * 3600``; ``now`` is the construction time.
    """

    def __init__(self, max_to_keep: int | None, keep_every_secs: float, now: float) -> None:
        super().__init__(max_to_keep or 0)
        self.keep_every_secs = keep_every_secs
        self.next_keep_time = now + keep_every_secs
        self._queue: list[tuple[str, float]] = []

    def record(self, path: str, timestamp: float) -> None:
        if not self.max_to_keep:
            return
        self._touch(path, timestamp)
        if len(self.entries) > self.max_to_keep:
            self._queue.append(self.entries.pop(0))

    def evict(self) -> list[Eviction]:
        """At most one eviction per call (TensorFlow's ``_MaybeDeleteOldCheckpoints``)."""
        if not self._queue:
            return []
        path, ts = self._queue.pop(0)
        if ts > self.next_keep_time:
            self.next_keep_time += self.keep_every_secs
            return [Eviction(path, ts, True)]
        return [Eviction(path, ts, False)]

    def set_entries(self, entries: list[tuple[str, float]]) -> None:
        """Replace the tracked list (``set_last_checkpoints_with_time``)."""
        self.entries = list(entries)


class ManagerRetention(RetentionPolicy):
    """``tf.train.CheckpointManager``'s rules (see :meth:`recover` for the restart logic)."""

    def __init__(self, max_to_keep: int | None, keep_checkpoint_every_n_hours: float | None,
                 last_preserved_timestamp: float) -> None:
        super().__init__(max_to_keep)
        self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self.last_preserved_timestamp = last_preserved_timestamp

    @classmethod
    def recover(cls, max_to_keep: int | None, keep_checkpoint_every_n_hours: float | None, now: float,
                paths: list[str] | None, timestamps: list[float] | None,
                last_preserved_timestamp: float | None) -> tuple[ManagerRetention, bool]:
        """Rebuild from a state file's lists (``paths`` None: no state file).

        Returns the policy and whether the clock was found behind the last preserved timestamp.
        """
        if paths is None:
            return cls(max_to_keep, keep_checkpoint_every_n_hours, now - 1), False
        last = last_preserved_timestamp or 0.0
        behind = now < last
        if behind:
            last = now
        ts = list(timestamps or [])
        policy = cls(max_to_keep, keep_checkpoint_every_n_hours, last)
        for i, p in enumerate(paths):
            t = min(ts[i] if i < len(ts) else last, now)
            if t > last:
                policy.entries.append((p, t))
        return policy, behind

    def evict(self) -> list[Eviction]:
        if not self.max_to_keep:
            return []
        out: list[Eviction] = []
        while len(self.entries) > self.max_to_keep:
            path, ts = self.entries.pop(0)
            hours = self.keep_checkpoint_every_n_hours
            if hours and ts - hours * 3600.0 >= self.last_preserved_timestamp:
                self.last_preserved_timestamp = ts
                out.append(Eviction(path, ts, True))
            else:
                out.append(Eviction(path, ts, False))
        return out
