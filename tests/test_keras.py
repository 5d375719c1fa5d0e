"""The Keras 3 backend: same counts and shapes as the IR, and, after transfer_weights,
the same function as the PyTorch model for every spec (float64 and float32)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from conftest import ROOT, SPEC_NAMES, randomize_, spec_path

import archgen
from backends.keras import BACKEND as KERAS
from backends.torch import BACKEND as TORCH

# 40 px makes the late stages odd-sized (20 -> 10 -> 5 -> 3 -> 2): padding, pooling and
# ceil-mode shortcuts must then agree exactly, not only on even sizes.
SIZE = 40
# Norm scales for these comparisons. With scales in [0.5, 1.5] a random ResNet-RS-420 is so
# ill-conditioned that PyTorch's own float32 result is 1.1e-3 (relative) from its float64
# one, so no port can meet 1e-4; with [0.05, 0.15] that gap is 1.7e-5, and scaling one
# mid-network conv by 1% still moves the logits by 0.64% of their scale (resnet50d: 0.9%),
# so any wrong layer shows far above the tolerance.
GAMMA = (0.05, 0.15)


@contextlib.contextmanager
def floatx(dtype: str) -> Iterator[None]:
    import keras

    # Layers take their dtype from the global policy, which Keras fixes at first use.
    saved = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(saved[0])
        keras.config.set_dtype_policy(saved[1])


def relative_error(name: str, dtype: str, direction: str = "torch->keras") -> tuple[float, float]:
    """Max |torch - keras| / max(1, |logits|) after moving random weights across."""
    import keras

    _, network = archgen.compile_spec(spec_path(name), input_size=SIZE)
    tmodel = TORCH.build(network)
    randomize_(tmodel, (3, 64, 64), seed=0, batches=2, batch_size=8, gamma=GAMMA)
    with floatx(dtype):
        kmodel = KERAS.build(network)
    if direction == "torch->keras":
        archgen.transfer_weights(tmodel, kmodel)
    else:  # through Keras and back into a fresh torch model
        archgen.transfer_weights(tmodel, kmodel)
        tmodel = TORCH.build(network)
        archgen.transfer_weights(kmodel, tmodel)
    tmodel = tmodel.eval().to(getattr(torch, dtype))
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(dtype)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    got = keras.ops.convert_to_numpy(kmodel(x.transpose(0, 2, 3, 1), training=False))
    assert np.isfinite(expected).all() and expected.std() > 1e-4
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(got - expected).max()) / scale, scale


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_keras_model_matches_ir(name: str) -> None:
    _, network = archgen.compile_spec(spec_path(name), input_size=SIZE)
    model = KERAS.build(network)
    assert KERAS.counts(model) == (network.params, network.stats)
    assert KERAS.trace(model, network) == network.boundaries()


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_same_function_as_torch_in_float64_and_float32(name: str) -> None:
    err64, _ = relative_error(name, "float64")
    assert err64 <= 1e-9, f"float64: max relative difference {err64:.3g}"
    err32, _ = relative_error(name, "float32")
    assert err32 <= 1e-4, f"float32: max relative difference {err32:.3g}"


@pytest.mark.parametrize("name", ["resnet50d", "resnet50v2", "seresnet50"])
def test_transfer_back_from_keras(name: str) -> None:
    err, _ = relative_error(name, "float64", direction="keras->torch")
    assert err <= 1e-9


def test_transfer_refuses_different_specs() -> None:
    a = archgen.build(spec_path("resnet18"), backend="torch")
    b = archgen.build(spec_path("resnet18"), backend="keras", head__classes=10)
    with pytest.raises(ValueError, match="different specs"):
        archgen.transfer_weights(a, b)


def test_keras_under_its_torch_backend() -> None:
    """The Keras code is multi-backend: the same equivalence under KERAS_BACKEND=torch."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "import keras, test_keras\n"
        "assert keras.backend.backend() == 'torch'\n"
        "print(json.dumps([test_keras.relative_error(n, 'float32')[0] for n in ('resnet50d', 'resnet50v2')]))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert max(errors) <= 1e-4, errors
