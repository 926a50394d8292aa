"""tfckpt stats and tfckpt diff."""

from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest

import tfckpt
from tfckpt._cli_diff import compare_values
from tfckpt._cli_stats import tensor_stats
from tfckpt.cli import main


@pytest.fixture
def ckpt(tmp_path):
    return tfckpt.write(
        {
            "a": np.array([1.0, 2.0, 3.0, 4.0], np.float32),
            "bad": np.array([1.0, np.nan, np.inf, -np.inf], np.float64),
            "i": np.array([[-5, 7]], np.int64),
            "s": np.array([b"x"], dtype=object),
        },
        str(tmp_path / "ckpt"),
    )


def test_stats_plain(ckpt, capsys):
    assert main(["stats", ckpt]) == 0
    assert capsys.readouterr().out == (
        "name  dtype    shape   min  max  mean      std  nan  inf  note\n"
        "a     float32  [4]       1    4   2.5  1.11803    0    0\n"
        "bad   float64  [4]       1    1     1        0    1    2\n"
        "i     int64    [1, 2]   -5    7     1        6    0    0\n"
        "s     string   [1]       -    -     -        -    0    0  string (skipped)\n"
        "1 tensor(s) with NaN or Inf: bad\n"
    )


def test_stats_nan_exit_code_and_names(ckpt, capsys):
    assert main(["stats", ckpt, "--nan"]) == 3
    capsys.readouterr()
    assert main(["stats", ckpt, "a", "i", "--nan"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("a ")
    assert out.splitlines()[2].startswith("i ")
    assert len(out.splitlines()) == 3
    assert main(["stats", ckpt, "nope"]) == 1
    assert capsys.readouterr().err == "tfckpt: error: Key nope not found in checkpoint\n"


def test_stats_json(ckpt, capsys):
    assert main(["stats", ckpt, "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["nonfinite_tensors"] == ["bad"]
    assert j["tensors"][2] == {"name": "i", "dtype": "int64", "shape": [1, 2], "count": 2, "min": -5, "max": 7,
                               "mean": 1.0, "std": 6.0, "nan": 0, "inf": 0, "note": ""}


def test_tensor_stats_chunked_matches_numpy(monkeypatch):
    import tfckpt._cli_stats as m

    monkeypatch.setattr(m, "_CHUNK", 7)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=1000).astype(np.float32)
    s = tensor_stats("x", x, "float32")
    assert s.count == 1000
    assert s.min == float(x.min())
    assert s.max == float(x.max())
    assert s.mean == pytest.approx(float(x.astype(np.float64).mean()), rel=1e-12)
    assert s.std == pytest.approx(float(x.astype(np.float64).std()), rel=1e-12)
    b = tensor_stats("b", np.array([1.0, -2.0], ml_dtypes.bfloat16), "bfloat16")
    assert (b.min, b.max, b.mean) == (-2.0, 1.0, -0.5)
    c = tensor_stats("c", np.array([3 + 4j, np.nan], np.complex64), "complex64")
    assert (c.min, c.nan, c.note) == (5.0, 1, "complex: stats of |z|")
    e = tensor_stats("e", np.zeros((0, 3), np.float32), "float32")
    assert (e.count, e.min, e.std) == (0, None, None)


@pytest.mark.parametrize("values", [[0.0, -0.0], [-0.0, 0.0], [0.0] * 20 + [-0.0], [-0.0] + [0.0] * 20])
def test_tensor_stats_zero_is_positive_whatever_the_order(values):
    # Which zero numpy's min/max return of -0.0 and 0.0 depends on the order and the CPU's SIMD
    # path; the stats (and so the CLI's golden output) must not.
    s = tensor_stats("z", np.array(values, np.float32), "float32")
    assert (s.min, s.max) == (0.0, 0.0)
    assert math.copysign(1.0, s.min) == 1.0
    assert math.copysign(1.0, s.max) == 1.0


# -- diff --------------------------------------------------------------------------


def _pair(tmp_path, b_changes):
    base = {"same": np.arange(4, dtype=np.float32), "w": np.array([1.0, 2.0, 0.0], np.float64),
            "gone": np.int64(1), "shape": np.zeros(2), "dt": np.zeros(2, np.float32), "s": np.array([b"a"], object)}
    other = {**base, **b_changes}
    other.pop("gone")
    return (tfckpt.write(base, str(tmp_path / "a")), tfckpt.write(other, str(tmp_path / "b")))


def test_diff_reports_everything(tmp_path, capsys):
    a, b = _pair(tmp_path, {"w": np.array([1.0, 2.5, 1e-3]), "new": np.zeros(3, np.int32), "shape": np.zeros(3),
                            "dt": np.zeros(2, np.float64), "s": np.array([b"b"], object)})
    assert main(["diff", a, b]) == 1
    assert capsys.readouterr().out == (
        "~ dt  dtype float32 -> float64\n"
        "- gone  int64 []\n"
        "+ new  int32 [3]\n"
        "~ s  1 of 1 elements differ\n"
        "~ shape  shape [2] -> [3]\n"
        "~ w  2 of 3 elements differ, max abs diff 0.5, max rel diff 1\n"
        "1 equal, 4 changed, 1 added, 1 removed\n"
    )


def test_diff_equal_and_tolerance(tmp_path, capsys):
    a, b = _pair(tmp_path, {"w": np.array([1.0, 2.0 + 1e-9, 0.0])})
    tfckpt.write({**tfckpt.read(b), "gone": np.int64(1)}, str(tmp_path / "c"))
    c = str(tmp_path / "c")
    assert main(["diff", a, c]) == 1
    capsys.readouterr()
    assert main(["diff", a, c, "--atol", "1e-8"]) == 0
    assert capsys.readouterr().out == "6 equal, 0 changed, 0 added, 0 removed\n"
    assert main(["diff", a, c, "--rtol", "1e-6"]) == 0
    assert main(["diff", a, a, "--json"]) == 0
    j = json.loads(capsys.readouterr().out.split("\n6 equal")[0].split("removed\n")[-1])
    assert j["equal"] is True
    assert j["changes"] == []


def test_compare_values_nan_inf_and_big_ints():
    assert compare_values(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 0, 0) == (0, 0.0, 0.0)
    assert compare_values(np.array([np.inf]), np.array([-np.inf]), 0, 0)[0] == 1
    big = np.array([2**62, 2**62 + 1], np.int64)
    assert compare_values(big, big + np.array([0, 1]), 0, 0)[0] == 1
    assert compare_values(np.array([True]), np.array([False]), 0, 0) == (1, 1.0, float("inf"))
