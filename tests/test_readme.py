"""The README's Python examples run as written: each ```python block in a fresh interpreter, in a
scratch folder holding a copy of specs/ (the examples name specs/... paths and write files)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def _title(block: str) -> str:
    first = next(line for line in block.splitlines() if line and not line.startswith(("import", "from")))
    return re.sub(r"\W+", "_", first)[:40]


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[_title(b) for b in BLOCKS])
def test_a_readme_python_example_runs(block: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    script = tmp_path / "example.py"
    # The session's settings for small CPU runs (tests/conftest.py), then the example unchanged.
    script.write_text("import torch\ntorch.backends.mkldnn.enabled = False\n" + block, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-4000:]
