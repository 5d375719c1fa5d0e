"""Measure torch <-> Keras equivalence for every spec and write docs/equivalence.md.

    python benchmarks/equivalence.py            # all specs, about 15 minutes on 2 cores

For each spec, `archgen.runtime.compare.compare` (what `archgen compare` and tests/test_keras.py
run): random weights (norm statistics calibrated) in the PyTorch model, moved into the
Keras model with archgen.transfer_weights, both run on the same random 40 px batch in
eval mode; at every boundary (stem, each stage, head) the figure is max |torch - keras|
divided by max(1, largest |torch value| there), in float64 and float32. The tests hold
the bounds (1e-9 and 1e-4 at every boundary); this records the figures.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
import torchvision  # noqa: E402, F401  (before tensorflow: tests/conftest.py says why)
from helpers import SPEC_NAMES  # noqa: E402
from test_keras import GAMMA, SIZE, comparison  # noqa: E402


def main() -> None:
    import keras

    rows = []
    start = time.time()
    for name in SPEC_NAMES:
        c64, c32 = comparison(name, "float64"), comparison(name, "float32")
        w64 = max(c64.points, key=lambda p: p.relative)
        w32 = max(c32.points, key=lambda p: p.relative)
        rows.append((name, w64, w32, c32.points[-1]))
        print(f"{name:22s} float64 {w64.relative:.2e} ({w64.name})  float32 {w32.relative:.2e} ({w32.name})")
    minutes = (time.time() - start) / 60
    worst64 = max(rows, key=lambda r: r[1].relative)
    worst32 = max(rows, key=lambda r: r[2].relative)
    lines = [
        "# PyTorch <-> Keras equivalence",
        "",
        "Written by `python benchmarks/equivalence.py` (the same comparison `archgen compare` prints and",
        f"tests/test_keras.py asserts). Random weights (norm scales in [{GAMMA[0]}, {GAMMA[1]}], statistics",
        "calibrated) in the PyTorch model, moved into the Keras model by `archgen.transfer_weights`, both",
        f"run in eval mode on the same random {SIZE} px batch of 2. At every boundary (stem, each stage,",
        "head) the figure is max |torch - keras| / max(1, largest |torch value| there); the table gives",
        "each spec's worst boundary, and the output's figure in float32.",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, CPU; torch {torch.__version__},",
        f"keras {keras.__version__} on {keras.backend.backend()}; {minutes:.1f} min for all specs.",
        "",
        f"Worst float64: {worst64[1].relative:.2e} ({worst64[0]}, {worst64[1].name}); "
        f"worst float32: {worst32[2].relative:.2e} ({worst32[0]}, {worst32[2].name}).",
        "",
        "| spec | float64 (boundary) | float32 (boundary) | float32 output |",
        "| --- | --- | --- | --- |",
        *(
            f"| {n} | {a.relative:.2e} ({a.name}) | {b.relative:.2e} ({b.name}) | {o.relative:.2e} |"
            for n, a, b, o in rows
        ),
        "",
    ]
    (ROOT / "docs" / "equivalence.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
