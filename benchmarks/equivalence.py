"""Measure torch <-> Keras equivalence for every spec and write docs/equivalence.md.

    python benchmarks/equivalence.py            # all specs, about 10 minutes on 2 cores

For each spec: random weights (norm statistics calibrated) in the PyTorch model,
moved into the Keras model with archgen.transfer_weights, then both run on the
same random 40 px batch in eval mode; the figure is max |torch - keras| divided
by max(1, largest |logit|), in float64 and float32 (tests/test_keras.py holds the
bounds: 1e-9 and 1e-4).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import keras  # noqa: E402
import torch  # noqa: E402
from conftest import SPEC_NAMES  # noqa: E402
from test_keras import SIZE, relative_error  # noqa: E402


def main() -> None:
    rows = []
    for name in SPEC_NAMES:
        err64, scale = relative_error(name, "float64")
        err32, _ = relative_error(name, "float32")
        rows.append((name, err64, err32, scale))
        print(f"{name:22s} float64 {err64:.2e}  float32 {err32:.2e}  scale {scale:.3g}", flush=True)
    worst64 = max(rows, key=lambda r: r[1])
    worst32 = max(rows, key=lambda r: r[2])
    lines = [
        "# PyTorch <-> Keras equivalence",
        "",
        "Written by `python benchmarks/equivalence.py`. Random weights (norm scales in",
        "[0.05, 0.15], statistics calibrated) in the PyTorch model, moved into the Keras",
        f"model by `archgen.transfer_weights`, both run in eval mode on the same random {SIZE} px",
        "batch of 2. Figure: max |torch - keras| / max(1, largest |logit|).",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, CPU; torch {torch.__version__},",
        f"keras {keras.__version__} on {keras.backend.backend()}.",
        "",
        f"Worst float64: {worst64[1]:.2e} ({worst64[0]}); worst float32: {worst32[2]:.2e} ({worst32[0]}).",
        "",
        "| spec | float64 | float32 | logit scale |",
        "| --- | --- | --- | --- |",
        *(f"| {n} | {a:.2e} | {b:.2e} | {s:.3g} |" for n, a, b, s in rows),
        "",
    ]
    (ROOT / "docs" / "equivalence.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
