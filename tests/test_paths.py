"""Path arguments: str, bytes and os.PathLike all work; anything else is an InvalidTypeError
that names the argument, before any file is touched."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt import checkpoint_management as cm
from tfckpt import cleanup as cleanup_mod
from tfckpt import convert as convert_mod
from tfckpt import transfer
from tfckpt.errors import InvalidTypeError

BAD = 7  # not a path

CALLS: dict[str, Callable[[Any], object]] = {
    "read": lambda p: tfckpt.read(p),
    "write": lambda p: tfckpt.write({"a": np.ones(2)}, p),
    "CheckpointReader": lambda p: tfckpt.CheckpointReader(p),
    "NewCheckpointReader": lambda p: tfckpt.NewCheckpointReader(p),
    "load_checkpoint": lambda p: tfckpt.load_checkpoint(p),
    "list_variables": lambda p: tfckpt.list_variables(p),
    "load_variable": lambda p: tfckpt.load_variable(p, "a"),
    "latest_checkpoint": lambda p: tfckpt.latest_checkpoint(p),
    "get_checkpoint_state": lambda p: tfckpt.get_checkpoint_state(p),
    "checkpoint_exists": lambda p: tfckpt.checkpoint_exists(p),
    "get_checkpoint_mtimes": lambda p: tfckpt.get_checkpoint_mtimes([p]),
    "remove_checkpoint": lambda p: tfckpt.remove_checkpoint(p),
    "meta_graph_filename": lambda p: tfckpt.meta_graph_filename(p),
    "update_checkpoint_state": lambda p: cm.update_checkpoint_state(p, "model.ckpt-1"),
    "update_checkpoint_state paths": lambda p: cm.update_checkpoint_state(".", "model.ckpt-1", [p]),
    "CheckpointManager": lambda p: tfckpt.CheckpointManager({"a": np.ones(2)}, p, max_to_keep=1),
    "Saver.save": lambda p: tfckpt.Saver({"a": np.ones(2)}).save(None, p),
    "Saver.restore": lambda p: tfckpt.Saver({"a": np.ones(2)}).restore(None, p),
    "CheckpointManager.restore": lambda p: tfckpt.CheckpointManager({"a": np.ones(2)}, "d", max_to_keep=1).restore(p),
    "cleanup": lambda p: cleanup_mod.cleanup(p),
    "save_partial": lambda p: transfer.save_partial({"a": np.ones(2)}, p),
    "export_meta_graph": lambda p: tfckpt.export_meta_graph(p),
    "read_meta_graph": lambda p: tfckpt.read_meta_graph(p),
    "init_from_checkpoint": lambda p: tfckpt.init_from_checkpoint(p, {"a": "a"}, {"a": np.zeros(2)}),
    "restore_partial": lambda p: tfckpt.restore_partial(p, {"a": np.zeros(2)}),
    "convert": lambda p: convert_mod.convert(p, "out.safetensors"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_non_path_is_an_invalid_type_error_naming_it(name: str, tmp_path: pathlib.Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidTypeError) as e:
        CALLS[name](BAD)
    assert isinstance(e.value, TypeError)
    assert str(BAD) in str(e.value)
    assert os.listdir(tmp_path) == []  # nothing written, under any name


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlib"])
def test_every_kind_of_path_reads_and_writes_the_same_files(kind: str, tmp_path: pathlib.Path) -> None:
    def as_kind(p: pathlib.Path) -> Any:
        return {"str": str, "bytes": os.fsencode, "pathlib": lambda q: q}[kind](p)

    prefix = tmp_path / "bundle"
    assert tfckpt.write({"a": np.arange(3.0)}, as_kind(prefix)) == str(prefix)
    assert sorted(os.listdir(tmp_path)) == ["bundle.data-00000-of-00001", "bundle.index"]
    assert tfckpt.read(as_kind(prefix))["a"].tolist() == [0.0, 1.0, 2.0]
    assert tfckpt.list_variables(as_kind(prefix)) == [("a", [3])]
    saver = tfckpt.Saver({"w": np.ones(2)})
    saved = saver.save(None, as_kind(tmp_path / "model.ckpt"), global_step=3)
    assert saved == str(tmp_path / "model.ckpt-3")
    assert tfckpt.latest_checkpoint(as_kind(tmp_path)) == saved
    assert tfckpt.load_variable(as_kind(tmp_path), "w").tolist() == [1.0, 1.0]


def test_write_with_its_arguments_swapped_says_so(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidTypeError, match=r"write\(tensors, prefix\): tensors first"):
        tfckpt.write(str(tmp_path / "c"), {"a": np.ones(2)})  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tensors", [5, [1, 2], [("a", np.ones(2), 3)], ["ab"]])
def test_write_of_neither_a_mapping_nor_pairs_is_an_invalid_type_error(tensors: Any, tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidTypeError, match="tensors"):
        tfckpt.write(tensors, tmp_path / "c")
    assert os.listdir(tmp_path) == []
