"""The framework-free tests need no framework: they pass in a fresh pytest where torch, tensorflow,
keras and the reference libraries cannot be imported (as on a machine with archgen's core only)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, hide_modules, run_archgen

# Everything beyond archgen's core dependencies that a test could reach for (numpy included: the core
# does not need it). jsonschema (test_schema) and pytest itself stay.
HIDDEN = ("torch", "torchvision", "tensorflow", "keras", "jax", "timm", "tf_keras", "fastai", "numpy", "safetensors")
FRAMEWORK_FREE = [
    "tests/test_loader.py",
    "tests/test_schema.py",
    "tests/test_resolve.py",
    "tests/test_hostile.py",
    "tests/test_diff.py",  # archgen diff
    "tests/test_new.py",  # archgen new
    "tests/test_graph.py",  # archgen graph (pygraphviz, which is no framework, stays)
]


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


def test_summary_layers_needs_no_framework(tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path / "hidden", HIDDEN)
    table = run_archgen(["summary", "resnet50", "--layers"], hidden=hidden)
    assert table.returncode == 0, table.stderr
    total = next(line for line in table.stdout.splitlines() if line.split()[:1] == ["total"])
    assert "25,557,032" in total and "4.089 G" in total  # torchvision's num_params and GFLOPs
    data = run_archgen(["summary", "resnet50", "--layers", "--json"], hidden=hidden)
    assert data.returncode == 0, data.stderr
    rows = json.loads(data.stdout)["layers"]
    assert sum(r["params"] for r in rows) == 25_557_032 and sum(r["flops"] for r in rows) == 4_089_184_256
    assert sum(r["kind"] == "add" for r in rows) == 16  # one per bottleneck: 3 + 4 + 6 + 3
