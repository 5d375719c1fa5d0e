"""The Keras 3 backend: same counts and shapes as the IR, and, after transfer_weights,
the same function as the PyTorch model for every spec (float64 and float32)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from archgen.backends.keras import BACKEND as KERAS
from archgen.backends.torch import BACKEND as TORCH
from helpers import FUNCTION_SPECS, ROOT, spec_path

import archgen
from archgen.runtime.compare import Comparison, compare, compare_models

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

# 40 px makes the late stages odd-sized (20 -> 10 -> 5 -> 3 -> 2): padding, pooling and
# ceil-mode shortcuts must then agree exactly, not only on even sizes.
SIZE = 40
# Average-pool anti-aliasing refuses odd maps (it would drop their last row and column where the shortcut
# keeps them, as timm's resnetaa models fail there; tests/test_anti_alias.py): those run at 64 px, even
# down to the last stage.
EVEN = 64


def size_of(name: str) -> int:
    _, network = archgen.compile_spec(spec_path(name))
    avg = any(s.design.anti_alias is not None and s.design.anti_alias.kind == "avg" for s in network.stages)
    return EVEN if avg else SIZE


# Norm scales for these comparisons. With scales in [0.5, 1.5] a random ResNet-RS-420 is so
# ill-conditioned that PyTorch's own float32 result is 1.1e-3 (relative) from its float64
# one, so no port can meet 1e-4; with [0.05, 0.15] that gap is 1.7e-5, and scaling one
# mid-network conv by 1% still moves the logits by 0.64% of their scale (resnet50d: 0.9%),
# so any wrong layer shows far above the tolerance.
GAMMA = (0.05, 0.15)


def comparison(name: str, dtype: str, device: str | None = None) -> Comparison:
    """torch vs Keras at every stage boundary, after moving random weights across (archgen compare)."""
    _, network = archgen.compile_spec(spec_path(name), input_size=size_of(name))
    return compare(network, "keras", dtype=dtype, gamma=GAMMA, device=device)


def relative_error(name: str, dtype: str) -> float:
    """The worst relative difference over all boundaries (used by the KERAS_BACKEND=torch run too)."""
    return comparison(name, dtype).worst


@pytest.mark.parametrize("name", FUNCTION_SPECS)
def test_keras_model_matches_ir(name: str) -> None:
    _, network = archgen.compile_spec(spec_path(name), input_size=size_of(name))
    model = KERAS.build(network)
    assert KERAS.counts(model) == (network.params, network.stats)
    assert KERAS.trace(model, network) == network.boundaries()


@pytest.mark.parametrize("name", FUNCTION_SPECS)
def test_same_function_as_torch_in_float64_and_float32(name: str, device: str) -> None:
    for dtype, tolerance in (("float64", 1e-9), ("float32", 1e-4)):
        result = comparison(name, dtype, device)
        assert result.tolerance == tolerance
        assert result.ok, result.text()  # the table names the first diverging stage
        # the comparison saw real signal: a broken layer would show far above the tolerance
        assert all(np.isfinite(p.max_abs) and p.max_abs > 1e-4 for p in result.points), result.text()


@pytest.mark.parametrize("name", ["resnet50d", "resnet50v2", "seresnet50"])
def test_transfer_back_from_keras(name: str) -> None:
    """torch -> Keras -> a fresh torch model: that model and the Keras one compute the same function."""
    _, network = archgen.compile_spec(spec_path(name), input_size=size_of(name))
    first = TORCH.build(network)
    TORCH.randomize(first, network, seed=0, gamma=GAMMA)
    kmodel = KERAS.build(network, dtype="float64")
    archgen.transfer_weights(first, kmodel)
    back = TORCH.build(network, dtype="float64")
    archgen.transfer_weights(kmodel, back)
    x = np.random.default_rng(1).standard_normal((2, *network.input_shape))
    result = compare_models(network, back, kmodel, x, "float64")
    assert result.ok, result.text()


def test_compare_names_the_first_diverging_stage() -> None:
    """A deliberately broken port (one layer3 weight changed by 1%) is caught at layer3, not before."""
    _, network = archgen.compile_spec(spec_path("resnet18"), input_size=SIZE)
    tmodel = TORCH.build(network)
    TORCH.randomize(tmodel, network, seed=0, gamma=GAMMA)
    kmodel = KERAS.build(network)
    archgen.transfer_weights(tmodel, kmodel)
    conv = kmodel.get_layer("layer3_0_conv1")
    kernel, *rest = conv.get_weights()
    conv.set_weights([kernel * 1.01, *rest])
    x = np.random.default_rng(1).standard_normal((2, *network.input_shape)).astype("float32")
    result = compare_models(network, tmodel, kmodel, x, "float32")
    assert not result.ok
    assert result.first_divergence is not None and result.first_divergence.name == "layer3", result.text()
    assert all(p.relative <= 1e-4 for p in result.points[:3]), result.text()  # stem, layer1, layer2
    assert "DIVERGES at layer3" in result.text()


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
        "print(json.dumps([test_keras.relative_error(n, 'float32') for n in ('resnet50d', 'resnet50v2')]))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert max(errors) <= 1e-4, errors


# Small networks the fuzzer (tests/test_fuzz.py) found ported wrongly, kept as regressions:
# average-pool shortcuts of stride 3 and 4 ("same" padding shifted their windows), gelu and
# leaky_relu in float64 (Keras' own use float32 constants), and plain blocks of two kinds
# beside residual ones (the stage loop called the second with a residual block's arguments).
EDGE_SPECS = {
    "avgpool_stride_3": "stem: none\nblock: {type: basic, shortcut: avgpool}\n"
    "stages: [{depth: 1, width: 2, stride: 3}]\ninput: {size: 4, channels: 1}\nhead: features\n",
    "avgpool_stride_3_and_4": "stem: none\nblock: {type: bottleneck, shortcut: avgpool}\n"
    "stages: [{depth: 1, width: 4}, {depth: 2, width: 8, stride: 3}, {depth: 1, width: 8, stride: 4}]\n"
    "input: {size: 23}\n",
    "gelu": "stem: none\nblock: plain\nstages: [{depth: 1, width: 4}]\ninput: {size: 8}\nact: gelu\n",
    "leaky_relu": "stem: none\nblock: plain\nstages: [{depth: 1, width: 4}]\ninput: {size: 8}\nact: leaky_relu\n",
    "two_plain_kinds_and_basic": "block: plain\nstages:\n- {depth: 1, width: 8}\n"
    "- {depth: 1, width: 8, block: {kernel: 5}}\n- {depth: 1, width: 8, block: {type: basic}}\ninput: {size: 32}\n",
    # output_stride: dilated basic blocks with ResNet-D shortcuts (the 2x2 stride-1 "same" average);
    # stride-last pre-activation bottlenecks with max-pool shortcuts, as a features model of 3 maps.
    "dilated_xresnet18": "extends: xresnet18\noutput_stride: 8\ninput: {size: 40}\n",
    "dilated_v2_features": "extends: resnet50v2\noutput_stride: 16\ninput: {size: 40}\n"
    "head: {type: features, out_indices: [0, 2, 3]}\n",
    "dilated_v1_1x1_stride": "extends: keras_resnet50\noutput_stride: 8\ninput: {size: 40}\n"
    "stages: [{depth: 1, width: 64}, {depth: 1, width: 128}, {depth: 2, width: 256}, {depth: 2, width: 512}]\n",
}


@pytest.mark.parametrize("name", sorted(EDGE_SPECS))
def test_edge_networks_agree(name: str, tmp_path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(EDGE_SPECS[name])
    _, network = archgen.compile_spec(path)
    assert KERAS.trace(KERAS.build(network), network) == network.boundaries()  # every output's shape
    for dtype in ("float64", "float32"):
        result = compare(network, "keras", dtype=dtype, gamma=(0.5, 1.5))
        assert result.ok, result.text()
