"""A real full disk: a child process saves under ``RLIMIT_FSIZE`` (SIGXFSZ ignored, so writes fail with EFBIG).

The save must raise ResourceExhaustedError naming the file, leave no partial or
temporary file, and leave the previous checkpoint and the state file untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tfckpt
from tfckpt.checkpoint_management import update_checkpoint_state_internal

resource = pytest.importorskip("resource")

CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    import numpy as np
    import tfckpt
    from tfckpt.checkpoint_management import update_checkpoint_state_internal

    d, limit, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    big = np.arange(400_000, dtype=np.float32)  # 1.6 MB
    try:
        if what == "write":
            p = tfckpt.write({"big": big, "step": np.int64(2)}, os.path.join(d, "model.ckpt-2"), num_shards=2)
            update_checkpoint_state_internal(d, p, [os.path.join(d, "model.ckpt-1"), p])
        elif what == "saver":
            v = tfckpt.Variable(big, name="big")
            saver = tfckpt.Saver([v], max_to_keep=5)
            saver.save(None, os.path.join(d, "model.ckpt"), global_step=2)
        else:
            update_checkpoint_state_internal(d, os.path.join(d, "model.ckpt-2") + "x" * limit)
        out = {"error": None}
    except Exception as e:
        out = {"error": type(e).__name__, "message": str(e), "path": getattr(e, "path", None),
               "mro": [c.__name__ for c in type(e).__mro__]}
    print(json.dumps(out))
    """
)


def run_child(d: Path, limit: int, what: str) -> dict[str, object]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(d), str(limit), what], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def previous(d: Path) -> dict[str, bytes]:
    p = tfckpt.write({"big": np.ones(10, np.float32), "step": np.int64(1)}, str(d / "model.ckpt-1"))
    update_checkpoint_state_internal(str(d), p, [p])
    return {f.name: f.read_bytes() for f in d.iterdir()}


@pytest.mark.parametrize(
    "limit",
    [0, 4096, 1_000_000],
)
def test_write_hits_the_file_size_limit(tmp_path: Path, limit: int) -> None:
    before = previous(tmp_path)
    out = run_child(tmp_path, limit, "write")
    assert out["error"] == "ResourceExhaustedError", out
    assert "OSError" in out["mro"]  # type: ignore[operator]
    assert str(out["path"]).startswith(str(tmp_path / "model.ckpt-2.data-"))
    assert "File too large" in str(out["message"])
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before
    assert tfckpt.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-1")
    assert int(tfckpt.read(str(tmp_path))["step"]) == 1


def test_state_file_hits_the_file_size_limit(tmp_path: Path) -> None:
    before = previous(tmp_path)
    out = run_child(tmp_path, 100, "state")
    assert out["error"] == "ResourceExhaustedError", out
    assert out["path"] == str(tmp_path / "checkpoint")
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before


def test_saver_hits_the_file_size_limit(tmp_path: Path) -> None:
    pytest.importorskip("tfckpt.saver")
    before = previous(tmp_path)
    out = run_child(tmp_path, 100_000, "saver")
    assert out["error"] == "ResourceExhaustedError", out
    after = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    assert not [n for n in after if "tempstate" in n or ".tmp" in n or n.startswith("model.ckpt-2")], sorted(after)
    assert after["checkpoint"] == before["checkpoint"]
    assert {k: v for k, v in after.items() if k in before} == before


def test_a_meta_file_the_disk_cannot_take_leaves_no_untracked_checkpoint(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # (fs review: the checkpoint was committed, then the .meta failed: it was never recorded,
    # so retention never deleted it and cleanup kept it, having an index)
    from tfckpt.errors import ResourceExhaustedError

    saver = tfckpt.Saver(max_to_keep=2)
    saver.save({"w": np.ones(2)}, str(tmp_path / "model.ckpt"), global_step=1)
    state_before = (tmp_path / "checkpoint").read_bytes()

    def full(*a: object, **kw: object) -> None:
        raise ResourceExhaustedError("cannot write model.ckpt-2.meta: No space left on device")

    monkeypatch.setattr(tfckpt.Saver, "_write_meta", full)
    with pytest.raises(ResourceExhaustedError):
        saver.save({"w": np.ones(2)}, str(tmp_path / "model.ckpt"), global_step=2)
    assert sorted(p.name for p in tmp_path.iterdir() if "ckpt-2" in p.name) == []
    assert (tmp_path / "checkpoint").read_bytes() == state_before
    assert tfckpt.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-1")
