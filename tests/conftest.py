"""Session setup and shared fixtures. Helpers (spec paths, the CLI runner, the reference models) live in
tests/helpers.py; no test imports this file.

torch and torchvision are optional here: on a machine with the core only (no framework), the
framework-free tests (loader, schema, hostile corpus, resolve) still run.
"""

from __future__ import annotations

import os

import pytest

# Under pytest-xdist (-n auto) every core already runs a worker: a framework that also spreads each op
# over every core makes the workers wait on each other's threads (OpenMP barriers, Eigen pools), which
# on 2 cores costs more than the threads give for the tests' tiny inputs. One thread per worker; set
# before torch or TensorFlow start their pools (subprocesses the tests start inherit it).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(name, "1")

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
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
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
