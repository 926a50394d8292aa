"""Saver and CheckpointManager options of the wrong type are InvalidTypeErrors when the saver is
made, naming the option (TensorFlow fails later, in protobuf or arithmetic, with a bare TypeError)."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt.errors import InvalidArgumentError, InvalidTypeError

STATE = {"w": np.ones(2)}


@pytest.mark.parametrize(("option", "value"), [
    ("max_to_keep", "5"), ("max_to_keep", 2.5), ("keep_checkpoint_every_n_hours", "1"),
    ("keep_checkpoint_every_n_hours", float("nan")), ("keep_checkpoint_every_n_hours", [1]),
])
def test_a_saver_option_of_the_wrong_type_names_it(option: str, value: Any) -> None:
    with pytest.raises(InvalidTypeError, match=option):
        tfckpt.Saver(STATE, **{option: value})


@pytest.mark.parametrize(("option", "value"), [
    ("max_to_keep", "5"), ("keep_checkpoint_every_n_hours", "1"), ("checkpoint_name", 3),
    ("checkpoint_interval", "10"),
])
def test_a_manager_option_of_the_wrong_type_names_it(option: str, value: Any, tmp_path: pathlib.Path) -> None:
    kwargs: dict[str, Any] = {"max_to_keep": 3, "step_counter": 0, option: value}
    with pytest.raises(InvalidTypeError, match=option):
        tfckpt.CheckpointManager(STATE, tmp_path / "d", **kwargs)
    assert os.listdir(tmp_path) == []


def test_an_empty_checkpoint_name_is_invalid(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidArgumentError, match="checkpoint_name must not be empty"):
        tfckpt.CheckpointManager(STATE, tmp_path / "d", max_to_keep=1, checkpoint_name="")


def test_numpy_integers_and_none_are_accepted(tmp_path: pathlib.Path) -> None:
    saver = tfckpt.Saver(STATE, max_to_keep=np.int64(1), keep_checkpoint_every_n_hours=None)
    for step in (1, 2):
        saver.save(None, str(tmp_path / "model.ckpt"), global_step=step)
    assert saver.last_checkpoints == [str(tmp_path / "model.ckpt-2")]
    manager = tfckpt.CheckpointManager(STATE, tmp_path / "m", max_to_keep=None, keep_checkpoint_every_n_hours=2)
    assert manager.save() == str(tmp_path / "m" / "ckpt-1")


def test_a_non_positive_max_to_keep_is_still_invalid_for_the_manager(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        tfckpt.CheckpointManager(STATE, tmp_path, max_to_keep=0)
