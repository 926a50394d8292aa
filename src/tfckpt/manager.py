"""``tf.train.CheckpointManager`` and ``tf.train.checkpoints_iterator`` for numpy, PyTorch and JAX state.

The manager numbers checkpoints ``<directory>/<checkpoint_name>-<n>``, keeps the newest
``max_to_keep`` (plus one per ``keep_checkpoint_every_n_hours``), and writes the
``checkpoint`` state file with timestamps and ``last_preserved_timestamp`` exactly as
TensorFlow 2 does, so a TensorFlow manager and this one can take turns on one directory.

The save counter (TensorFlow's ``Checkpoint.save_counter``) is stored in each checkpoint
under the key ``save_counter``; a new manager starts from the latest checkpoint's counter
(TensorFlow keeps it in the Checkpoint object, so a new process that does not restore would
start again at 1 and overwrite ``ckpt-1``), and :meth:`CheckpointManager.restore` resets it
to the restored checkpoint's.

Example:
    >>> import numpy as np, tempfile
    >>> state = {"w": np.zeros(2, np.float32)}
    >>> m = CheckpointManager(state, tempfile.mkdtemp(), max_to_keep=2)
    >>> [os.path.basename(m.save()) for _ in range(3)]
    ['ckpt-1', 'ckpt-2', 'ckpt-3']
    >>> [os.path.basename(p) for p in m.checkpoints]
    ['ckpt-2', 'ckpt-3']
"""

from __future__ import annotations

import logging
import numbers
import os
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from tfckpt._convert import to_array
from tfckpt._paths import PathLike, as_path
from tfckpt._retention import ManagerRetention, check_options, wall_clock
from tfckpt.checkpoint_management import (
    checkpoint_exists,
    get_checkpoint_state,
    latest_checkpoint,
    remove_checkpoint,
    update_checkpoint_state_internal,
)
from tfckpt.errors import (
    CheckpointError,
    FailedPreconditionError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
)
from tfckpt.reader import CheckpointReader
from tfckpt.saver import SAVE_COUNTER_KEY, Saver

__all__ = ["CheckpointManager", "checkpoints_iterator", "wait_for_new_checkpoint"]

logger = logging.getLogger("tfckpt")


# The manager of this process that writes into each directory (see CheckpointManager.save).
_WRITERS: weakref.WeakValueDictionary[str, CheckpointManager] = weakref.WeakValueDictionary()


def _int_value(x: object, what: str) -> int:
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    _, arr = to_array(x, what)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"{what} must be an integer scalar, got {x!r}")
    return int(arr.reshape(()).item())


class CheckpointManager:
    """Keeps the newest checkpoints of a state in a directory (``tf.train.CheckpointManager``).

    Args:
        checkpoint: the state to save (anything a :class:`tfckpt.Saver` takes as ``sess``).
            For immutable state (JAX) assign the new state to :attr:`checkpoint` (or pass
            ``state=`` to :meth:`save`) before saving, and use what :meth:`restore` returns.
        directory: where checkpoints and the ``checkpoint`` state file go.
        max_to_keep: how many checkpoints to keep; ``None`` keeps all.
        keep_checkpoint_every_n_hours: additionally preserve one checkpoint per this many hours.
        checkpoint_name: the file prefix (``ckpt``).
        step_counter: a value (int-like: Variable, 0-d array, tensor, or a callable returning
            one) read when ``checkpoint_interval`` is set.
        checkpoint_interval: minimum number of steps between saves.
        init_fn: called by :meth:`restore_or_initialize` when there is nothing to restore.
        last_checkpoint_step: the step of the last save, for interval checks.
        clock: seconds since the epoch (default ``time.time``), injectable for tests.
        sync: fsync files (default).
        sharded: write several data files (see :class:`tfckpt.Saver`).
    """

    def __init__(
        self,
        checkpoint: object,
        directory: PathLike,
        max_to_keep: int | None,
        keep_checkpoint_every_n_hours: float | None = None,
        checkpoint_name: str = "ckpt",
        step_counter: object = None,
        checkpoint_interval: int | None = None,
        init_fn: Callable[[], object] | None = None,
        last_checkpoint_step: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sync: bool = True,
        sharded: bool = False,
    ) -> None:
        if isinstance(checkpoint, Mapping) and SAVE_COUNTER_KEY in checkpoint:
            raise InvalidArgumentError(
                f"the state has an entry {SAVE_COUNTER_KEY!r}, the name CheckpointManager stores its save count "
                "under (TensorFlow's Checkpoint.save_counter) in every checkpoint: rename that entry",
                key=SAVE_COUNTER_KEY)
        self._checkpoint = checkpoint
        self._clock = clock or wall_clock
        check_options(max_to_keep, keep_checkpoint_every_n_hours)
        if not isinstance(checkpoint_name, str):
            raise InvalidTypeError(f"checkpoint_name must be a str, got {checkpoint_name!r:.80}")
        if not checkpoint_name:
            raise InvalidArgumentError("checkpoint_name must not be empty (it starts every checkpoint's file names)")
        if checkpoint_interval is not None and not isinstance(checkpoint_interval, numbers.Integral):
            raise InvalidTypeError(f"checkpoint_interval must be an int or None, got {checkpoint_interval!r:.80}")
        if max_to_keep is not None and max_to_keep <= 0:
            raise InvalidArgumentError(f"Expected a positive integer or `None` for `max_to_keep`, got {max_to_keep}.")
        self._max_to_keep = max_to_keep
        self._keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self._directory = as_path(directory, "directory")
        self._checkpoint_prefix = os.path.join(self._directory, checkpoint_name)
        self._init_fn = init_fn
        if checkpoint_interval is not None and step_counter is None:
            raise InvalidArgumentError("`step_counter` should be passed if `checkpoint_interval` is not None.")
        self._step_counter = step_counter
        self._checkpoint_interval = checkpoint_interval
        self._last_checkpoint_step = last_checkpoint_step
        self._saver = Saver(max_to_keep=None, sharded=sharded, clock=self._clock, sync=sync)
        self._sync = sync
        self._superseded = False
        self.save_counter = 0
        now = self._clock()
        state = get_checkpoint_state(self._directory)
        if state is None:
            self._latest_checkpoint: str | None = None
            self._policy, _ = ManagerRetention.recover(max_to_keep, keep_checkpoint_every_n_hours, now,
                                                       None, None, None)
        else:
            self._latest_checkpoint = state.model_checkpoint_path
            last = state.last_preserved_timestamp
            if now < last:
                logger.warning("time.time() returned a value %f seconds behind the last preserved checkpoint "
                               "timestamp.", last - now)
            self._policy, _ = ManagerRetention.recover(
                max_to_keep, keep_checkpoint_every_n_hours, now, list(state.all_model_checkpoint_paths),
                list(state.all_model_checkpoint_timestamps), last)
            self._read_save_counter(self._latest_checkpoint)

    def _read_save_counter(self, path: str) -> None:
        """Continue numbering from ``path``'s stored counter (TensorFlow keeps it in the Checkpoint object)."""
        try:
            with CheckpointReader(path) as r:
                for key in (SAVE_COUNTER_KEY, SAVE_COUNTER_KEY + "/.ATTRIBUTES/VARIABLE_VALUE"):  # (ours, TF2's)
                    if r.has_tensor(key):
                        self.save_counter = int(np.asarray(r.get_tensor(key)))
                        break
        except CheckpointError as e:
            logger.warning("cannot read the save counter of %s: %s", path, e)

    # -- properties ----------------------------------------------------------

    @property
    def directory(self) -> str:
        return self._directory

    @property
    def checkpoint_interval(self) -> int | None:
        return self._checkpoint_interval

    @property
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint's prefix (from the state file at construction, then from saves)."""
        return self._latest_checkpoint

    @property
    def checkpoints(self) -> list[str]:
        """Managed checkpoints, oldest first (preserved ones are not listed)."""
        return self._policy.paths

    @property
    def checkpoint(self) -> object:
        return self._checkpoint

    @checkpoint.setter
    def checkpoint(self, state: object) -> None:
        self._checkpoint = state

    # -- saving --------------------------------------------------------------

    def _step(self) -> int:
        counter = self._step_counter
        if callable(counter) and not hasattr(counter, "numpy"):
            counter = counter()
        return _int_value(counter, "step_counter")

    def _record_state(self) -> None:
        assert self._latest_checkpoint is not None
        update_checkpoint_state_internal(
            save_dir=self._directory,
            model_checkpoint_path=self._latest_checkpoint,
            all_model_checkpoint_paths=self._policy.paths,
            all_model_checkpoint_timestamps=self._policy.timestamps,
            last_preserved_timestamp=self._policy.last_preserved_timestamp,
            save_relative_paths=True,
            sync=self._sync,
        )

    def _sweep(self) -> None:
        for ev in self._policy.evict():
            if ev.keep:
                continue
            remove_checkpoint(ev.path)

    def save(self, checkpoint_number: object = None, check_interval: bool = True, options: object = None,
             *, state: object = None) -> str | None:
        """Write ``<prefix>-<n>`` and apply retention; return its path (None when the interval gates it).

        ``n`` is ``checkpoint_number`` if given (an int or int-like value) else the incremented
        save counter. ``state`` replaces :attr:`checkpoint` first (for immutable state).
        """
        if state is not None:
            self._checkpoint = state
        if self._checkpoint_interval is not None:
            current = self._step()
            if self._last_checkpoint_step is not None:
                if current == self._last_checkpoint_step:
                    return None
                if check_interval and current < self._last_checkpoint_step + self._checkpoint_interval:
                    return None
            self._last_checkpoint_step = current
        self._become_writer()
        save_counter = self.save_counter + 1
        number = save_counter if checkpoint_number is None else _int_value(checkpoint_number, "checkpoint_number")
        prefix = f"{self._checkpoint_prefix}-{number}"
        counter = {SAVE_COUNTER_KEY: np.int64(save_counter)}
        path, _, _ = self._saver._write_checkpoint(self._checkpoint, prefix, extra=counter)
        self.save_counter = save_counter
        self._policy.record(path, self._clock())
        self._latest_checkpoint = path
        self._record_state()
        self._sweep()
        self._record_state()
        return path

    def _become_writer(self) -> None:
        """Own the directory: one writer per directory, so two managers never delete each other's work.

        The first save takes the directory's writer lock (held until :meth:`close`) and removes
        the leftovers of killed saves. A manager of another process holding it makes this one
        fail with AlreadyExistsError. Within one process the newest manager of a directory
        takes over (the usual "re-create the manager to resume" pattern); the older one can
        no longer save.
        """
        if self._superseded:
            raise FailedPreconditionError(
                f"A newer CheckpointManager saves into {self._directory}; this one was superseded and "
                f"can no longer save (keep one manager per directory).",
                path=self._directory,
            )
        key = os.path.realpath(self._directory)  # (a symlinked path is the same directory, as its flock is)
        other = _WRITERS.get(key)
        if other is not None and other is not self:
            other._superseded = True
            other.close()
        _WRITERS[key] = self
        self._saver._claim(self._directory)

    def close(self) -> None:
        """Release the directory's writer lock (taken at the first save; also released on collection)."""
        self._saver.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- restoring -------------------------------------------------------------

    def restore(self, path: PathLike | None = None) -> Any:
        """Restore ``path`` (default: the latest checkpoint) into :attr:`checkpoint`; return the restored state."""
        target = as_path(path, "path") if path is not None else self._latest_checkpoint
        if target is None:
            raise InvalidArgumentError("Can't load save_path when it is None.")
        if not checkpoint_exists(target):  # (TensorFlow's Checkpoint.restore: a NotFoundError)
            named = " (the 'checkpoint' state file names it, but its files are gone)" \
                if target == self._latest_checkpoint else ""
            raise NotFoundError(f"Error when restoring from checkpoint or SavedModel at {target}: Unsuccessful "
                                f"TensorSliceReader constructor: Failed to find any matching files for {target}"
                                f"{named}", path=target)
        restored = self._saver.restore(self._checkpoint, target)
        self._checkpoint = restored
        self._read_save_counter(target)
        return restored

    def restore_or_initialize(self) -> str | None:
        """Restore the latest checkpoint and return its path, or call ``init_fn`` and return None."""
        if self._latest_checkpoint is not None:
            self.restore(self._latest_checkpoint)
            if self._checkpoint_interval is not None:
                self._last_checkpoint_step = self._step()
            return self._latest_checkpoint
        if self._init_fn is not None:
            self._init_fn()
        return None


def wait_for_new_checkpoint(
    checkpoint_dir: PathLike,
    last_checkpoint: str | None = None,
    seconds_to_sleep: float = 1,
    timeout: float | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
) -> str | None:
    """Poll until ``latest_checkpoint(checkpoint_dir)`` differs from ``last_checkpoint``; None on timeout."""
    logger.info("Waiting for new checkpoint at %s", checkpoint_dir)
    stop_time = clock() + timeout if timeout is not None else None
    while True:
        path = latest_checkpoint(checkpoint_dir)
        if path is None or path == last_checkpoint:
            if stop_time is not None and clock() + seconds_to_sleep > stop_time:
                return None
            sleep(seconds_to_sleep)
        else:
            logger.info("Found new checkpoint at %s", path)
            return path


def checkpoints_iterator(
    checkpoint_dir: PathLike,
    min_interval_secs: float = 0,
    timeout: float | None = None,
    timeout_fn: Callable[[], bool] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[str]:
    """Yield each new checkpoint of ``checkpoint_dir`` as it appears (``tf.train.checkpoints_iterator``).

    Polls every second; ``timeout`` bounds each wait. After a timeout the iterator stops,
    unless ``timeout_fn`` is given and returns False (then it waits again).

    Example:
        >>> list(checkpoints_iterator("/nonexistent/dir", timeout=0))
        []
    """
    checkpoint_path = None
    while True:
        new = wait_for_new_checkpoint(checkpoint_dir, checkpoint_path, timeout=timeout, clock=clock, sleep=sleep)
        if new is None:
            if not timeout_fn:
                logger.info("Timed-out waiting for a checkpoint.")
                return
            if timeout_fn():
                return
            continue
        start = clock()
        checkpoint_path = new
        yield checkpoint_path
        time_to_next_eval = start + min_interval_secs - clock()
        if time_to_next_eval > 0:
            sleep(time_to_next_eval)
