"""Every docstring example of the package runs and prints what it shows.

Examples that write checkpoints use ``tempfile``; here its directory is the test's
``tmp_path``, so nothing is written anywhere else.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tempfile
from pathlib import Path

import pytest

import tfckpt

_MODULES = sorted(m.name for m in pkgutil.walk_packages(tfckpt.__path__, "tfckpt.")
                  if not m.name.endswith("_pb2") and m.name != "tfckpt.__main__")
_NEEDS = {"tfckpt.adapters.torch": "torch", "tfckpt.adapters.jax": "jax"}


@pytest.mark.parametrize("name", _MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if name in _NEEDS:
        pytest.importorskip(_NEEDS[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # (each runs in a copy of the module's globals)
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"


def test_the_examples_are_found() -> None:
    # (a finder that found nothing would make every test above pass)
    total = 0
    for name in ("tfckpt.reader", "tfckpt._format.coding", "tfckpt._format.blocks"):
        total += sum(len(t.examples) for t in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert total >= 10
