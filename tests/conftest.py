"""Session setup and shared fixtures. Helpers (spec paths, the CLI runner, the reference models) live in
tests/helpers.py; no test imports this file.

torch and torchvision are optional here: on a machine with the core only (no framework), the
framework-free tests (loader, schema, hostile corpus, resolve) still run.
"""

from __future__ import annotations

import pytest

try:
    import torch
except ModuleNotFoundError:  # the core only: nothing below needs torch
    torch = None
try:
    import torchvision  # noqa: F401  (see below)
except ModuleNotFoundError:  # archgen's torch extra brings torch without torchvision
    pass

# torchvision is imported before anything can import tensorflow: with tensorflow 2.21
# loaded first, importing triton (which torchvision's models pull in through torch's
# dynamo) aborts the interpreter ("Fatal Python error: Aborted"), measured here.

if torch is not None:
    # oneDNN's CPU convolutions re-layout every weight on each call; for the small
    # batches and inputs of these tests that makes deep nets ~10x slower (ResNet-RS-420
    # at 32 px: 15 s a forward pass with it, 1.6 s without, measured on 2 cores).
    torch.backends.mkldnn.enabled = False
    # On a GPU, PyTorch runs float32 convolutions in TF32 (10-bit mantissa) by default; the
    # float32 comparisons hold true float32 to 1e-4, which TF32 cannot, so it is off in tests.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@pytest.fixture(params=["cpu", "cuda"] if torch is not None and torch.cuda.is_available() else ["cpu"])
def device(request: pytest.FixtureRequest) -> str:
    """Every test taking this runs on the CPU and, where CUDA is visible, on the GPU too."""
    return request.param
