"""Command-line inputs a usability review found mishandled: bad flag values, output formats,
narrow terminals, pipes closed early, names .npz cannot hold."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import tfckpt
from tfckpt import inspect_checkpoint
from tfckpt._cli_format import print_table
from tfckpt.cli import main


@pytest.fixture
def ckpt(tmp_path: Path) -> str:
    return tfckpt.write({"w": np.arange(10, dtype=np.float32), "big": np.full(4, 3e38, np.float32),
                         "u": np.array([2**64 - 1], np.uint64)}, str(tmp_path / "ck"))


@pytest.mark.parametrize("flag", [["--atol", "-1"], ["--atol", "nan"], ["--rtol", "-5"], ["--atol", "x"]])
def test_diff_tolerances_are_checked(ckpt: str, flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["diff", ckpt, ckpt, *flag])
    assert e.value.code == 2
    assert "expected a" in capsys.readouterr().err
    assert main(["diff", ckpt, ckpt, "--atol", "0.5"]) == 0


def test_plot_inputs(ckpt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    for bins in ("0", "-3"):
        with pytest.raises(SystemExit) as e:
            main(["plot", ckpt, "-o", str(tmp_path / "p.png"), "--bins", bins])
        assert e.value.code == 2
    assert main(["plot", ckpt, "-o", str(tmp_path / "p.jpgx")]) == 1
    assert ".jpgx is not an image format matplotlib writes" in capsys.readouterr().err
    assert main(["plot", ckpt, "-o", str(tmp_path / "hist")]) == 0  # (a constant 3e38 cannot be binned)
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'hist.png'}"
    assert (tmp_path / "hist.png").stat().st_size > 0


def test_npz_member_names_are_limited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tfckpt.write({"n" * 70_000: np.ones(1, np.float32)}, str(tmp_path / "long"))
    assert main(["convert", src, str(tmp_path / "o.npz")]) == 1
    assert "is 70000 bytes long; .npz member names end at 65,531" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


class _ClosedPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError


def test_inspect_checkpoint_into_a_closed_pipe(ckpt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert inspect_checkpoint.main([f"--file_name={ckpt}", "--all_tensors"]) == 0


def test_rich_table_keeps_data_columns_beside_a_long_name() -> None:
    pytest.importorskip("rich")
    out = io.StringIO()
    print_table(["name", "dtype", "shape"], [["layer/" * 40 + "kernel", "bfloat16", "[768,3072]"]],
                out=out, color=True)
    text = out.getvalue()
    assert "bfloat16" in text
    assert "[768,3072]" in text


def test_plain_table_aligns_wide_characters_by_their_terminal_width() -> None:
    from tfckpt._cli_format import display_width

    out = io.StringIO()
    print_table(["name", "dtype"], [["層/重み", "float32"], ["dense/kernel", "int64"], ["cafe\u0301/w", "bool"]],
                align="ll", out=out, color=False)
    lines = out.getvalue().splitlines()
    # each row's dtype starts at the same terminal column (CJK takes two, a combining accent none)
    starts = {display_width(line[: line.index(dt)]) for line, dt in zip(lines[1:], ["float32", "int64", "bool"])}
    assert starts == {len("dense/kernel") + 2}


def test_diff_relative_difference_against_zero_and_infinities(tmp_path: Path) -> None:
    from tfckpt._cli_diff import compare_values

    assert compare_values(np.array([1e-30, 1.0]), np.array([0.0, 1.0]), 0.0, 0.0) == (1, 1e-30, float("inf"))
    assert compare_values(np.array([np.inf]), np.array([-np.inf]), 0.0, 0.0) == (1, float("inf"), float("inf"))
    assert compare_values(np.array([0.0, np.inf]), np.array([0.0, np.inf]), 0.0, 0.0) == (0, 0.0, 0.0)


def test_bad_count_exclude_pattern_prints_nothing_first(ckpt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", ckpt, "--count-exclude-pattern", "("]) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "bad regular expression" in cap.err


def test_convert_into_a_directory_is_refused(ckpt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    for dst in (str(tmp_path / "new") + "/", str(tmp_path / "d")):
        assert main(["convert", ckpt, dst]) == 1
        assert "is a directory: give a file name or checkpoint prefix such as" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.data-00000-of-00001", "ck.index", "d"]


def test_color_after_the_command(ckpt: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tfckpt.cli import build_parser

    assert build_parser().parse_args(["inspect", ckpt, "--color", "never"]).color == "never"
    assert build_parser().parse_args(["--color", "always", "inspect", ckpt]).color == "always"
    assert build_parser().parse_args(["inspect", ckpt]).color == "auto"
    assert main(["inspect", ckpt, "--color", "never"]) == 0
    assert "float32" in capsys.readouterr().out


def test_directory_whose_latest_checkpoint_is_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saver = tfckpt.Saver({"w": np.ones(2, np.float32)})
    saver.save(None, str(tmp_path / "model.ckpt"), global_step=50, write_meta_graph=False)
    (tmp_path / "model.ckpt-50.index").unlink()
    assert main(["inspect", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # (one line: no log line before it)
    assert "(its 'checkpoint' file names " in err
    assert "model.ckpt-50, whose files are missing)" in err


def test_cleanup_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert main(["cleanup", str(tmp_path / "f.txt")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_output_encoding_that_cannot_show_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    p = tfckpt.write({"名": np.ones(1, np.float32)}, str(tmp_path / "ck"))
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert main(["inspect", p, "--color", "never"]) == 1
    assert "the output encoding cannot show a name" in capsys.readouterr().err


def test_cleanup_dry_run_says_a_real_run_would_be_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tfckpt._lock import DirectoryLock

    (tmp_path / "x.tempstate123").write_bytes(b"")
    with DirectoryLock(str(tmp_path)):
        assert main(["cleanup", str(tmp_path), "--dry-run"]) == 0
        cap = capsys.readouterr()
        assert "would remove" in cap.out
        assert "a real cleanup would be refused now" in cap.err
        assert main(["cleanup", str(tmp_path)]) == 1
        capsys.readouterr()
    assert main(["cleanup", str(tmp_path), "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


def test_cleanup_that_cannot_remove_a_leftover_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # (fs review: on a read-only directory it warned, then said "nothing to clean" and exited 0)
    import errno
    import os

    from tfckpt import cleanup as cleanup_module
    from tfckpt.cli import main

    (tmp_path / "model.ckpt-7.index.tempstate123").write_bytes(b"")
    (tmp_path / "model.ckpt-9.data-00000-of-00001").write_bytes(b"x")

    def read_only(path: object, *a: object, **kw: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(cleanup_module.os, "remove", read_only)
    with pytest.raises(tfckpt.errors.PermissionDeniedError, match="2 of 2 leftovers could not be removed"):
        cleanup_module.cleanup(str(tmp_path))
    assert main(["cleanup", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Read-only file system" in err
    assert len(err.strip().splitlines()) == 1
