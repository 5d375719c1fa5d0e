"""The Keras code on Keras' JAX and PyTorch backends: live models and the emitted files run there and
compute the PyTorch model's function (TensorFlow, Keras' default, is tests/test_keras.py's, on every spec).

Keras picks its backend once, when it is first imported (KERAS_BACKEND), so each backend runs in a
fresh interpreter: ``worker`` below, imported from this file by ``python -c``, compares every case and
prints the results as JSON for the test to judge. The cases are shipped specs narrowed to 8 channels a
stage (JAX compiles a Keras random init once per distinct weight shape and dtype, so full widths
would take minutes on 2 cores) and together hold every block kind, shortcut kind, pre-activation, SE,
grouped convs, a dilated network and a features model; two emitted files run at their full size.

float64: Keras' type promotion narrows float64 to float32 on every backend but TensorFlow (the
``BIT64_TO_BIT32_DTYPE`` rule of keras/src/backend/common/dtypes.py), and BatchNormalization computes
in that promoted type, so a float64 Keras model on JAX or PyTorch agrees with PyTorch's only to
float32 rounding. Each float64 pair is compared twice: as Keras runs it (to float32's tolerance,
while Keras narrows), and with that one rule lifted, as JAX itself promotes under jax_enable_x64: then
to 1e-9, which shows the rule is the only difference.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from helpers import ROOT, run_archgen

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

SIZE = 40  # odd late stages (10 -> 5 -> 3 -> 2), as in tests/test_keras.py
GAMMA = (0.05, 0.15)  # the norm scales of tests/test_keras.py
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}

_STAGES = [{"depth": 2, "width": 8}, {"depth": 2, "width": 8}, {"depth": 1, "width": 8}, {"depth": 1, "width": 8}]
_STAGES_V2 = [{**s, "stride": st} for s, st in zip(_STAGES, (2, 2, 2, 1), strict=True)]  # keras.applications' strides
_DEEP_STEM = {"type": "deep", "widths": [8, 8, 16]}
_NARROW = {"stem.width": 8, "stages": _STAGES}

# case -> (spec, overrides): what each case is there for.
CASES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "basic_conv_shortcut": ("resnet18", _NARROW),  # classic stem, -inf padded max pool
    "bottleneck_avgpool_shortcut": ("resnet50d", {"stem": _DEEP_STEM, "stages": _STAGES}),  # ResNet-D, deep stem
    "preact_maxpool_shortcut": ("resnet50v2", {"stem.width": 8, "stages": _STAGES_V2}),  # stride last, conv biases
    "squeeze_excitation": ("seresnet50", _NARROW),
    "grouped": ("resnext50_32x4d", {**_NARROW, "block.groups": 4, "block.base_width": 16}),
    "identity_shortcut": ("resnet18", {"stem.width": 8, "block.shortcut": "identity", "stages": _STAGES[:1]}),
    "plain": ("imagenette_cnn", None),
    "dilated": ("xresnet18", {"stem": _DEEP_STEM, "stages": _STAGES, "output_stride": 8}),
    "features": ("resnet18", {**_NARROW, "head": {"type": "features", "out_indices": [1, 2, 3]}}),
}
# Shipped specs whose generated/<spec>_keras.py is imported (no archgen) and compared, at full size, in
# these dtypes: full-width resnet18 in float64 too would cost JAX another 15 s of compiling its random
# init for what imagenette_cnn's file and the live cases already show.
EMITTED: dict[str, tuple[str, ...]] = {"resnet18": ("float32",), "imagenette_cnn": ("float32", "float64")}
BACKENDS = ["jax", "torch"]


@contextlib.contextmanager
def _floatx(dtype: str) -> Iterator[None]:
    """Layers take their dtype from the global policy when created (as the Keras backend's build does)."""
    import keras

    saved = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(saved[0])
        keras.config.set_dtype_policy(saved[1])


@contextlib.contextmanager
def _float64_kept() -> Iterator[None]:
    """Keras' promotion with its float64 -> float32 narrowing lifted (TensorFlow's rule, and JAX's own
    under jax_enable_x64)."""
    from keras.src.backend.common import dtypes

    saved = dict(dtypes.BIT64_TO_BIT32_DTYPE)
    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    try:
        yield
    finally:
        dtypes.BIT64_TO_BIT32_DTYPE.clear()
        dtypes.BIT64_TO_BIT32_DTYPE.update(saved)


def _emitted(spec: str) -> Any:
    """generated/<spec>_keras.py, imported as a module of its own."""
    path = ROOT / "generated" / f"{spec}_keras.py"
    module_spec = importlib.util.spec_from_file_location(f"emitted_{spec}_keras", path)
    assert module_spec is not None and module_spec.loader is not None, path
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _comparisons(network: Any, build_keras: Callable[[], Any], dtype: str) -> dict[str, Any]:
    """As ``archgen.runtime.compare.compare``: random PyTorch weights drawn in float32 (and, for float64, the same
    numbers in a float64 model), moved by layer name into the Keras model ``build_keras()`` makes under
    ``dtype``, both run on one random batch and compared at every boundary."""
    import numpy as np
    from archgen.backends.keras import BACKEND as KERAS
    from archgen.backends.torch import BACKEND as TORCH

    from archgen.runtime.compare import compare_models

    tmodel = TORCH.build(network)
    TORCH.randomize(tmodel, network, seed=0, gamma=GAMMA)
    if dtype != "float32":
        drawn = TORCH.get_weights(tmodel, network)
        tmodel = TORCH.build(network, dtype=dtype)
        TORCH.set_weights(tmodel, network, drawn)
    with _floatx(dtype):
        kmodel = build_keras()
    KERAS.set_weights(kmodel, network, TORCH.get_weights(tmodel, network))
    x = np.random.default_rng(1).standard_normal((2, *network.input_shape)).astype(dtype)
    found = {dtype: compare_models(network, tmodel, kmodel, x, dtype)}
    if dtype == "float64":
        with _float64_kept():
            found["float64 kept"] = compare_models(network, tmodel, kmodel, x, dtype)
    return found


def worker() -> None:
    """In a fresh interpreter with KERAS_BACKEND set: every case live and every EMITTED file, in float32
    and float64, printed as one JSON line."""
    import torch

    torch.backends.mkldnn.enabled = False  # as tests/conftest.py: oneDNN re-layouts weights on every call
    # One thread: these nets are tiny, and two threads' spin-waits on 2 busy cores made PyTorch's
    # random init 60x slower (1.3 s instead of 0.02 s for a narrowed resnet18, measured).
    torch.set_num_threads(1)
    import keras
    from archgen.backends.keras import BACKEND as KERAS

    import archgen
    from archgen.runtime.compare import compare

    results: list[dict[str, Any]] = []
    runs = [(case, "live", spec, overrides) for case, (spec, overrides) in CASES.items()]
    runs += [(f"emitted {spec}", "emitted", spec, None) for spec in EMITTED]
    for case, kind, spec, overrides in runs:
        start = time.perf_counter()
        _, network = archgen.compile_spec(spec, overrides, input_size=SIZE)
        found = {"float32": compare(network, "keras", dtype="float32", gamma=GAMMA)} if kind == "live" else {}
        for dtype in EMITTED[spec] if kind == "emitted" else ("float64",):
            build = partial(KERAS.build, network, dtype=dtype) if kind == "live" else _emitted(spec).build_model
            found |= _comparisons(network, build, dtype)
        for mode, result in found.items():
            results.append(
                {
                    "case": case,
                    "mode": mode,
                    "worst": result.worst,
                    "signal": min(p.max_abs for p in result.points),
                    "points": len(result.points),
                    "text": result.text(),
                }
            )
        results[-1]["seconds"] = round(time.perf_counter() - start, 1)
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "narrows_float64": keras.backend.result_type("float64", "float32") == "float32",
                "results": results,
            }
        )
    )


def run_worker(backend: str) -> dict[str, Any]:
    # JAX: float64 arrays need x64 on; XLA's LLVM optimisation off compiles the threefry random init of each
    # weight shape in 0.25 s instead of 3 s (2 cores, measured), the whole run in 70 s instead of 200 s,
    # and moves the differences only within rounding (worst float32 one 6.1e-7 instead of 5.8e-7).
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "JAX_ENABLE_X64": "1",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": xla_flags,
    }
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_keras_backends as t; t.worker()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_and_emitted_models_agree_with_torch(backend: str) -> None:
    if backend == "jax":
        assert importlib.util.find_spec("jax") is not None, "the test extra brings jax[cpu]"
    found = run_worker(backend)
    assert found["backend"] == backend
    # Keras' rule, checked so this test tightens itself (float64 to 1e-9 as run) the day Keras drops it.
    as_run = 1e-4 if found["narrows_float64"] else TOLERANCE["float64"]
    tolerance = {"float32": TOLERANCE["float32"], "float64": as_run, "float64 kept": TOLERANCE["float64"]}
    modes = {dtype: [m for m in tolerance if m.startswith(dtype)] for dtype in ("float32", "float64")}
    want = {(case, mode) for case in CASES for mode in tolerance}
    want |= {(f"emitted {spec}", mode) for spec, dtypes in EMITTED.items() for d in dtypes for mode in modes[d]}
    assert {(r["case"], r["mode"]) for r in found["results"]} == want
    for r in found["results"]:
        assert r["worst"] <= tolerance[r["mode"]], f"{backend}, {r['case']}, {r['mode']}:\n{r['text']}"
        assert r["signal"] > 1e-4, r["text"]  # real activations at every boundary, not zeros


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_build_on_each_keras_backend(backend: str) -> None:
    """`archgen build -b keras` with KERAS_BACKEND set: Keras on PyTorch has no distribution library,
    so its devices are asked of PyTorch (this once ended in a traceback)."""
    env = {"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    args = ["build", "specs/imagenette_cnn.yaml", "-b", "keras", "--device"]
    built = run_archgen([*args, "cpu"], env=env, timeout=600)
    assert built.returncode == 0 and "Traceback" not in built.stderr, built.stdout[-2000:] + built.stderr[-2000:]
    assert "imagenette_cnn" in built.stdout
    missing = run_archgen([*args, "cuda:3"], env=env, timeout=600)
    assert missing.returncode == 3 and "--device 'cuda:3'" in missing.stderr, missing.stderr[-2000:]  # RunError
    assert "Traceback" not in missing.stderr
