"""Hostile checkpoints: every attack in tests/hostile/ is rejected quickly, cheaply, with the expected error.

The corpus is built by ``tests/hostile/make_corpus.py`` (byte surgery on
checkpoints tfckpt wrote); ``manifest.json`` gives each case's error class and
a fragment of its message. Each case is opened and read completely; the test
asserts the error class and message, that it took under a second, and that
tracemalloc's peak stayed within a small multiple of the files' size.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt import errors
from tfckpt.cleanup import cleanup

HOSTILE = Path(__file__).parent / "hostile"
MANIFEST: list[dict[str, Any]] = json.loads((HOSTILE / "manifest.json").read_text())


def read_everything(prefix: str) -> None:
    """What a user might do with a downloaded checkpoint: list it, read every tensor, parse its graph."""
    with tfckpt.CheckpointReader(prefix) as r:
        r.get_variable_to_shape_map()
        r.get_variable_to_dtype_map()
        r.debug_string()
        for name in r.get_variable_to_shape_map():
            r.get_tensor(name)
            r.get_slices(name)
        r.object_graph()


def _params() -> list[Any]:
    out = []
    for c in MANIFEST:
        marks = [pytest.mark.xfail(strict=True, reason=c["xfail"])] if c.get("xfail") else []
        out.append(pytest.param(c, id=c["name"], marks=marks))
    return out


def test_manifest_lists_every_case_directory() -> None:
    dirs = sorted(p.name for p in HOSTILE.iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert dirs == sorted(c["name"] for c in MANIFEST)
    assert len(MANIFEST) >= 30
    for c in MANIFEST:
        assert hasattr(errors, c["error"]), c
        assert c["message"]
        assert c["description"]


@pytest.mark.parametrize("case", _params())
def test_hostile_case_is_rejected(case: dict[str, Any]) -> None:
    d = HOSTILE / case["name"]
    size = sum(p.stat().st_size for p in d.iterdir())
    expected = getattr(errors, case["error"])
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(errors.CheckpointError) as info:
            read_everything(str(d / case["prefix"]))
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    assert case["message"] in str(info.value)
    assert elapsed < 1.0
    assert peak < 32 * size + (1 << 20), f"peak {peak} bytes for {size} bytes of files"


@pytest.mark.parametrize("case", MANIFEST, ids=[c["name"] for c in MANIFEST])
def test_bulk_read_of_hostile_case(case: dict[str, Any]) -> None:
    # tfckpt.read goes through read_many (runs, preadv, inline checks): a library error or success, cheaply
    d = HOSTILE / case["name"]
    size = sum(p.stat().st_size for p in d.iterdir())
    got: errors.CheckpointError | None = None
    tracemalloc.start()
    try:
        try:
            tfckpt.read(str(d / case["prefix"]))
        except errors.CheckpointError as e:
            got = e
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if case["name"].startswith("shape_1e18"):  # an entry whose size does not fit its shape
        assert type(got) is errors.DataLossError
        assert case["message"] in str(got)
    assert peak < 32 * size + (1 << 20), f"peak {peak} bytes for {size} bytes of files"


@pytest.mark.parametrize(
    ("name", "file", "key"),
    [
        ("offset_past_end", "ckpt.data-00000-of-00001", "w"),
        ("restart_count_overflow", "ckpt.index", None),
        ("unknown_dtype", "ckpt.index", "w"),
        ("shape_1e18_elements", "ckpt.index", "w"),
        ("slices_overlap", "ckpt.index", "p"),
    ],
)
def test_errors_carry_file_and_tensor(name: str, file: str, key: str | None) -> None:
    d = HOSTILE / name
    with pytest.raises(errors.DataLossError) as info:
        read_everything(str(d / "ckpt"))
    assert info.value.path == str(d / file)
    assert info.value.key == key
    assert str(d / file) in str(info.value)


def test_string_errors_name_file_tensor_and_offset() -> None:
    d = HOSTILE / "string_2gb_length"
    with pytest.raises(errors.DataLossError) as info:
        read_everything(str(d / "ckpt"))
    assert f"'s' in {d / 'ckpt.data-00000-of-00001'} at offset 43" in str(info.value)


def test_corpus_is_what_make_corpus_builds(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(HOSTILE / "make_corpus.py"), str(tmp_path)], check=True)
    assert json.loads((tmp_path / "manifest.json").read_text()) == MANIFEST
    for c in MANIFEST:
        d = HOSTILE / c["name"]
        names = sorted(p.name for p in d.iterdir())
        assert names == sorted(p.name for p in (tmp_path / c["name"]).iterdir())
        _, mismatch, errs = filecmp.cmpfiles(d, tmp_path / c["name"], names, shallow=False)
        assert not mismatch, (c["name"], mismatch)
        assert not errs, (c["name"], errs)


def test_user_slice_out_of_range(tmp_path: Path) -> None:
    p = tfckpt.write({"w": np.zeros((4, 2), np.float32)}, str(tmp_path / "ckpt"))
    r = tfckpt.CheckpointReader(p)
    with pytest.raises(errors.OutOfRangeError, match=r"slice 0,5:- lies outside shape \[4, 2\]"):
        r.get_slice("w", "0,5:-")
    with pytest.raises(errors.InvalidArgumentError, match="Invalid slice spec"):
        r.get_slice("w", "0,x:-")
    r.close()


def test_no_pickle_anywhere() -> None:
    src = Path(tfckpt.__file__).parent
    for f in src.rglob("*.py"):
        text = f.read_text()
        assert "import pickle" not in text, f
        assert "allow_pickle=True" not in text, f


# -- a state file is data, not a command -------------------------------------------


def _victims(tmp_path: Path) -> list[Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = [outside / "precious.data-00000-of-00001", outside / "precious.index.tempstate1",
               outside / ("checkpoint.tmp" + "0" * 32)]
    for v in victims:
        v.write_bytes(b"do not delete")
    return victims


def test_cleanup_ignores_state_file_paths_outside_the_directory(tmp_path: Path) -> None:
    victims = _victims(tmp_path)
    d = tmp_path / "ckpts"
    d.mkdir()
    tfckpt.write({"w": np.zeros(2)}, str(d / "model.ckpt-1"))
    (d / "checkpoint").write_text(
        'model_checkpoint_path: "../../etc/passwd"\n'
        f'all_model_checkpoint_paths: "{victims[0].parent}/precious"\n'
        'all_model_checkpoint_paths: "/etc/passwd"\n'
        'all_model_checkpoint_paths: "../outside/precious"\n'
        'all_model_checkpoint_paths: "model.ckpt-1"\n'
    )
    (d / "model.ckpt-2.index.tempstate99").write_bytes(b"x")
    removed = cleanup(d)
    assert removed == [str(d / "model.ckpt-2.index.tempstate99")]
    for v in victims:
        assert v.read_bytes() == b"do not delete"
    assert os.path.exists("/etc/passwd")
    assert sorted(os.listdir(d)) == ["checkpoint", "model.ckpt-1.data-00000-of-00001",
                                     "model.ckpt-1.index"]


def test_cleanup_never_follows_symlinks(tmp_path: Path) -> None:
    victims = _victims(tmp_path)
    d = tmp_path / "ckpts"
    d.mkdir()
    (d / "evil_temp").symlink_to(victims[0].parent, target_is_directory=True)
    (d / "x.tempstate5").symlink_to(victims[1])
    (d / "y.data-00000-of-00001").symlink_to(victims[0])
    removed = cleanup(d)
    assert removed == [str(d / "x.tempstate5")]  # the link itself, not its target
    for v in victims:
        assert v.read_bytes() == b"do not delete"
    assert (d / "evil_temp").is_symlink()
    assert (d / "y.data-00000-of-00001").is_symlink()


def test_cleanup_keeps_checkpoints_the_state_file_names(tmp_path: Path) -> None:
    d = tmp_path
    tfckpt.write({"w": np.zeros(2)}, str(d / "model.ckpt-1"))
    os.remove(d / "model.ckpt-1.index")  # damaged, but still named: not ours to delete
    tfckpt.write({"w": np.zeros(2)}, str(d / "model.ckpt-2"))
    os.remove(d / "model.ckpt-2.index")  # orphaned data of a killed save
    tfckpt.checkpoint_management.update_checkpoint_state(str(d), str(d / "model.ckpt-1"))
    assert cleanup(d, dry_run=True) == [str(d / "model.ckpt-2.data-00000-of-00001")]
    assert (d / "model.ckpt-2.data-00000-of-00001").exists()
    assert cleanup(d) == [str(d / "model.ckpt-2.data-00000-of-00001")]
    assert (d / "model.ckpt-1.data-00000-of-00001").exists()
