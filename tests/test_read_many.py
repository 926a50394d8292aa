"""Bulk reads (``CheckpointReader.read_many``) and the fast index-entry decoder behind them."""

from __future__ import annotations

import itertools
import os
import types
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

import tfckpt
from tfckpt._format import bundle_reader, runs
from tfckpt._format.coding import FIXED32, crc32c, mask
from tfckpt._format.entries_bulk import decode_entries, encode_values
from tfckpt._format.entry import BundleEntry, BundleHeader, encode_entry, entry_head
from tfckpt._format.table import TableReader, TableWriter
from tfckpt._proto import checkpoint_pb2
from tfckpt._storage import LocalFile
from tfckpt.errors import DataLossError, InvalidArgumentError, InvalidTypeError, NotFoundError, TensorNotFoundError


def _state(rng: np.random.Generator) -> dict[str, object]:
    state: dict[str, object] = {f"small/{i:03d}": rng.random(int(rng.integers(1, 300)), dtype=np.float32)
                                for i in range(150)}
    state.update({
        "big": rng.random(300_000),  # 2.4 MB: read on its own, in parallel parts
        "bf16": rng.random((7, 3)).astype(ml_dtypes.bfloat16),
        "ints": np.arange(12, dtype=np.int64).reshape(3, 4),
        "scalar": np.int32(5),
        "empty": np.zeros((0, 4), np.float32),
        "words": np.array([b"a", b"", b"xyz"], dtype=object),
        "flag": np.bool_(True),
    })
    return state


def _same(a: np.ndarray, b: object) -> None:  # type: ignore[type-arg]
    b = np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    if a.dtype == object:
        assert a.tolist() == b.tolist()
    else:
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shards", [1, 3])
def test_read_many_matches_reading_one_by_one(tmp_path: Path, shards: int) -> None:
    state = _state(np.random.default_rng(0))
    p = tfckpt.write(state, str(tmp_path / "c"), num_shards=shards)
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many()
        assert list(got) == sorted(state)
        for k, v in state.items():
            _same(got[k], v)
            _same(got[k], r.get_tensor(k))
        picked = r.read_many(["words", "small/007", "big"])
        assert list(picked) == ["words", "small/007", "big"]
    assert list(tfckpt.read(p, ["ints", "scalar"])) == ["ints", "scalar"]


def test_read_many_into_existing_arrays(tmp_path: Path) -> None:
    state = _state(np.random.default_rng(1))
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {k: np.zeros_like(np.asarray(v)) for k, v in state.items()}
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many(out=out)
    assert list(got) == list(out)
    for k, v in state.items():
        assert got[k] is out[k]
        _same(out[k], v)


def test_read_many_parallel_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    # 8 MB of 32 KB tensors: runs of about 1 MiB go to worker threads
    state = {f"t{i:04d}": rng.random(4096) for i in range(256)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {k: np.empty_like(v) for k, v in state.items()}
    with tfckpt.CheckpointReader(p) as r:
        r.read_many(out=out)
    for k, v in state.items():
        np.testing.assert_array_equal(out[k], v)


def test_read_many_follows_data_order_not_name_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    state = {f"t{i:03d}": rng.random(10) for i in range(100)[::-1]}  # data written in reverse name order
    p = tfckpt.write(state, str(tmp_path / "c"))
    got = tfckpt.read(p)
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v)


def test_read_many_errors(tmp_path: Path) -> None:
    state = {f"t{i:03d}": np.full(100, i, np.float32) for i in range(100)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    with tfckpt.CheckpointReader(p) as r:
        with pytest.raises(TensorNotFoundError, match="nope"):
            r.read_many(["t001", "nope"])
        with pytest.raises(InvalidArgumentError, match="t005"):
            r.read_many(out={"t005": np.zeros(99, np.float32)})
        with pytest.raises(InvalidArgumentError, match="t005"):
            r.read_many(out={"t005": np.zeros(100, np.float64)})
        readonly = np.zeros(100, np.float32)
        readonly.flags.writeable = False
        with pytest.raises(InvalidArgumentError):
            r.read_many(out={"t005": readonly})
    data = f"{p}.data-00000-of-00001"
    with open(data, "r+b") as f:  # corrupt one tensor in the middle of a run
        f.seek(50 * 400 + 8)
        f.write(b"\xff\xff\xff\xff")
    with tfckpt.CheckpointReader(p) as r, pytest.raises(DataLossError, match="t050") as info:
        r.read_many()
    assert info.value.key == "t050"
    assert tfckpt.read(p, verify_crc=False)["t050"][2] != 50.0
    os.truncate(data, 60 * 400 + 3)
    with tfckpt.CheckpointReader(p) as r, pytest.raises(DataLossError, match="t060") as info:
        r.read_many()
    assert info.value.key == "t060"
    os.remove(data)
    with pytest.raises(NotFoundError) as nf:
        tfckpt.read(p)
    assert nf.value.key == "t000"


def _misfit(kind: str) -> np.ndarray:  # type: ignore[type-arg]
    """An array that cannot receive a float32[100] tensor."""
    if kind == "readonly":
        a = np.zeros(100, np.float32)
        a.flags.writeable = False
        return a
    return {"shape": np.zeros(99, np.float32), "dtype": np.zeros(100, np.float64),
            "strided": np.zeros(200, np.float32)[::2], "2d": np.zeros((10, 10), np.float32)}[kind]


@pytest.mark.parametrize("kind", ["shape", "dtype", "readonly", "strided", "2d"])
@pytest.mark.parametrize("every", [False, True])
def test_read_many_into_a_misfit_among_many(tmp_path: Path, kind: str, every: bool) -> None:
    # 100 destinations: the entries are decoded and checked a batch at a time, and the one
    # misfit gets the same error as when it is read alone.
    state = {f"t{i:03d}": np.full(100, i, np.float32) for i in range(100)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {k: np.zeros_like(v) for k, v in state.items()}
    out["t050"] = _misfit(kind)
    with tfckpt.CheckpointReader(p) as r:
        with pytest.raises(InvalidArgumentError) as alone:
            r.read_many(out={"t050": out["t050"]})
        # names=None walks the whole index instead of looking up the names of ``out``
        read = (lambda: r._impl.read_many(None, out)) if every else (lambda: r.read_many(out=out))
        with pytest.raises(InvalidArgumentError) as many:
            read()
    assert many.value.key == "t050"
    assert str(many.value) == str(alone.value)


def _rewrite_index(prefix: str, edit: object) -> None:
    """Rewrite the index of bundle ``prefix``: ``edit`` (a callable) changes its key -> entry dict."""
    with open(f"{prefix}.index", "rb") as f:
        items = dict(TableReader(f.read()).items())
    edit(items)  # type: ignore[operator]
    w = TableWriter()
    w.add_many(sorted(items.items()))
    with open(f"{prefix}.index", "wb") as f:
        f.write(w.finish())


def test_read_many_of_an_entry_whose_size_misfits_its_shape(tmp_path: Path) -> None:
    state = {f"t{i:03d}": np.full(100, i, np.float32) for i in range(100)}
    p = tfckpt.write(state, str(tmp_path / "c"))

    def shrink(items: dict[bytes, bytes]) -> None:
        e = BundleEntry.decode(items[b"t050"])
        items[b"t050"] = e._replace(size=e.size - 4).encode()

    _rewrite_index(p, shrink)
    with tfckpt.CheckpointReader(p) as r:
        with pytest.raises(DataLossError) as alone:
            r.read_many(["t050"])
        with pytest.raises(DataLossError) as many:
            r.read_many()
    assert many.value.key == "t050"
    assert str(many.value) == str(alone.value)
    assert "needs 400 bytes but its entry says 396" in str(many.value)


def test_read_many_of_many_names(tmp_path: Path) -> None:
    # more than 64 names: one walk of the index picks them instead of one search per name
    state = {f"t{i:03d}": np.full(10, i, np.float32) for i in range(200)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    wanted = [f"t{i:03d}" for i in range(199, 0, -2)] + ["t199"]  # reverse order, one duplicate
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many(wanted)
        assert list(got) == wanted[:-1]
        assert all(got[n][0] == int(n[1:]) for n in wanted)
        with pytest.raises(TensorNotFoundError, match="nope") as nf:
            r.read_many([*wanted, "nope", "nope2"])
        assert nf.value.key == "nope"
        out = {n: np.zeros(10, np.float32) for n in wanted}
        out["t101"] = np.zeros(10, np.float64)  # same stored kind as the others, wrong array
        with pytest.raises(InvalidArgumentError, match="t101"):
            r.read_many(out=out)
        out["t101"] = np.zeros(10, np.float32)[::-1]  # not C-contiguous
        with pytest.raises(InvalidArgumentError, match="t101"):
            r.read_many(out=out)
        out["t101"] = np.zeros(10, np.float32)
        assert r.read_many(out=out)["t101"] is out["t101"]
        assert out["t101"][0] == 101.0
        r.get_variable_to_shape_map()  # with the key list decoded, names are looked up one by one
        assert list(r.read_many(wanted)) == wanted[:-1]


def test_read_many_missing_name_reads_nothing(tmp_path: Path) -> None:
    state = {f"t{i:03d}": np.full(10, i, np.float32) for i in range(200)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {n: np.zeros(10, np.float32) for n in state}
    with tfckpt.CheckpointReader(p) as r, pytest.raises(TensorNotFoundError, match="zzz"):
        r.read_many([*state, "zzz"], out=out)
    assert not any(a.any() for a in out.values())  # every name is resolved before any byte is read


@pytest.mark.parametrize("missing", ["t000a", "zzz"])
def test_read_many_into_out_reads_nothing_until_every_key_is_found(tmp_path: Path, missing: str) -> None:
    # out alone (its keys are the names): the index is walked once, and nothing, not even a
    # tensor read whole (strings, over 8 MiB), is read before every key is found.
    state: dict[str, object] = {f"t{i:03d}": np.full(10, i, np.float32) for i in range(200)}
    state.update({"words": np.array([b"a", b"bc"], dtype=object), "huge": np.ones(3 << 20)})
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {n: np.zeros_like(np.asarray(v)) for n, v in state.items()}
    out[missing] = np.zeros(10, np.float32)
    with tfckpt.CheckpointReader(p) as r, pytest.raises(TensorNotFoundError, match=missing):
        r.read_many(out=out)
    assert not any(a.any() for a in out.values() if a.dtype != object)
    assert out["words"].tolist() == [0, 0]  # (as np.zeros_like made it)


def test_read_many_into_out_result(tmp_path: Path) -> None:
    state: dict[str, object] = {f"t{i:03d}": np.full(10, i, np.float32) for i in range(200)}
    state.update({"words": np.array([b"a", b"bc"], dtype=object), "huge": np.ones(3 << 20)})
    p = tfckpt.write(state, str(tmp_path / "c"))
    out: dict[str, object] = {n: np.zeros_like(np.asarray(v)) for n, v in reversed(state.items())}
    out["t005"] = None  # read into a new array
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many(out=out)  # type: ignore[arg-type]
        viewed = r.read_many(out=types.MappingProxyType(out))  # type: ignore[arg-type]
    for result in (got, viewed):
        assert list(result) == list(out)  # out's order, not the index's
        for k, v in state.items():
            _same(result[k], v)
            if k != "t005":
                assert result[k] is out[k]
    assert out["t005"] is None
    assert got["t005"] is not viewed["t005"]


def test_read_many_with_some_entries_cached(tmp_path: Path) -> None:
    state = {f"t{i:03d}": np.full(10, i, np.float32) for i in range(300)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    r = bundle_reader.BundleReader(p)
    r.entries([f"t{i:03d}" for i in range(0, 300, 3)])  # a third decoded and cached
    wanted = [f"t{i:03d}" for i in range(299, -1, -1)]
    got = r.read_many(wanted)
    assert list(got) == wanted  # the result follows the names, whatever order they are read in
    assert all(got[n][0] == int(n[1:]) for n in wanted)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, np.ndarray]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(7)
    # sizes around the point where a run goes to a worker thread, in three interleaved shards
    state = {f"t{i:03d}": rng.random(int(rng.choice([1, 700, 9000, 40_000]))) for i in range(120)}
    p = tfckpt.write(state, str(tmp_path_factory.mktemp("sharded") / "c"), num_shards=3)
    return p, state


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_read_many_any_names_in_any_order(sharded: tuple[str, dict[str, np.ndarray]],  # type: ignore[type-arg]
                                          data: st.DataObject) -> None:
    p, state = sharded
    names = data.draw(st.lists(st.sampled_from(sorted(state)), unique=True))
    into = data.draw(st.sets(st.sampled_from(names))) if names else set()
    out = {n: np.empty_like(state[n]) for n in into}
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many(names, out=out)
    assert list(got) == names
    for n in names:
        np.testing.assert_array_equal(got[n], state[n])
        assert n not in out or got[n] is out[n]


def test_read_many_of_entries_sharing_their_bytes(tmp_path: Path) -> None:
    # A hand-made index whose 3,000 entries all name the same bytes: each gets its own read
    # (overlapping tensors are never merged into one run), in one pass over the sorted leftovers.
    p = tfckpt.write({"t": np.arange(16, dtype=np.float32)}, str(tmp_path / "c"))
    e = tfckpt.CheckpointReader(p)._impl.entry("t")  # type: ignore[union-attr]
    w = TableWriter()
    w.add(b"", BundleHeader().encode())
    names = [f"t{i:04d}" for i in range(3000)]
    w.add_many([(n.encode(), e.encode()) for n in names])
    Path(p + ".index").write_bytes(w.finish())
    out = {n: np.zeros(16, np.float32) for n in names[::2]}
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many(names[::-1], out=out)
    assert list(got) == names[::-1]
    assert all(np.array_equal(a, np.arange(16, dtype=np.float32)) for a in got.values())
    assert all(got[n] is out[n] for n in out)


@pytest.mark.parametrize("count", [3, 150])  # few names: one search each; many: one walk of the index
def test_bundle_reader_entries(tmp_path: Path, count: int) -> None:
    state = {f"t{i:03d}": np.arange(i % 5, dtype=np.int16) for i in range(200)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    r = bundle_reader.BundleReader(p)
    names = [f"t{i:03d}" for i in range(count, 0, -1)]
    got = r.entries([*names, "absent", names[0]])
    assert sorted(got) == sorted(names)
    assert all(got[n] == r.entry(n) and got[n].shape == (int(n[1:]) % 5,) for n in names)
    assert r.entries([names[0]])[names[0]] is got[names[0]]  # cached


def test_read_many_waits_for_workers_before_raising(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    state = {f"t{i:04d}": rng.random(4096) for i in range(256)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {k: np.empty_like(v) for k, v in state.items()}
    out["t0200"] = np.empty(3)  # fails while earlier runs are being read by workers
    with tfckpt.CheckpointReader(p) as r, pytest.raises(InvalidArgumentError, match="t0200"):
        r.read_many(out=out)
    pool = runs.crc_pool()
    assert pool.submit(lambda: 1).result() == 1  # the pool is idle and usable


@pytest.mark.parametrize("failing", [0, 5, 15])
def test_read_many_stops_every_reader_of_runs_after_a_failed_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  failing: int) -> None:
    # 16 runs of 1 MiB, shared out between the workers and the calling thread: one read fails.
    rng = np.random.default_rng(5)
    state = {f"t{i:04d}": rng.random(4096) for i in range(512)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    out = {k: np.empty_like(v) for k, v in state.items()}
    read_run = runs._read_run
    busy: list[int] = []  # runs being read right now
    done: list[int] = []

    def flaky(run: runs._Run, verify: bool) -> list[int]:
        k = run.start >> 20  # (runs of 1 MiB: 32 tensors of 32 KiB)
        busy.append(k)
        try:
            if k == failing:
                raise DataLossError(f"cannot read run {k}")
            return read_run(run, verify)
        finally:
            busy.remove(k)
            done.append(k)

    monkeypatch.setattr(runs, "_read_run", flaky)
    with tfckpt.CheckpointReader(p) as r, pytest.raises(DataLossError, match=f"cannot read run {failing}"):
        r.read_many(out=out)
    assert busy == []  # no thread still writes into a destination
    assert failing in done
    assert len(set(done)) == len(done) <= 16  # each run taken by one thread at most
    monkeypatch.setattr(runs, "_read_run", read_run)
    with tfckpt.CheckpointReader(p) as r:  # the pool is usable again, and the reads are right
        got = r.read_many(out=out)
    for k, v in state.items():
        assert np.array_equal(got[k], v)


# -- the fast entry decoder agrees with protobuf ------------------------------------------------


def _reference(data: bytes) -> tuple[object, ...] | None:
    try:
        p = checkpoint_pb2.BundleEntryProto.FromString(data)
    except DecodeError:
        return None
    return (p.dtype, tuple(d.size for d in p.shape.dim), p.shard_id, p.offset, p.size, p.crc32c, len(p.slices),
            p.shape.unknown_rank)


entries = st.builds(
    BundleEntry,
    st.sampled_from([1, 2, 3, 9, 14, 19]),
    st.lists(st.integers(0, 2**15), max_size=4).map(tuple),
    st.integers(0, 300),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.integers(0, 2**32 - 1),
    slices=st.just(()),
)


@settings(max_examples=400, deadline=None)
@given(entries, st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=3), st.integers(0, 3),
       st.binary(max_size=6))
def test_decode_agrees_with_protobuf(e: BundleEntry, flips: list[tuple[int, int]], cut: int, extra: bytes) -> None:
    good = e.encode()
    assert BundleEntry.decode(good) == e  # (teaches the decoder this head)
    assert BundleEntry.decode(good) == e  # (the fast path)
    data = bytearray(good)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    mutated = bytes(data[: len(data) - cut]) + extra
    ref = _reference(mutated)
    try:
        got = BundleEntry.decode(mutated)
    except DataLossError:
        return
    assert ref is not None, "decoded bytes protobuf rejects"
    assert not ref[7]
    assert (got.dtype, got.shape, got.shard_id, got.offset, got.size, got.crc32c, len(got.slices)) == ref[:7]


def _mutate(good: bytes, flips: list[tuple[int, int]], cut: int, extra: bytes) -> bytes:
    data = bytearray(good)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    return bytes(data[: len(data) - cut]) + extra


def _outcome(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except DataLossError as err:
        return ("error", str(err), err.key)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(entries, st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=2),
                          st.integers(0, 3), st.binary(max_size=6), st.booleans()), min_size=32, max_size=80))
def test_bulk_decode_agrees_with_one_by_one(batch: list[tuple[BundleEntry, list[tuple[int, int]], int, bytes,
                                                              bool]]) -> None:
    values = [_mutate(e.encode(), flips, cut, extra) if bad else e.encode() for e, flips, cut, extra, bad in batch]
    names = [f"t{i}" for i in range(len(values))]
    one_by_one = _outcome(lambda: [BundleEntry.decode(v, key=k, path="p") for v, k in zip(values, names)])
    assert _outcome(lambda: decode_entries(values, names, "p")) == one_by_one


@pytest.mark.parametrize("kinds", [[(1, (3,))], [(1, (3,)), (2, (3,)), (1, (4,))],
                                   [(1, (3,)), (1, (2, 300)), (2, ()), (19, (5, 1, 4))]])
@settings(max_examples=60, deadline=None)
@given(shard=st.integers(0, 99999), start=st.integers(0, 2**40),
       rows=st.lists(st.tuples(st.integers(0, 3), st.one_of(st.integers(0, 300), st.integers(0, 2**40)),
                               st.integers(0, 2**32 - 1)), min_size=1, max_size=150))
def test_entries_encoded_as_one_array_match_one_by_one(shard: int, start: int, rows: list[tuple[int, int, int]],
                                                       kinds: list[tuple[int, tuple[int, ...]]]) -> None:
    # Whole entries with numpy: one head, heads of one length, heads of several lengths.
    specs = [kinds[k % len(kinds)] for k, _, _ in rows]
    number = {s: i for i, s in enumerate(dict.fromkeys(specs))}
    blob, lengths = encode_values([entry_head(*s) for s in number], np.array([number[s] for s in specs]), shard,
                                  start, [size for _, size, _ in rows], [crc for _, _, crc in rows])
    want = []
    pos = start
    for spec, (_, size, crc) in zip(specs, rows):
        want.append(encode_entry(*spec, shard, pos, size, crc))
        pos += size
    assert blob.tobytes() == b"".join(want)
    assert lengths.tolist() == [len(e) for e in want]


def test_bulk_decode_of_truncated_heads() -> None:
    es = [BundleEntry(1, (i, 7, 300), 0, 0, 0, 0) for i in range(40)]  # no tail fields: the head is everything
    values = [e.encode() for e in es]
    for cut in range(1, len(values[5]) - 3):
        batch = [*values[:5], values[5][:-cut], *values[6:]]
        names = [f"t{i}" for i in range(len(batch))]
        one_by_one = _outcome(lambda b=batch, n=names: [BundleEntry.decode(v, key=k, path="p") for v, k in zip(b, n)])
        assert one_by_one[0] == "error"  # type: ignore[index]
        assert _outcome(lambda b=batch, n=names: decode_entries(b, n, "p")) == one_by_one
    assert decode_entries(values, [str(i) for i in range(40)], "p") == es


def test_decode_non_canonical_layouts() -> None:
    e = BundleEntry(1, (3,), 0, 12, 12, 99)
    canon = e.encode()
    reordered = b"\x28\x0c" + canon.replace(b"\x28\x0c", b"")  # size first: valid protobuf
    assert BundleEntry.decode(reordered) == e
    twice = canon + b"\x20\x05"  # a repeated scalar field: the last one wins
    assert BundleEntry.decode(twice).offset == 5
    negative = canon.replace(b"\x20\x0c", b"\x20" + b"\xff" * 9 + b"\x01")
    with pytest.raises(DataLossError, match="negative"):
        BundleEntry.decode(negative)
    assert BundleEntry.decode(canon[:-5] + b"\x35" + FIXED32.pack(7)).crc32c == 7


def test_read_many_golden_formats() -> None:
    golden = Path(__file__).parent / "golden" / "tf2.21"
    for case in ("saver_v1", "savev2_all_dtypes", "snappy_index"):  # V1 tables, every dtype, snappy blocks
        prefix = str(golden / case / ("model.ckpt" if case == "saver_v1" else "ckpt"))
        with tfckpt.CheckpointReader(prefix) as r:
            bulk = r.read_many()
            for name in r.get_variable_to_shape_map():
                _same(bulk[name], r.get_tensor(name))


def test_read_many_takes_names_as_get_tensor_does() -> None:
    # str or bytes names (TensorFlow's reader takes both), from a list or any iterable, in V1
    # tables and V2 bundles alike; the result is keyed by the str names.
    golden = Path(__file__).parent / "golden" / "tf2.21"
    for case in ("saver_v1", "savev2_all_dtypes"):
        prefix = str(golden / case / ("model.ckpt" if case == "saver_v1" else "ckpt"))
        with tfckpt.CheckpointReader(prefix) as r:
            names = sorted(r.get_variable_to_shape_map())[:3]
            want = r.read_many(names)
            for got in (r.read_many([n.encode() for n in names]), r.read_many(iter(names)),
                        r.read_many(tuple(names))):
                assert list(got) == names
                for n in names:
                    _same(got[n], want[n])
            with pytest.raises(InvalidTypeError, match="must be a str"):
                r.read_many([names[0], 3])  # type: ignore[list-item]


@pytest.mark.parametrize("case", ["saver_v1", "savev2_all_dtypes"])
@pytest.mark.parametrize("bad", ["list", "float", "tensor-like", "dtype", "shape", "readonly"])
def test_read_into_a_destination_that_is_not_a_fitting_array(case: str, bad: str) -> None:
    golden = Path(__file__).parent / "golden" / "tf2.21"
    prefix = str(golden / case / ("model.ckpt" if case == "saver_v1" else "ckpt"))
    with tfckpt.CheckpointReader(prefix) as r:
        name = next(n for n, s in r.get_variable_to_shape_map().items()
                    if s and r.get_variable_to_dtype_map()[n].name == "float32")
        want = r.get_tensor(name)
        readonly = np.zeros_like(want)
        readonly.flags.writeable = False
        dest = {"list": want.tolist(), "float": 1.0, "tensor-like": memoryview(want.copy()),
                "dtype": want.astype(np.complex128), "shape": np.zeros(want.size + 1, want.dtype),
                "readonly": readonly}[bad]
        with pytest.raises(InvalidArgumentError, match=repr(name)) as one:
            r.read_into(name, dest)  # type: ignore[arg-type]
        assert one.value.key == name
        out = r.read_many()  # every tensor, so that entries are decoded in batches
        out[name] = dest
        with pytest.raises(InvalidArgumentError, match=repr(name)):
            r.read_many(out=out)


# -- copy=False: read-only views of the mapped data files ------------------------------------


def test_views_match_copies_for_every_golden_format() -> None:
    golden = Path(__file__).parent / "golden" / "tf2.21"
    for case in ("saver_v1", "savev2_all_dtypes", "snappy_index"):
        prefix = str(golden / case / ("model.ckpt" if case == "saver_v1" else "ckpt"))
        copies = tfckpt.read(prefix)
        views = tfckpt.read(prefix, copy=False)  # (the reader is closed: the views outlive it)
        assert list(views) == list(copies)
        for name, a in views.items():
            _same(a, copies[name])
            if case != "saver_v1" and a.dtype != object and a.size:
                assert not a.flags.writeable, name  # a view of the file, not a copy


def test_views_of_a_sharded_bundle(sharded: tuple[str, dict[str, np.ndarray]]) -> None:  # type: ignore[type-arg]
    p, state = sharded
    names = sorted(state)[::-3]
    with tfckpt.CheckpointReader(p) as r:
        got = r.read_many(names, copy=False)
    assert list(got) == names
    for n in names:
        _same(got[n], state[n])
        assert not got[n].flags.writeable


def test_views_check_crcs_and_bounds(tmp_path: Path) -> None:
    state = {f"t{i:03d}": np.full(100, i, np.float32) for i in range(100)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    with tfckpt.CheckpointReader(p) as r, pytest.raises(InvalidArgumentError, match="copy=False"):
        r.read_many(out={"t001": np.zeros(100, np.float32)}, copy=False)
    data = f"{p}.data-00000-of-00001"
    with open(data, "r+b") as f:
        f.seek(50 * 400 + 8)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(DataLossError, match="Checksum does not match for tensor 't050'") as info:
        tfckpt.read(p, copy=False)
    assert info.value.key == "t050"
    assert tfckpt.read(p, copy=False, verify_crc=False)["t050"][2] != 50.0
    os.truncate(data, 60 * 400 + 3)
    with pytest.raises(DataLossError, match="t060") as info:
        tfckpt.read(p, copy=False, verify_crc=False)
    assert info.value.key == "t060"


@pytest.mark.parametrize("how", ["into", "every", "names", "late"])
def test_read_many_names_a_bad_tensor_among_many(tmp_path: Path, how: str) -> None:
    # Runs of small tensors keep no names: a bad CRC, or data past the end of the file, is
    # reported under the name found again from the tensor's place, as a read of it alone does.
    n = 5000
    state = {f"t{i:04d}": np.full(16, i, np.float32) for i in range(n)}
    p = tfckpt.write(state, str(tmp_path / "c"))
    if how == "late":  # the data of t0000..t0999 after the others': out of index order
        def move(items: dict[bytes, bytes]) -> None:
            for k, v in items.items():
                if k.startswith(b"t"):
                    i = int(k[1:])
                    e = BundleEntry.decode(v)
                    items[k] = e._replace(offset=64 * ((i - 1000) % n)).encode()
        _rewrite_index(p, move)
        data = f"{p}.data-00000-of-00001"
        blob = Path(data).read_bytes()
        Path(data).write_bytes(blob[64000:] + blob[:64000])
    bad = "t0700" if how == "late" else "t3210"
    with tfckpt.CheckpointReader(p) as r:
        e = r._impl.entry(bad)
    data = f"{p}.data-00000-of-00001"
    with open(data, "r+b") as f:
        f.seek(e.offset + 5)
        f.write(b"\x99")

    def read_all(r: tfckpt.CheckpointReader) -> object:
        if how == "every":
            return r.read_many()
        if how == "names":
            return r.read_many(sorted(state, reverse=True))
        return r.read_many(out={k: np.empty_like(v) for k, v in state.items()})

    for problem in ("crc", "short"):
        if problem == "short":
            os.truncate(data, e.offset + 10)
        with tfckpt.CheckpointReader(p) as r:
            with pytest.raises(DataLossError) as alone:
                r.read_many([bad])
            with pytest.raises(DataLossError) as many:
                read_all(r)
        assert many.value.key == bad
        assert str(many.value) == str(alone.value)
        assert ("Checksum does not match" if problem == "crc" else "claims bytes") in str(many.value)


def test_read_many_names_a_bad_tensor_asked_for_when_two_share_its_bytes(tmp_path: Path) -> None:
    # Two index entries point at the same bytes (a hand-made file): the bad CRC is reported
    # under the name that was asked for.
    state = {f"t{i:03d}": np.full(16, i, np.float32) for i in range(200)}
    p = tfckpt.write(state, str(tmp_path / "c"))

    def alias(items: dict[bytes, bytes]) -> None:
        items[b"t150"] = items[b"t050"]

    _rewrite_index(p, alias)
    with open(f"{p}.data-00000-of-00001", "r+b") as f:
        f.seek(50 * 64)
        f.write(b"\x99")
    out = {k: np.empty_like(v) for k, v in state.items() if k != "t050"}
    with tfckpt.CheckpointReader(p) as r, pytest.raises(DataLossError, match="tensor 't150'") as info:
        r.read_many(out=out)
    assert info.value.key == "t150"
    with tfckpt.CheckpointReader(p) as r, pytest.raises(DataLossError, match="tensor 't050'"):
        r.read_many()  # (both are asked for: the first in index order)


class _Files:
    """What a RunQueue needs from its bundle: data files, and errors that name the tensor."""

    def __init__(self, paths: dict[int, str], names: dict[tuple[int, int], str]) -> None:
        self.files = {s: LocalFile(p) for s, p in paths.items()}
        self.names = names  # (shard, offset) -> name

    def _name_at(self, e: BundleEntry, among: object) -> str:
        return self.names[e.shard_id, e.offset]

    def _file(self, shard: int, key: str) -> LocalFile:
        return self.files[shard]

    def _data_file(self, name: str, e: BundleEntry, what: str) -> LocalFile:
        f = self.files[e.shard_id]
        if e.offset + e.size > f.size:
            raise DataLossError(f"{what} lies past the end of its file", key=name)
        return f

    def _check_crc(self, e: BundleEntry, data: object, name: str, f: LocalFile, actual: int | None = None) -> None:
        raise DataLossError(f"bad crc of {name}", key=name)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["tiny", "mixed", "big"]), st.sampled_from([0.0, 0.002, 0.2]),
       st.booleans())
def test_run_queue_batches_read_as_one_by_one(tmp_path_factory: pytest.TempPathFactory, seed: int, sizes: str,
                                              gaps: float, corrupt: bool) -> None:
    """``add_batch`` (runs cut with numpy) reads the same bytes and reports the same bad tensor
    as ``add`` one tensor at a time, whatever the order, gaps, shards and sizes."""
    rng = np.random.default_rng(seed)
    d = tmp_path_factory.mktemp("runs")
    n = {"tiny": 2500, "mixed": 400, "big": 40}[sizes]
    size = {"tiny": rng.integers(1, 40, n), "mixed": rng.integers(1, 40_000, n),
            "big": rng.integers(100_000, 600_000, n)}[sizes]
    shard = (np.arange(n) * int(rng.choice([1, 2, 7, n])) // n) % 2  # stretches of one shard, or alternating
    gap = rng.integers(1, 8, n) * (rng.random(n) < gaps)
    offset = np.zeros(n, np.int64)
    paths = {}
    for s in (0, 1):
        sel = np.flatnonzero(shard == s)
        offset[sel] = np.cumsum(size[sel] + gap[sel]) - size[sel]
        paths[s] = str(d / f"data{s}")
        with open(paths[s], "wb") as f:
            f.write(rng.bytes(int(offset[sel][-1] + size[sel][-1]) if len(sel) else 0))
    blobs = {s: Path(p).read_bytes() for s, p in paths.items()}
    order = np.arange(n)
    for _ in range(3):  # move a few stretches out of file order
        a, b = sorted(rng.integers(0, n, 2))
        order = np.concatenate([order[b:], order[a:b], order[:a]]) if rng.random() < 0.5 else order
    names = [f"t{i}" for i in order]
    where = np.stack([shard[order], offset[order], size[order]]).astype(np.int64)
    crcs = [mask(crc32c(blobs[s][o : o + k])) for s, o, k in where.T.tolist()]
    bad = int(rng.integers(0, n))
    if corrupt:
        crcs[bad] ^= 1
    owner = _Files(paths, {(s, o): name for (s, o, _), name in zip(where.T.tolist(), names)})
    results = []
    for batched in (False, True):
        bufs = [np.empty(k, np.uint8) for k in where[2].tolist()]
        q = runs.RunQueue(owner, verify=True)  # type: ignore[arg-type]
        try:
            if batched:
                cuts = sorted({0, n, *rng.integers(0, n, 3).tolist()})
                for a, b in itertools.pairwise(cuts):
                    q.add_batch(np.vstack([where[:, a:b], crcs[a:b]]), names[a:b], bufs[a:b])
            else:
                for (s, o, k), name, crc, buf in zip(where.T.tolist(), names, crcs, bufs):
                    q.add(s, name, o, k, crc, buf)
            q.finish()
            results.append(None)
        except DataLossError as e:
            results.append(e.key)
        finally:
            q.close()
        if not corrupt:
            for (s, o, k), buf in zip(where.T.tolist(), bufs):
                assert buf.tobytes() == blobs[s][o : o + k]
    assert results[0] == results[1] == (names[bad] if corrupt else None)


def test_shape_caches_stay_bounded(tmp_path: Path) -> None:
    # The caches of shapes, entry heads and layouts keep at most CACHE_SIZE kinds each, however
    # many distinct shapes a checkpoint has (here 300 against a bound of 8), and no shape of
    # more than CACHE_RANK dimensions; reads stay right.
    from unittest import mock

    from tfckpt._format import bulk_reads, entry

    state = {f"t{i:03d}": np.full((i + 1,), i, np.float32) for i in range(300)}
    state.update({f"r{i:02d}": np.full((1,) * 8 + (i + 1,), i, np.float32) for i in range(40)})  # (9 dimensions)
    caches = (entry._SHAPES, entry._ENTRY_HEADS, entry._HEADS, bulk_reads._LAYOUTS)
    with mock.patch.object(entry, "CACHE_SIZE", 8), mock.patch.object(bulk_reads, "CACHE_SIZE", 8), \
            mock.patch.dict(caches[0], clear=True), mock.patch.dict(caches[1], clear=True), \
            mock.patch.dict(caches[2], clear=True), mock.patch.dict(caches[3], clear=True):
        path = tfckpt.write(state, str(tmp_path / "c"))
        with tfckpt.CheckpointReader(path) as r:
            got = r.read_many()
            out = {k: np.zeros_like(v) for k, v in state.items()}
            r.read_many(out=out)
        assert [len(c) for c in caches] == [8, 8, 8, 8]
        for c in caches:
            c.clear()
        tfckpt.write({k: v for k, v in state.items() if k[0] == "r"}, str(tmp_path / "r"))
        with tfckpt.CheckpointReader(str(tmp_path / "r")) as r:
            r.read_many()
        assert [len(c) for c in caches] == [0, 0, 0, 0]
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v)
        np.testing.assert_array_equal(out[k], v)
