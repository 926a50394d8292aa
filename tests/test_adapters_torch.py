"""tfckpt.adapters.torch: torch tensors <-> numpy, bit for bit, and in-place assignment."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
ml_dtypes = pytest.importorskip("ml_dtypes")

import tfckpt  # noqa: E402
from tfckpt._format.bundle_reader import BundleReader  # noqa: E402
from tfckpt.adapters.torch import assign_, from_numpy, inplace_numpy, numpy_dtype, to_numpy  # noqa: E402
from tfckpt.errors import InvalidArgumentError  # noqa: E402


@pytest.mark.parametrize(
    ("tdtype", "npdtype"),
    [
        ("float32", "float32"), ("float64", "float64"), ("float16", "float16"), ("int8", "int8"),
        ("int16", "int16"), ("int32", "int32"), ("int64", "int64"), ("uint8", "uint8"), ("bool", "bool"),
        ("complex64", "complex64"), ("complex128", "complex128"),
    ],
)
def test_plain_dtypes_round_trip(tdtype: str, npdtype: str) -> None:
    t = (torch.arange(6) % 3).reshape(2, 3).to(getattr(torch, tdtype))
    a = to_numpy(t)
    assert a.dtype == np.dtype(npdtype)
    assert a.tolist() == t.tolist()
    assert numpy_dtype(getattr(torch, tdtype)) == np.dtype(npdtype)
    assert torch.equal(from_numpy(a), t)


def test_bfloat16_is_bit_exact() -> None:
    bits = torch.tensor([0x3FC0, 0x7F80, -0x0001, 0x0001], dtype=torch.int16)  # 1.5, inf, nan, tiny
    t = bits.view(torch.bfloat16)
    a = to_numpy(t)
    assert a.dtype == np.dtype(ml_dtypes.bfloat16)
    assert a.view(np.int16).tolist() == bits.tolist()
    back = from_numpy(a)
    assert back.dtype == torch.bfloat16
    assert back.view(torch.int16).tolist() == bits.tolist()


@pytest.mark.skipif(not hasattr(torch, "float8_e4m3fn"), reason="this torch has no float8")
def test_float8() -> None:
    t = torch.tensor([1.0, -2.0, 0.5]).to(torch.float8_e4m3fn)
    a = to_numpy(t)
    assert a.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert a.astype(np.float32).tolist() == [1.0, -2.0, 0.5]
    assert from_numpy(a).view(torch.uint8).tolist() == t.view(torch.uint8).tolist()


def test_detach_conj_neg_noncontiguous() -> None:
    w = torch.ones(2, 3, requires_grad=True) * 2
    assert to_numpy(w).tolist() == [[2.0] * 3] * 2
    c = torch.tensor([1 + 2j]).conj()
    assert to_numpy(c).tolist() == [1 - 2j]
    t = torch.arange(6.0).reshape(2, 3).t()
    a = to_numpy(t)
    assert a.flags.c_contiguous
    assert a.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]


def test_assign_in_place_keeps_dtype_and_identity() -> None:
    t = torch.zeros(3, dtype=torch.float16)
    storage = t.data_ptr()
    out = assign_(t, np.array([1.0, 2.0, 3.0], np.float32))
    assert out is t
    assert t.data_ptr() == storage
    assert t.dtype == torch.float16
    assert t.tolist() == [1.0, 2.0, 3.0]


def test_assign_parameter_with_grad() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    assign_(p, np.array([5.0, 6.0], np.float32))
    assert p.tolist() == [5.0, 6.0]
    assert p.requires_grad


def test_assign_shape_mismatch_message() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^Assign requires shapes of both tensors to match\. "
                       r"lhs shape= \[3,2\] rhs shape= \[2,3\]$"):
        assign_(torch.zeros(3, 2), np.zeros((2, 3), np.float32))


def test_write_and_read_through_the_core(tmp_path: object) -> None:
    t = torch.tensor([1.5, -2.25], dtype=torch.bfloat16)
    p = tfckpt.write({"t": t, "i": torch.tensor(7, dtype=torch.int32)}, f"{tmp_path}/ckpt")
    r = tfckpt.load_checkpoint(p)
    assert r.get_variable_to_dtype_map()["t"].name == "bfloat16"
    assert r.get_variable_to_dtype_map()["i"].name == "int32"
    assert r.get_tensor("t").astype(np.float32).tolist() == [1.5, -2.25]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_round_trip() -> None:  # pragma: no cover - needs a GPU
    t = torch.arange(4.0, device="cuda")
    assert to_numpy(t).tolist() == [0.0, 1.0, 2.0, 3.0]
    assign_(t, np.full(4, 9.0, np.float32))
    assert t.device.type == "cuda"
    assert t.tolist() == [9.0] * 4


def test_saver_restores_module_parameters_in_place(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    src = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    src[0].to(torch.bfloat16)
    s = tfckpt.Saver()
    path = s.save(src, str(tmp_path / "m"), write_meta_graph=False)
    dst = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    dst[0].to(torch.bfloat16)
    before = {k: t.data_ptr() for k, t in dst.state_dict().items()}
    outs: list[np.ndarray] = []  # type: ignore[type-arg]
    real = BundleReader.read_planned  # (the Saver's bulk read when every value fits its target)

    def spy(reader: Any, plan: Any) -> None:
        outs.extend(buf for _, _, bufs in plan for buf in bufs)
        real(reader, plan)

    monkeypatch.setattr(BundleReader, "read_planned", spy)
    s.restore(dst, path)
    for k, t in dst.state_dict().items():
        assert t.data_ptr() == before[k]
        assert torch.equal(t, src.state_dict()[k])
    ptrs = {o.__array_interface__["data"][0] for o in outs}
    assert {dst[0].weight.data_ptr(), dst[0].bias.data_ptr(), dst[1].running_mean.data_ptr()} <= ptrs


def test_restore_of_plain_tensors_skips_the_general_checks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # CPU tensors (parameters that require grad, bfloat16 ones) that fit their stored tensors are
    # read straight into their memory, without the per-entry passes of the general path.
    from tfckpt import _restore

    torch.manual_seed(0)
    src = {f"layer{i:02d}/w": torch.randn(i + 1, 3) for i in range(40)}
    src["bf16"] = torch.randn(4, 2).to(torch.bfloat16)
    path = tfckpt.write(src, str(tmp_path / "m"))
    dst = {k: torch.zeros_like(t) for k, t in src.items()}
    dst["layer00/w"] = torch.nn.Parameter(torch.zeros(1, 3))
    ptrs = {k: t.data_ptr() for k, t in dst.items()}
    monkeypatch.setattr(_restore, "_stored_specs", lambda *a: pytest.fail("took the general path"))
    got = tfckpt.Saver(dst).restore(None, path)
    for k in src:  # (the values returned are numpy views of the tensors)
        assert dst[k].data_ptr() == ptrs[k] == got[k].__array_interface__["data"][0], k
    for k, t in src.items():
        assert torch.equal(dst[k].detach(), t)


@pytest.mark.parametrize("odd", ["float64", "strided", "shape", "inference"])
def test_restore_of_one_odd_tensor_among_plain_ones(tmp_path: Any, odd: str) -> None:
    # One tensor the simple path cannot take sends the restore down the general path: the same
    # results, and TensorFlow's errors before anything is written.
    src = {f"t{i:02d}": torch.full((5,), float(i)) for i in range(40)}
    path = tfckpt.write(src, str(tmp_path / "m"))
    dst = {k: torch.zeros(5) for k in src}
    if odd == "inference":
        with torch.inference_mode():
            dst["t07"] = torch.zeros(5)
    else:
        dst["t07"] = {"float64": torch.zeros(5, dtype=torch.float64), "strided": torch.zeros(10)[::2],
                      "shape": torch.zeros(6)}[odd]
    saver = tfckpt.Saver(dst)
    if odd in ("float64", "shape", "inference"):
        err = {"float64": "expected dtype double does not equal original dtype float",
               "shape": r"lhs shape= \[6\] rhs shape= \[5\]",
               "inference": "restoring t07 from checkpoint .*: cannot restore into an inference"}[odd]
        with pytest.raises(InvalidArgumentError, match=err):
            saver.restore(None, path)
        assert not dst["t00"].any()
        return
    saver.restore(None, path)
    for k, t in src.items():
        assert torch.equal(dst[k], t), k
    if odd == "strided":
        with torch.inference_mode():  # (inside inference mode, inference tensors take values)
            inf = {k: torch.zeros(5) for k in src}
            inf["t07"] = torch.zeros(10)[::2]
            tfckpt.Saver(inf).restore(None, path)
        assert all(torch.equal(inf[k], t) for k, t in src.items())


def test_writer_add_many_of_torch_tensors_writes_what_add_does(tmp_path: Any) -> None:
    from tfckpt._format.bundle_writer import BundleWriter

    torch.manual_seed(0)
    pairs = [("a", torch.randn(3, 2)), ("b", torch.randn(4).to(torch.bfloat16)), ("c", torch.randn(4, 4).t()),
             ("d", torch.nn.Parameter(torch.randn(2))), ("e", 1.5), ("f", np.arange(3)),
             ("d2", torch.zeros(2, dtype=torch.int64)), ("g", torch.randn(2, dtype=torch.complex64).conj())]
    one, many = BundleWriter(str(tmp_path / "one")), BundleWriter(str(tmp_path / "many"))
    for name, value in pairs:
        one.add(name, value)
    many.add_many(pairs)
    one.finish()
    many.finish()
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / ("one" + suffix)).read_bytes() == (tmp_path / ("many" + suffix)).read_bytes()
    got = tfckpt.read(str(tmp_path / "many"))
    assert got["c"].tolist() == pairs[2][1].tolist()  # type: ignore[union-attr]
    assert got["g"].tolist() == pairs[7][1].resolve_conj().tolist()  # type: ignore[union-attr]
    with pytest.raises(InvalidArgumentError, match="duplicate"):
        BundleWriter(str(tmp_path / "dup")).add_many([("x", torch.ones(1)), ("x", torch.ones(1))])


@pytest.mark.parametrize("odd", [None, "parameter", "bfloat16", "strided", "conj", "grad", "sparse", "number"])
def test_writer_add_arrays_of_torch_tensors_is_add_one_by_one(tmp_path: Any, odd: str | None) -> None:
    # add_arrays turns a list of torch tensors into numpy arrays at once (sharing memory), then
    # checks the lists; anything odd among them gives what add gives, in order.
    from tfckpt._format import bundle_writer

    torch.manual_seed(1)
    values: list[Any] = [torch.randn(3) for _ in range(6)]
    values[3] = {None: torch.randn(3), "parameter": torch.nn.Parameter(torch.randn(3)),
                 "bfloat16": torch.randn(3).to(torch.bfloat16), "strided": torch.randn(6)[::2],
                 "conj": torch.randn(3, dtype=torch.complex64).conj(), "grad": torch.randn(3, requires_grad=True) * 2,
                 "sparse": torch.zeros(3).to_sparse(), "number": 2.5}[odd]
    names = [f"t{i}" for i in range(len(values))]

    def run(d: str, arrays: bool) -> tuple[str | None, dict[str, bytes]]:
        w = bundle_writer.BundleWriter(str(tmp_path / d / "p"))
        err = None
        try:
            if arrays:
                with mock.patch.object(bundle_writer, "_ARRAYS", 1):
                    w.add_arrays(names, values)
            else:
                for n, v in zip(names, values):
                    w.add(n, v)
        except tfckpt.errors.CheckpointError as e:
            err = f"{type(e).__name__}: {e}".replace(w.prefix, "<prefix>")
        w.finish()
        return err, {f.name: f.read_bytes() for f in sorted((tmp_path / d).iterdir())}

    got = run("arrays", True)
    assert got == run("one", False)
    assert (got[0] is not None) == (odd == "sparse")


def test_to_numpy_shares_the_memory_of_plain_tensors() -> None:
    t = torch.zeros(4)
    a = to_numpy(t)
    a[1] = 7
    assert t.tolist() == [0, 7, 0, 0]
    assert inplace_numpy(t) is not None
    assert inplace_numpy(t[::2]) is None
    with torch.inference_mode():
        assert inplace_numpy(torch.zeros(2)) is None
    assert inplace_numpy(torch.nn.Parameter(torch.zeros(2))) is not None  # (detached: same memory)
