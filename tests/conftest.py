"""Shared fixtures: every spec, the devices to run on, random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision  # noqa: F401  (see below)

from backends.torch.randomize import randomize_

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "specs"
SPEC_FILES = sorted(SPEC_DIR.glob("*.yaml"))
SPEC_NAMES = [p.stem for p in SPEC_FILES]

# torchvision is imported before anything can import tensorflow: with tensorflow 2.21
# loaded first, importing triton (which torchvision's models pull in through torch's
# dynamo) aborts the interpreter ("Fatal Python error: Aborted"), measured here.

# oneDNN's CPU convolutions re-layout every weight on each call; for the small
# batches and inputs of these tests that makes deep nets ~10x slower (ResNet-RS-420
# at 32 px: 15 s a forward pass with it, 1.6 s without, measured on 2 cores).
torch.backends.mkldnn.enabled = False
# On a GPU, PyTorch runs float32 convolutions in TF32 (10-bit mantissa) by default; the
# float32 comparisons hold true float32 to 1e-4, which TF32 cannot, so it is off in tests.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

__all__ = ["ROOT", "SPEC_FILES", "SPEC_NAMES", "randomize_", "spec_path"]


def spec_path(name: str) -> Path:
    return SPEC_DIR / f"{name}.yaml"


@pytest.fixture(params=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
def device(request: pytest.FixtureRequest) -> str:
    """Every test taking this runs on the CPU and, where CUDA is visible, on the GPU too."""
    return request.param
