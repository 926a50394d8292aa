"""Crafted files a fuzzing review found escaping the error hierarchy (or taking quadratic time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tfckpt
from tfckpt._cli_verify import verify
from tfckpt._format.bundle_writer import BundleWriter
from tfckpt._format.table import TableReader, build_table
from tfckpt._format.v1_writer import write_v1
from tfckpt._graph_values import MAX_REPEATED, string_const
from tfckpt._proto import checkpoint_pb2, meta_graph_pb2, tensor_pb2
from tfckpt.cli import main
from tfckpt.errors import DataLossError, NotFoundError


def test_v1_tensor_listed_without_slices(tmp_path: Path) -> None:
    p = str(tmp_path / "model.ckpt")
    write_v1(p, [("v", np.arange(4, dtype=np.float32), None)])
    items = dict(TableReader(Path(p).read_bytes()).items())
    meta = checkpoint_pb2.SavedTensorSlices.FromString(items[b""])
    del meta.meta.tensor[0].slice[:]
    items[b""] = meta.SerializeToString()
    Path(p).write_bytes(build_table(sorted(items.items())))
    with pytest.raises(DataLossError, match="tensor 'v' has no stored slices") as e:
        tfckpt.CheckpointReader(p)
    assert e.value.key == "v"
    assert main(["verify", p]) == 1


def _meta_with_names_const(path: Path, size: int, values: list[bytes]) -> str:
    mg = meta_graph_pb2.MetaGraphDef()
    c = mg.graph_def.node.add(name="save/names", op="Const")
    t = c.attr["value"].tensor
    t.dtype = tensor_pb2.DT_STRING
    t.string_val.extend(values)
    t.tensor_shape.dim.add().size = size
    mg.graph_def.node.add(name="save/RestoreV2", op="RestoreV2", input=["save/Const", "save/names", "save/names"])
    path.write_bytes(mg.SerializeToString())
    return str(path)


@pytest.mark.parametrize("values", [[b"w"], []])
def test_meta_string_constant_of_huge_shape(tmp_path: Path, values: list[bytes]) -> None:
    p = _meta_with_names_const(tmp_path / "m.meta", 10**12, values)
    with pytest.raises(DataLossError, match=r"'save/names': a string constant of shape \[1000000000000\]"):
        tfckpt.import_meta_graph(p)
    with pytest.raises(DataLossError, match="too large to expand"):
        tfckpt.read_meta_graph(p).checkpoint_keys()


def test_meta_string_constant_repeated_within_the_bound_is_expanded() -> None:
    node = meta_graph_pb2.NodeDef(name="c", op="Const")
    t = node.attr["value"].tensor
    t.dtype = tensor_pb2.DT_STRING
    t.string_val.extend([b"a", b"b"])
    t.tensor_shape.dim.add().size = 4
    assert string_const(node) == ["a", "b", "b", "b"]  # (TensorFlow repeats the last value)
    t.tensor_shape.dim[0].size = MAX_REPEATED
    assert len(string_const(node) or []) == MAX_REPEATED
    t.tensor_shape.dim[0].size = MAX_REPEATED + 1
    with pytest.raises(DataLossError, match="too large to expand"):
        string_const(node)


def test_text_meta_graph_nested_too_deeply(tmp_path: Path) -> None:
    deep = ("graph_def { node { name: 'a' attr { key: 'k' value { " + "func { attr { key: 'k' value { " * 1000
            + "}}}" * 1000 + "}}}}")
    (tmp_path / "t.meta").write_text(deep)
    with pytest.raises(DataLossError, match="nested too deeply"):
        tfckpt.read_meta_graph(str(tmp_path / "t.meta"))


def _sliced(prefix: str, n: int, *, overlap: bool = False) -> str:
    """Tensor ``p`` of ``n`` elements stored as ``n`` one-element slices; with ``overlap``, the
    last two are replaced by one slice over elements n-3 and n-2 (the same total size: n-3 is
    stored twice, n-1 not at all)."""
    w = BundleWriter(prefix)
    for i in range(n - 2 if overlap else n):
        w.add_slice("p", (n,), f"{i},1", np.full(1, i, np.float32))
    if overlap:
        w.add_slice("p", (n,), f"{n - 3},2", np.zeros(2, np.float32))
    w.finish()
    return prefix


def test_verify_many_slices(tmp_path: Path) -> None:
    n = 3000  # (each slice read through read_stored_slice: a list lookup made this n * n comparisons)
    p = _sliced(str(tmp_path / "ok"), n)
    rep = verify(p)
    assert rep.ok, rep.problems
    assert rep.tensors == 1
    np.testing.assert_array_equal(tfckpt.load_variable(p, "p"), np.arange(n, dtype=np.float32))
    with tfckpt.CheckpointReader(p) as r:
        assert r.get_stored_slice("p", f"{n - 1},1").tolist() == [n - 1]


def test_verify_finds_one_overlap_among_many_slices(tmp_path: Path) -> None:
    # 1,500 slices: above the reader's own pairwise limit (1,024), so verify's check is what finds it.
    p = _sliced(str(tmp_path / "bad"), 1500, overlap=True)
    rep = verify(p)
    assert not rep.ok
    assert "slices 1497,1 and 1497,2 of 'p' overlap" in [q.message for q in rep.problems]


def test_verify_absurd_shard_count_is_one_problem() -> None:
    prefix = str(Path(__file__).parent / "hostile" / "absurd_num_shards" / "ckpt")
    rep = verify(prefix)
    assert [q.message for q in rep.problems] == ["invalid shard count 1000000000 in the bundle header"]


def test_glob_pattern_over_v2_checkpoints(tmp_path: Path) -> None:
    for step in (1, 2):
        tfckpt.Saver().save({"w": np.ones(2, np.float32)}, str(tmp_path / "ckpt"), global_step=step)
    with pytest.raises(NotFoundError, match=r"Failed to find any matching files for .*ckpt-\* \(the pattern matches "
                                            r"V2 checkpoints: pass one prefix, such as .*ckpt-1\)"):
        tfckpt.CheckpointReader(str(tmp_path / "ckpt-*"))
