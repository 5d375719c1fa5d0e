"""A pytest plugin for benchmarks/gpu.sh: Keras' float64 -> float32 narrowing lifted for the session.

    KERAS_BACKEND=jax JAX_ENABLE_X64=1 PYTHONPATH=benchmarks:. pytest -p keras_float64 tests/test_keras.py

Keras' type promotion narrows float64 to float32 on every backend but TensorFlow (the
``BIT64_TO_BIT32_DTYPE`` rule of keras/src/backend/common/dtypes.py), so on JAX a float64 Keras model
agrees with PyTorch's float64 one only to float32 rounding, and tests/test_keras.py's float64 bound
(1e-9, set for TensorFlow) cannot hold. With the rule lifted, as JAX itself promotes under
jax_enable_x64, it does: tests/test_keras_backends.py compares both ways and shows the rule is the only
difference (its "float64 kept" mode, which this plugin applies to the whole session). The float32
comparisons are untouched.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return  # TensorFlow keeps float64 itself
    from keras.src.backend.common import dtypes

    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
