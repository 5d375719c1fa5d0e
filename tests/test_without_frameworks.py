"""The framework-free tests need no framework: they pass in a fresh pytest where torch, tensorflow,
keras and the reference libraries cannot be imported (as on a machine with archgen's core only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, hide_modules

# Everything beyond archgen's core dependencies that a test could reach for (numpy included: the core
# does not need it). jsonschema (test_schema) and pytest itself stay.
HIDDEN = ("torch", "torchvision", "tensorflow", "keras", "jax", "timm", "tf_keras", "fastai", "numpy", "safetensors")
FRAMEWORK_FREE = ["tests/test_loader.py", "tests/test_schema.py", "tests/test_resolve.py", "tests/test_hostile.py"]


def test_the_framework_free_tests_pass_with_every_framework_hidden(tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path / "hidden", HIDDEN)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = os.pathsep.join((str(hidden), str(ROOT)))
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'torch' (hidden by the test)" in probe.stderr, probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FRAMEWORK_FREE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    # Everything passed: nothing skipped (an importorskip would hide a framework it needs), failed or errored.
    assert re.fullmatch(r"=* ?\d+ passed(, \d+ warnings?)? in [\d.]+s( \(.*\))? ?=*", summary), summary
