"""Data-parallel training of an archgen Keras model with ``keras.distribution.DataParallel`` over two
JAX CPU devices (XLA's --xla_force_host_platform_device_count=2), as docs/keras_scaling.md shows it.

The worker below runs the doc's two code blocks, exactly as written there, in a fresh interpreter
(the first block sets KERAS_BACKEND and XLA_FLAGS before Keras is imported), then reads what Keras
did (devices, the variables' and the batches' shardings, the steps taken, the loss, the weights
before and after) and prints it as JSON for the test to check against every statement of the doc.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.keras, pytest.mark.slow]

DOC = ROOT / "docs" / "keras_scaling.md"


def doc_blocks(path: Path = DOC) -> list[str]:
    """The Python code blocks of the doc, in order."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(), flags=re.S | re.M)


def _sharding(variable: Any) -> dict[str, Any]:
    import numpy as np

    sharding = variable.value.sharding
    shards = [np.asarray(s.data) for s in variable.value.addressable_shards]
    return {
        "path": variable.path,
        "type": type(sharding).__name__,
        "devices": len(sharding.device_set),
        "replicated": bool(sharding.is_fully_replicated),
        "copies_equal": all(np.array_equal(shards[0], s) for s in shards[1:]),
    }


def worker() -> None:
    """Run the doc's blocks (nothing of Keras or JAX is imported before them), then report as JSON."""
    setup, train = doc_blocks()
    ns: dict[str, Any] = {"__name__": "__doc__"}
    exec(compile(setup, f"{DOC}:block 1", "exec"), ns)
    import jax
    import keras
    import numpy as np

    import archgen

    model = ns["model"]
    before = [np.array(w) for w in model.get_weights()]
    trainable_before = [np.array(v.value) for v in model.trainable_variables]
    exec(compile(train, f"{DOC}:block 2", "exec"), ns)
    distribution = keras.distribution.distribution()
    layout = distribution.get_data_layout((8, 32, 32, 3))

    # A model built before the distribution is set, then trained under it (what the doc warns of).
    keras.distribution.set_distribution(None)
    early = archgen.build("resnet18", backend="keras", input_size=32, head__classes=10)
    keras.distribution.set_distribution(distribution)
    early_variables = [_sharding(v) for v in early.weights]
    early.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    try:
        early.fit(ns["x"][:8], ns["y"][:8], batch_size=8, epochs=1, verbose=0)
        early_error = None
    except ValueError as exc:
        early_error = str(exc)

    report = {
        "backend": keras.backend.backend(),
        "listed": ns["devices"],
        "jax_devices": [str(d) for d in jax.devices()],
        "distribution": type(distribution).__name__,
        "mesh": list(distribution.device_mesh.shape),
        "mesh_axes": list(distribution.device_mesh.axis_names),
        "batch_axes": list(layout.axes),
        "batch_shard": list(layout.backend_layout.shard_shape((8, 32, 32, 3))),
        "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "loss": ns["history"].history["loss"],
        "changed": sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)),
        "weights": len(before),
        "trainable_changed": sum(
            not np.array_equal(a, np.asarray(v.value))
            for a, v in zip(trainable_before, model.trainable_variables, strict=True)
        ),
        "trainable": len(trainable_before),
        "variables": [_sharding(v) for v in model.weights],
        "optimizer_variables": [_sharding(v) for v in model.optimizer.variables],
        "early": early_variables,
        "early_error": early_error,
    }
    print(json.dumps(report))


def test_data_parallel_training_on_two_jax_cpu_devices() -> None:
    assert len(doc_blocks()) == 2, "docs/keras_scaling.md: the setup block, then the training block"
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}  # the doc sets both
    env["JAX_PLATFORMS"] = "cpu"
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_keras_distributed as t; t.worker()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])

    assert r["backend"] == "jax"
    assert r["listed"] == ["cpu:0", "cpu:1"] and len(r["jax_devices"]) == 2, r
    assert r["distribution"] == "DataParallel" and r["mesh"] == [2] and r["mesh_axes"] == ["batch"]
    # each batch of 8 is split along its first axis, 4 samples a device
    assert r["batch_axes"] == ["batch", None, None, None] and r["batch_shard"] == [4, 32, 32, 3], r
    assert r["steps"] == 2
    assert len(r["loss"]) == 1 and all(math.isfinite(v) for v in r["loss"]), r["loss"]
    assert r["trainable_changed"] == r["trainable"] > 0  # every weight took the updates
    assert r["changed"] == r["weights"]  # and every batch-norm statistic moved
    for v in r["variables"] + r["optimizer_variables"]:
        # a full copy on both devices, the copies equal after the steps
        assert v["type"] == "NamedSharding" and v["devices"] == 2 and v["replicated"] and v["copies_equal"], v
    assert len(r["variables"]) == r["weights"] and r["optimizer_variables"]
    # built before set_distribution: one device, and fit under the distribution fails
    assert all(v["devices"] == 1 for v in r["early"]), r["early"]
    assert r["early_error"] and "Received incompatible devices for jitted computation" in r["early_error"]
