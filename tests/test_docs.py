"""The documentation's code runs: every ```python block of docs/architecture.md is executed as
written (its worked example builds a tiny model, defines, fits, applies, saves, loads and exports
a method), so the walk-through cannot drift from the code it describes."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from eigenshift.interventions import base

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_the_architecture_doc_has_a_worked_example():
    assert BLOCKS, f"{DOC} holds no ```python block"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_architecture_code_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its mkdtemp() folder lands here
    known = set(base.METHODS)
    # Compiled on its own (no `from __future__ import annotations` inherited from this file), as
    # a reader's script would be.
    code = compile(BLOCKS[index], f"{DOC.name} (python block {index + 1})", "exec",
                   dont_inherit=True)  # fmt: skip
    try:
        exec(code, {"__name__": f"architecture_md_{index}"})
    finally:  # a method the example registered does not outlive it (other tests list METHODS)
        for method in set(base.METHODS) - known:
            del base.METHODS[method]
            base._CLASSES.pop(method, None)
