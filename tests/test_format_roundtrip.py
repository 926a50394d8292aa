"""Hypothesis round trips for every encoder of the format core, plus exact-byte unit cases."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tfckpt
from tfckpt._format import bundle_writer
from tfckpt._format import table as table_module
from tfckpt._format.blocks import _by_intervals, _entry_by_entry, block_columns
from tfckpt._format.coding import (
    FIXED32,
    crc32c,
    decode_varint,
    encode_varint,
    encode_varints,
    mask,
    masked_crcs,
    unmask,
)
from tfckpt._format.entry import BundleEntry, BundleHeader
from tfckpt._format.slices import TensorSlice, encode_signed_num_increasing, encode_slice_key
from tfckpt._format.strings import decode_strings, encode_strings
from tfckpt._format.table import (
    TableReader,
    TableWriter,
    build_table,
    find_short_successor,
    find_shortest_separator,
)
from tfckpt._proto import checkpoint_pb2

# -- coding -----------------------------------------------------------------


def test_crc_vectors() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert mask(0) == 0xA282EAD8


@given(st.integers(0, 2**32 - 1))
def test_mask_roundtrip(c: int) -> None:
    assert unmask(mask(c)) == c


@given(st.integers(0, 2**64 - 1))
def test_varint_roundtrip(v: int) -> None:
    enc = encode_varint(v)
    assert decode_varint(enc, 0) == (v, len(enc))
    assert decode_varint(b"xx" + enc + b"yy", 2) == (v, 2 + len(enc))


@given(st.lists(st.integers(0, 2**64 - 1), max_size=50))
def test_varints_of_an_array_match_one_by_one(values: list[int]) -> None:
    assert encode_varints(np.array(values, np.uint64)) == b"".join(map(encode_varint, values))


@given(st.lists(st.binary(max_size=40), max_size=150))
def test_masked_crcs_match_one_by_one(buffers: list[bytes]) -> None:
    assert masked_crcs(buffers) == [mask(crc32c(b)) for b in buffers]  # (numpy from 64 buffers on)


def test_varint_errors() -> None:
    with pytest.raises(tfckpt.errors.DataLossError, match="truncated"):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(tfckpt.errors.DataLossError, match="longer than 10"):
        decode_varint(b"\x80" * 20, 0)


# -- ordered code / slices ------------------------------------------------------


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=30))
def test_signed_num_increasing_preserves_order(values: list[int]) -> None:
    values = sorted(set(values))
    enc = [encode_signed_num_increasing(v) for v in values]
    assert enc == sorted(enc)
    assert all(1 <= len(e) <= 10 for e in enc)


def test_slice_key_examples_from_tensorflow() -> None:
    key = encode_slice_key(bytes.fromhex("6e006dc3bf"), TensorSlice(((70000, 30000), (0, 1))))
    assert key.hex() == "006e00ff6dc3bf00010102e11170e075308081"
    assert encode_slice_key("global_step", TensorSlice(())) == b"\x00global_step\x00\x01\x00"
    assert encode_slice_key("a", TensorSlice.full(2)) == b"\x00a\x00\x01\x01\x02\x80\x7f\x80\x7f"


@pytest.mark.parametrize(
    ("spec", "shape", "want"),
    [("0,3:-", (5, 2), (3, 2)), ("-:1,1", (5, 2), (5, 1)), ("", (), ())],
)
def test_slice_shapes(spec: str, shape: tuple[int, ...], want: tuple[int, ...]) -> None:
    assert TensorSlice.parse(spec).shape_in(shape) == want


def test_slice_errors() -> None:
    with pytest.raises(tfckpt.errors.OutOfRangeError):
        TensorSlice.parse("4,3:-").shape_in((5, 2))
    with pytest.raises(tfckpt.errors.InvalidArgumentError):
        TensorSlice.parse("a,b")


# -- strings -------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_strings_roundtrip(elements: list[bytes]) -> None:
    payload, crc = encode_strings(elements)
    assert decode_strings(payload, len(elements), crc) == elements


def test_string_examples_from_tensorflow() -> None:
    assert encode_strings([b""])[0].hex() == "00a67b113a"
    payload, crc = encode_strings([])
    assert payload.hex() == "d8ea82a2"
    assert crc == 0x640CC1F6


def test_string_corruption_detected() -> None:
    payload, crc = encode_strings([b"hello", b"world"])
    bad = bytearray(payload)
    bad[-1] ^= 1
    with pytest.raises(tfckpt.errors.DataLossError, match="checksum mismatch"):
        decode_strings(bytes(bad), 2, crc)
    with pytest.raises(tfckpt.errors.DataLossError):
        decode_strings(payload[:-1], 2, crc)


def test_string_lengths_that_overflow_64_bits() -> None:
    # Two lengths whose sum wraps around 2**64 to the real size must not pass for it.
    body = b"ab"
    lengths = [2**64 - 1, 3]
    payload = b"".join(map(encode_varint, lengths)) + b"\0\0\0\0" + body
    with pytest.raises(tfckpt.errors.DataLossError, match="lengths add up to"):
        decode_strings(payload, 2, None)


# -- entries -----------------------------------------------------------------------

shapes = st.lists(st.integers(0, 2**12), max_size=5).map(tuple)


@given(
    st.integers(1, 33),
    shapes,
    st.integers(0, 1000),
    st.integers(0, 2**50),
    st.integers(0, 2**50),
    st.integers(0, 2**32 - 1),
)
def test_entry_encoding_matches_protobuf(dtype: int, shape: tuple[int, ...], shard: int, off: int, size: int,
                                         crc: int) -> None:
    e = BundleEntry(dtype, shape, shard, off, size, crc)
    p = checkpoint_pb2.BundleEntryProto(dtype=dtype, shard_id=shard, offset=off, size=size, crc32c=crc)
    p.shape.SetInParent()
    for d in shape:
        p.shape.dim.add(size=d)
    assert e.encode() == p.SerializeToString(deterministic=True)
    assert BundleEntry.decode(e.encode()) == e


def test_header_bytes() -> None:
    assert BundleHeader().encode() == bytes.fromhex("08011a020801")
    assert BundleHeader(num_shards=2).encode() == bytes.fromhex("08021a020801")


# -- tables --------------------------------------------------------------------------


def test_separators() -> None:
    assert find_shortest_separator(b"layer_0999/x", b"zz_huge") == b"m"
    assert find_shortest_separator(b"abc", b"abcd") == b"abc"
    assert find_shortest_separator(b"ab", b"ac") == b"ab"
    assert find_short_successor(b"zz_str") == b"{"
    assert find_short_successor(b"\xff\xff") == b"\xff\xff"


table_items = st.dictionaries(st.binary(max_size=40), st.binary(max_size=200), max_size=200)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(table_items, st.integers(64, 4096), st.integers(1, 20))
def test_table_roundtrip(items: dict[bytes, bytes], block_size: int, interval: int) -> None:
    w = TableWriter(block_size=block_size, restart_interval=interval)
    for k in sorted(items):
        w.add(k, items[k])
    data = w.finish()
    bulk = TableWriter(block_size=block_size, restart_interval=interval)
    pairs = sorted(items.items())
    bulk.add_many(pairs[:3])  # state carries over between calls and across block cuts inside one call
    bulk.add_many(pairs[3:])
    assert bulk.finish() == data
    t = TableReader(data)
    assert list(t.items()) == sorted(items.items())
    assert not t._cache  # a walk holds one block at a time
    for k, v in items.items():
        assert t.get(k) == v
    assert t.get(b"\xff" * 41) is None
    assert list(t.items()) == sorted(items.items())  # cached blocks serve walks too


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=40)
@given(st.lists(st.binary(max_size=12), min_size=256, max_size=3000, unique=True),
       st.one_of(st.integers(64, 4096), st.integers(4096, 1 << 17)), st.integers(1, 20), st.integers(0, 300),
       st.integers(0, 600), st.booleans(), st.sampled_from([5, 300, 8192]), st.booleans())
def test_table_bulk_matches_one_by_one(keys: list[bytes], block_size: int, interval: int, vmax: int, split: int,
                                       long_key: bool, chunk: int, columns: bool) -> None:
    # From 256 pairs on, add_many lays blocks out with numpy (block cuts, restarts, varints of
    # two bytes and more, a block of over 1024 entries); one by one it does not. A second
    # add_many (or add_columns: the values as one byte array) continues the block the first left open.
    keys = sorted(keys)
    if long_key:
        keys[-1] = b"\xff" * 200 + keys[-1]  # (non_shared past 127: a two-byte varint)
    pairs = [(k, k[:3] * (i % (vmax + 1))) for i, k in enumerate(keys)]
    one = TableWriter(block_size=block_size, restart_interval=interval)
    for k, v in pairs:
        one.add(k, v)
    bulk = TableWriter(block_size=block_size, restart_interval=interval)
    bulk.add(*pairs[0])
    with mock.patch.object(table_module, "_PREFIX_CHUNK", chunk):  # (shared prefixes found a chunk at a time)
        bulk.add_many(pairs[1 : 1 + split])
        rest = pairs[1 + split :]
        if columns:
            bulk.add_columns([k for k, _ in rest], np.frombuffer(b"".join(v for _, v in rest), np.uint8),
                             np.array([len(v) for _, v in rest], np.int64))
        else:
            bulk.add_many(rest)
    data = bulk.finish()
    assert data == one.finish()
    assert list(TableReader(data).items()) == pairs


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)
@given(st.lists(st.binary(min_size=1, max_size=30), min_size=70, max_size=600, unique=True),
       st.integers(1, 20), st.integers(0, 150), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                            max_size=4))
def test_block_walk_by_intervals_matches_entry_by_entry(keys: list[bytes], interval: int, vmax: int,
                                                          flips: list[tuple[int, int]]) -> None:
    # The vectorised walk (every restart interval at once) must give exactly what the walk from
    # offset 0 gives, or decline (None): also on blocks with bytes changed anywhere.
    pairs = [(k, bytes(i % (vmax + 1))) for i, k in enumerate(sorted(keys))]
    w = TableWriter(block_size=1 << 20, restart_interval=interval)
    w.add_many(pairs)
    t = TableReader(w.finish())
    off, size = t._handles[0]
    block = bytearray(t._read_block(off, size, "data block 0"))
    for at, byte in flips:
        block[at % len(block)] = byte
    contents = bytes(block)
    n = len(contents)
    (num_restarts,) = FIXED32.unpack_from(contents, n - 4)
    if num_restarts == 0 or num_restarts > (n - 4) // 4:
        return
    limit = n - 4 * (1 + num_restarts)
    fast = _by_intervals(contents, limit, num_restarts)
    if not flips and vmax < 0x80:  # (one-byte header fields: the walk takes the block)
        assert fast is not None
        assert list(zip(*fast)) == pairs
    if fast is not None:
        assert fast == _entry_by_entry(contents, limit, "")
        assert block_columns(contents) == fast


def test_block_walk_by_intervals_declines_longer_varints() -> None:
    # A non-canonical two-byte varint (non_shared = 0x80 0x00) whose misreading as one-byte
    # fields lands exactly on the interval's end: only the header check stops the fast walk.
    value = bytes(range(127))
    entries = b"\x00\x80\x00\x7f" + value
    contents = entries * 3 + FIXED32.pack(0) + FIXED32.pack(131) + FIXED32.pack(262) + FIXED32.pack(3)
    assert _by_intervals(contents, len(entries) * 3, 3) is None
    keys, values = block_columns(contents)  # (the walk from the start; key order is the table's to check)
    assert keys == [b""] * 3
    assert values == [value] * 3


def test_block_walk_by_intervals_declines_far_apart_restarts() -> None:
    # One numpy step per entry of the longest interval: with restarts 200 entries apart (or a
    # hostile block with one restart) the plain walk is the faster one, so the fast walk declines.
    pairs = [(b"k%05d" % i, b"v") for i in range(1000)]
    w = TableWriter(restart_interval=200)
    w.add_many(pairs)
    t = TableReader(w.finish())
    contents = t._read_block(*t._handles[0], "data block 0")
    (num_restarts,) = FIXED32.unpack_from(contents, len(contents) - 4)
    assert num_restarts == 5
    assert _by_intervals(contents, len(contents) - 4 * (1 + num_restarts), num_restarts) is None
    assert list(zip(*block_columns(contents))) == pairs


def test_table_rejects_unsorted_keys() -> None:
    w = TableWriter()
    w.add(b"b", b"")
    with pytest.raises(tfckpt.errors.InvalidArgumentError, match="strictly increasing"):
        w.add(b"a", b"")


def test_empty_table() -> None:
    t = TableReader(build_table([]))
    assert list(t.items()) == []
    assert t.first() is None


# -- bundles -------------------------------------------------------------------------

DTYPES = [
    np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
    np.uint32, np.uint64, np.bool_, np.complex64, np.complex128, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
    ml_dtypes.float8_e5m2, ml_dtypes.int4, ml_dtypes.uint4,
]


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:  # type: ignore[type-arg]
    dt = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    raw = draw(st.binary(min_size=int(np.prod(shape)) * dt.itemsize, max_size=int(np.prod(shape)) * dt.itemsize))
    arr = np.frombuffer(raw, dtype=np.uint8).view(dt) if raw else np.zeros(0, dt)
    if dt == np.bool_:
        arr = arr.view(np.uint8) & 1
        arr = arr.astype(np.bool_)
    if dt in (np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.uint4)):
        arr = (arr.view(np.uint8) & 0x0F).view(dt) if dt == np.dtype(ml_dtypes.uint4) else (
            ((arr.view(np.int8) << 4) >> 4).view(dt))
    return arr.reshape(shape)


names = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=20)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None,
          max_examples=60)
@given(st.dictionaries(names, st.one_of(tensors(), st.lists(st.binary(max_size=20), max_size=4)), max_size=8),
       st.integers(1, 3))
def test_bundle_roundtrip(tmp_path: Path, values: dict[str, object], shards: int) -> None:
    prefix = str(tmp_path / f"b{len(list(tmp_path.iterdir()))}")
    tfckpt.write(values, prefix, num_shards=shards, sync=False)
    got = tfckpt.read(prefix)
    assert set(got) == set(values)
    for k, v in values.items():
        g = got[k]
        if isinstance(v, list):
            assert [bytes(x) for x in g.reshape(-1)] == v
        else:
            assert isinstance(v, np.ndarray)
            assert g.dtype == v.dtype
            assert g.shape == v.shape
            assert g.tobytes() == v.tobytes()


def test_partitioned_write_and_read(tmp_path: Path) -> None:
    full = np.arange(10, dtype=np.float32).reshape(5, 2)
    w = tfckpt.BundleWriter(str(tmp_path / "p"), num_shards=2)
    w.add_shape_and_slice("part", "5 2 0,3:0,2", full[:3])
    w.add_shape_and_slice("part", "5 2 3,2:0,2", full[3:])
    w.add("other", np.ones(3))
    w.finish()
    r = tfckpt.CheckpointReader(str(tmp_path / "p"))
    assert r.get_variable_to_shape_map() == {"other": [3], "part": [5, 2]}
    np.testing.assert_array_equal(r.get_tensor("part"), full)
    assert r.get_slices("part") == ["0,3:0,2", "3,2:0,2"]
    got = tfckpt.read(str(tmp_path / "p"))  # bulk reads reassemble partitioned tensors too
    assert list(got) == ["other", "part"]
    np.testing.assert_array_equal(got["part"], full)
    into = np.zeros((5, 2), np.float32)
    assert r.read_many(out={"part": into})["part"] is into
    np.testing.assert_array_equal(into, full)


def test_full_slice_degrades_to_plain_entry(tmp_path: Path) -> None:
    w = tfckpt.BundleWriter(str(tmp_path / "p"))
    w.add_slice("x", (2,), "-", np.ones(2))
    w.finish()
    assert tfckpt.CheckpointReader(str(tmp_path / "p")).get_slices("x") == []


def test_writer_rejects_bad_names_and_values(tmp_path: Path) -> None:
    errs = tfckpt.errors
    with pytest.raises(errs.InvalidArgumentError, match="must not be empty"):
        tfckpt.write({"": 1}, str(tmp_path / "a"))
    with pytest.raises(errs.InvalidArgumentError, match="must be str"):
        tfckpt.write({1: 1}, str(tmp_path / "a"))  # type: ignore[dict-item]
    for bad in ({"\ud800": 1}, {"a": 1, "b\ud800": 2}, [("a", 1), ("\ud800", 2)]):  # (lone surrogates)
        with pytest.raises(errs.InvalidArgumentError, match="not encodable as UTF-8") as info:
            tfckpt.write(bad, str(tmp_path / "a"))  # type: ignore[arg-type]
        assert info.value.path == str(tmp_path / "a")  # (write names the checkpoint)
        assert str(info.value).endswith(f"(writing checkpoint {tmp_path / 'a'})")
    with pytest.raises(errs.InvalidArgumentError, match="not encodable as UTF-8"):
        tfckpt.Saver({"ok": np.zeros(1), "x\ud800": np.zeros(1)}).save(None, str(tmp_path / "s"))
    with pytest.raises(errs.InvalidArgumentError, match="duplicate"):
        tfckpt.write([("a", 1), ("a", 2)], str(tmp_path / "a"))
    with pytest.raises(errs.InvalidArgumentError, match="object array"):
        tfckpt.write({"a": np.array([object()], dtype=object)}, str(tmp_path / "a"))
    with pytest.raises(errs.UnimplementedError):
        tfckpt.write({"a": np.array(["2020-01-01"], dtype="datetime64[D]")}, str(tmp_path / "a"))
    with pytest.raises(errs.InvalidArgumentError, match="num_shards"):
        tfckpt.write({"a": 1}, str(tmp_path / "a"), num_shards=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("order", [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]])
def test_writer_finds_duplicates_in_any_order(tmp_path: Path, order: list[str]) -> None:
    w = tfckpt.BundleWriter(str(tmp_path / "p"))
    for n in order:
        w.add(n, np.float32(1))
    for n in order:  # the last key, an earlier one, and (after unsorted adds) any
        with pytest.raises(tfckpt.errors.InvalidArgumentError, match="duplicate"):
            w.add(n, np.float32(2))
        with pytest.raises(tfckpt.errors.InvalidArgumentError, match="duplicate"):
            w.add_slice(n, [4], "0,2", np.zeros(2, np.float32))
    w.add("d", np.float32(3))
    w.finish()
    assert tfckpt.read(str(tmp_path / "p")) == {"a": 1, "b": 1, "c": 1, "d": 3}


_adds = st.lists(st.tuples(
    st.one_of(st.sampled_from(["a", "b", "c", "d/e", "\u00e9", "", "\x00x", "x\x00", "\ud800", "\udcff"]),
              st.integers(0, 3)),
    st.sampled_from(["f32", "f64", "strided", "big-endian", "text", "int", "scalar"])), max_size=12)


def _value(kind: str) -> object:
    return {"f32": np.arange(3, dtype=np.float32), "f64": np.ones((2, 2)), "strided": np.arange(8.0)[::2],
            "big-endian": np.arange(3, dtype=">i4"), "text": "t", "int": 7, "scalar": np.float32(2)}[kind]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_adds, st.integers(0, 12))
def test_writer_add_many_is_add_one_by_one(tmp_path: Path, adds: list[tuple[object, str]], split: int) -> None:
    # The same files, or the same error after the same tensors, whatever the names and values:
    # add_many, and add_arrays checking whole lists (from one tensor on here; with no dtype known
    # yet, so it learns them), called twice.
    def run(d: str, how: str) -> tuple[str | None, dict[str, bytes]]:
        w = tfckpt.BundleWriter(os.path.join(tmp_path, d, "p"))
        pairs = [(n, _value(k)) for n, k in adds]
        try:
            if how == "many":
                w.add_many(pairs)  # type: ignore[arg-type]
            elif how == "arrays":
                with mock.patch.object(bundle_writer, "_ARRAYS", 1), mock.patch.dict(bundle_writer._PLAIN, clear=True):
                    for part in (pairs[:split], pairs[split:]):
                        w.add_arrays([n for n, _ in part], [v for _, v in part])  # type: ignore[misc]
            else:
                for n, v in pairs:
                    w.add(n, v)  # type: ignore[arg-type]
        except tfckpt.errors.CheckpointError as e:
            named = e.path == w.prefix and str(e).endswith(f" (writing checkpoint {w.prefix})")
            err: str | None = f"{type(e).__name__}: {e}".replace(w.prefix, "<prefix>")
        else:
            named, err = True, None
        assert named  # (an error names the checkpoint)
        w.finish()
        folder = os.path.join(tmp_path, d)
        return err, {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}

    tag = str(abs(hash(repr(adds))))
    one = run(tag + "-one", "one")
    assert run(tag + "-many", "many") == one
    assert run(tag + "-arrays", "arrays") == one


_F = np.arange(3, dtype=np.float32)


@pytest.mark.parametrize("calls", [
    [["a", "b"], ["c"]],  # accepted whole
    [["b"], ["a"]],  # a second call before the first's last key
    [["a", "b"], ["b"]],  # a duplicate across calls
    [["a", "a"]],  # a duplicate in one call
    [["b", "a"]],  # out of order in one call
    [["a", "b\x00c"]],  # a NUL inside a name
    [["a", "b\x00"]],
    [["a", ""]],  # an empty name
    [["a", "b\ud800"]],  # not encodable
    [["a", "\udcff"]],  # an undecodable byte kept as a surrogate
    [["a", 3]],  # not a str
])
@pytest.mark.parametrize("kind", ["f32", "f16", "strided", "big-endian", "text", "int"])
def test_add_arrays_lists_are_add_one_by_one(tmp_path: Path, calls: list[list[object]], kind: str) -> None:
    # add_arrays checks whole lists (from one tensor on here, no dtype known yet): whatever it
    # declines, add reports as it would one by one; the files are the same.
    values = {"f32": _F, "f16": _F.astype(np.float16), "strided": np.arange(8.0)[::2],
              "big-endian": np.arange(3, dtype=">i4"), "text": "t", "int": 7}
    fast = calls == [["a", "b"], ["c"]] and kind in ("f32", "f16")

    def run(d: str, arrays: bool) -> tuple[str | None, dict[str, bytes]]:
        w = tfckpt.BundleWriter(str(tmp_path / d / "p"))
        err = None
        try:
            with mock.patch.object(bundle_writer, "_ARRAYS", 1), mock.patch.dict(bundle_writer._PLAIN, clear=True):
                for names in calls:
                    vals = [_F if i % 2 else values[kind] for i in range(len(names))]
                    if arrays and fast:  # (checked as lists: add_many is not called)
                        with mock.patch.object(w, "add_many", side_effect=AssertionError("not checked as lists")):
                            w.add_arrays(names, vals)  # type: ignore[arg-type]
                    elif arrays:
                        w.add_arrays(names, vals)  # type: ignore[arg-type]
                    else:
                        for n, v in zip(names, vals):
                            w.add(n, v)  # type: ignore[arg-type]
        except tfckpt.errors.CheckpointError as e:
            err = f"{type(e).__name__}: {e}".replace(w.prefix, "<prefix>")
        w.finish()
        return err, {f.name: f.read_bytes() for f in sorted((tmp_path / d).iterdir())}

    assert run("arrays", True) == run("one", False)


def test_python_values_follow_numpy(tmp_path: Path) -> None:
    p = tfckpt.write({"i": 3, "f": 1.5, "s": "héllo", "b": b"\x00\xff", "l": ["a", b"b"], "t": True},
                     str(tmp_path / "c"))
    r = tfckpt.CheckpointReader(p)
    assert {k: v.name for k, v in r.get_variable_to_dtype_map().items()} == {
        "b": "string", "f": "float64", "i": "int64", "l": "string", "s": "string", "t": "bool"}
    assert r.get_tensor("s") == "héllo".encode()
    assert list(tfckpt.read(tfckpt.write({"z": [b"\x00", b"a\x00"]}, str(tmp_path / "z")))["z"]) == [b"\x00", b"a\x00"]
    assert list(r.get_tensor("l")) == [b"a", b"b"]


def test_big_endian_input_is_stored_little_endian(tmp_path: Path) -> None:
    a = np.arange(4, dtype=">i4")
    p = tfckpt.write({"a": a}, str(tmp_path / "c"))
    got = tfckpt.read(p)["a"]
    assert got.dtype == np.dtype("<i4")
    np.testing.assert_array_equal(got, a)


def test_read_into_existing_array(tmp_path: Path) -> None:
    p = tfckpt.write({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp_path / "c"))
    out = np.zeros((2, 3), np.float32)
    r = tfckpt.CheckpointReader(p)
    assert r.read_into("w", out) is out
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3))
    with pytest.raises(tfckpt.errors.InvalidArgumentError):
        r.read_into("w", np.zeros((3, 2), np.float32))


# -- helpful errors for the wrong path ------------------------------------------------


def test_wrong_path_messages(tmp_path: Path) -> None:
    errs = tfckpt.errors
    p = tfckpt.write({"w": np.zeros(2)}, str(tmp_path / "model.ckpt-1"))
    tfckpt.update_checkpoint_state(str(tmp_path), p)
    with pytest.raises(errs.InvalidArgumentError, match=r"pass the prefix '.*model.ckpt-1'"):
        tfckpt.CheckpointReader(p + ".data-00000-of-00001")
    with pytest.raises(errs.InvalidArgumentError, match="checkpoint state file"):
        tfckpt.CheckpointReader(str(tmp_path / "checkpoint"))
    with pytest.raises(errs.InvalidArgumentError, match="is the index"):
        tfckpt.CheckpointReader(p + ".index")
    with pytest.raises(errs.NotFoundError, match="Failed to find any matching files"):
        tfckpt.CheckpointReader(str(tmp_path / "nope"))
    with pytest.raises(errs.NotFoundError, match="Couldn't find 'checkpoint' file"):
        tfckpt.load_checkpoint(str(tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else ""))
    (tmp_path / "junk").write_bytes(b"not a table at all, definitely not" * 3)
    with pytest.raises(errs.DataLossError, match="Unable to open table file"):
        tfckpt.CheckpointReader(str(tmp_path / "junk"))


def test_missing_tensor_is_key_error(tmp_path: Path) -> None:
    p = tfckpt.write({"w": np.zeros(2)}, str(tmp_path / "c"))
    r = tfckpt.CheckpointReader(p)
    with pytest.raises(KeyError):
        r.get_tensor("v3")
    with pytest.raises(tfckpt.errors.NotFoundError, match="Key v3 not found in checkpoint"):
        r.get_tensor("v3")
    assert not r.has_tensor("v3")


def test_debug_string_format(tmp_path: Path) -> None:
    p = tfckpt.write({"v0": np.zeros((2, 3), np.float32), "v1": np.zeros((3, 2, 1), np.float32),
                      "s": np.float16(1)}, str(tmp_path / "c"))
    assert tfckpt.CheckpointReader(p).debug_string() == b"s (DT_HALF) []\nv0 (DT_FLOAT) [2,3]\nv1 (DT_FLOAT) [3,2,1]\n"


def test_short_writev_resumes_inside_a_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    state: dict[str, object] = {f"t{i:04d}": rng.random(int(rng.integers(0, 40))) for i in range(1100)}
    state.update({"bf": rng.random((3, 5)).astype(ml_dtypes.bfloat16), "s": np.float32(2.5),
                  "words": np.array([b"ab", b"", b"xyz"], dtype=object), "empty": np.zeros((0, 3))})
    whole = tfckpt.write(state, str(tmp_path / "whole"))
    real = os.writev
    calls = []

    def short(fd: int, bufs: list[object]) -> int:  # every other call stores a third (at least a byte)
        data = b"".join(bytes(memoryview(b)) for b in bufs)  # type: ignore[arg-type]
        calls.append(len(bufs))
        return os.write(fd, data[: max(1, len(data) // 3)] if len(calls) % 2 else data)

    monkeypatch.setattr(os, "writev", short)
    parts = tfckpt.write(state, str(tmp_path / "parts"))
    monkeypatch.setattr(os, "writev", real)
    assert len(calls) > 3
    for suffix in (".index", ".data-00000-of-00001"):
        assert Path(parts + suffix).read_bytes() == Path(whole + suffix).read_bytes()
    got = tfckpt.read(whole)
    assert got.keys() == state.keys()
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 3 << 20), st.just(-1), st.integers(8 << 20, 20 << 20),
                          st.integers(0, 64)), max_size=3000))
def test_writer_batches_cover_every_tensor_within_limits(sizes: list[int]) -> None:
    from tfckpt._format import bundle_writer as bw

    batches = list(bw._batches(sizes))
    assert [i for a, b in batches for i in range(a, b)] == list(range(len(sizes)))
    for a, b in batches:
        assert 0 < b - a <= bw._IOV_MAX
        if b - a > 1:  # strings (-1) and tensors of _BATCH bytes or more come alone
            assert all(0 <= k < bw._BATCH for k in sizes[a:b])
            assert sum(sizes[a:b]) < 2 * bw._BATCH
