"""Keras models that save and load as keras.applications ones do: ``.keras`` files
(``model.save`` / ``keras.models.load_model``), ``get_config`` / ``from_config`` and
``clone_model``, live and emitted, giving the same outputs afterwards; archgen's own layers are
registered as ``archgen>Name`` with complete configs, and load in a fresh process.

CI runs a set of specs that together use every archgen Keras object and every block, shortcut and
stem kind, plus a graph deeper than Python's recursion limit lets Keras walk; ARCHGEN_EXPENSIVE=1
runs every shipped spec, live and emitted."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from archgen.backends.keras import BACKEND as KERAS
from archgen.backends.keras import custom_objects
from helpers import EXPENSIVE, ROOT, SPEC_NAMES, import_file, spec_path

import archgen

pytestmark = [pytest.mark.keras, pytest.mark.slow]

SIZE = 32

# name -> overrides: with the shipped specs below, every archgen object (NegInfPadding2D,
# CeilAveragePooling2D, BlurPool2D, StdConv2D, FilterResponseNorm, EvoNormS0, ZeroPadShortcut, exact_gelu, leaky_relu,
# ResNet) and every block /
# shortcut / stem kind.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gelu_se_leaky": ("resnet18", {"act": "gelu", "block.se": {"ratio": 0.25, "act": "leaky_relu"}}),
    "ceil_avg_stride_3": (
        "xresnet18",
        {"stages": [{"depth": 1, "width": 16}, {"depth": 1, "width": 32, "stride": 3}]},
    ),
    "blur_option_a": (
        "cifar_resnet20",
        {"block.anti_alias": "blur", "stages": [{"depth": 1, "width": 16}, {"depth": 1, "width": 32}]},
    ),
    "dense_features": ("resnet50v2", {"output_stride": 16, "head": {"type": "features", "out_indices": [0, 2, 4]}}),
    # 260 plain blocks, 1,045 layers in a row: Keras' walk of a graph of 1,000 layers already passes
    # Python's default recursion limit (measured), so this needs deep_graph() as ResNet-RS-420 does.
    "deep_plain": ("imagenette_cnn", {"stages": [{"depth": 260, "width": 8}], "input.size": 16}),
}
# Live: basic blocks and a -inf max pool, zero-padded pools and biases (V1), pre-activation with
# max-pool shortcuts, the conv-pool stem with SE, plain blocks; emitted: deep stems with average-pool
# shortcuts, SE, pre-activation (the live models run the same source).
LIVE = [*(SPEC_NAMES if EXPENSIVE else ["resnet18", "keras_resnet50", "resnet50v2", "resnetrs50", "imagenette_cnn"])]
LIVE += list(VARIANTS)
EMITTED = SPEC_NAMES if EXPENSIVE else ["resnet50d", "seresnet50", "resnet50v2"]


def network(name: str) -> archgen.Network:
    spec, overrides = VARIANTS.get(name, (name, {}))
    return archgen.compile_spec(spec_path(spec), overrides, input_size=None if "input.size" in overrides else SIZE)[1]


def randomized(model: Any, seed: int = 0) -> Any:
    """Every weight random (norm statistics included), so a layer that loads wrongly shows."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim == 1:  # norm scales, shifts, means, variances, biases: positive and near 1 keep deep nets sane
            weights.append(rng.uniform(0.5, 1.0, w.shape).astype(w.dtype))
        else:
            weights.append(rng.normal(0.0, 1.0 / np.sqrt(np.prod(w.shape[:-1])), w.shape).astype(w.dtype))
    model.set_weights(weights)
    return model


def outputs(model: Any, x: np.ndarray) -> list[np.ndarray]:
    got = model(x, training=False)
    return [np.asarray(o) for o in (got if isinstance(got, list | tuple) else [got])]


def assert_same(model: Any, other: Any, x: np.ndarray) -> None:
    want, got = outputs(model, x), outputs(other, x)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert w.std() > 1e-4  # signal, not a constant map
        np.testing.assert_array_equal(g, w)


def as_json(config: dict[str, Any]) -> Any:
    """A config as its file holds it (JSON has lists where the live config has tuples), without the
    Python module of archgen's objects: Keras finds them by registered name ("archgen>Name"), and
    whichever module registered that name last (another emitted file, custom_objects()) serves it."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            named = str(value.get("registered_name", "")).startswith("archgen>")
            return {k: strip(v) for k, v in value.items() if not (named and k == "module")}
        return [strip(v) for v in value] if isinstance(value, list) else value

    return strip(json.loads(json.dumps(config)))


def batch(network: archgen.Network) -> np.ndarray:
    c, h, w = network.input_shape
    return np.random.default_rng(1).standard_normal((2, h, w, c)).astype("float32")


def round_trips(model: Any, network: archgen.Network, tmp_path: Path, config: bool = True) -> None:
    """.keras file, config (``config``: load_model goes through from_config too) and clone: the same
    class, layers, configs and outputs."""
    import keras

    x = batch(network)
    limit = sys.getrecursionlimit()
    path = tmp_path / f"{network.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded).__name__ == "ResNet"
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert as_json(loaded.get_config()) == as_json(model.get_config())
    assert_same(model, loaded, x)
    if config:
        rebuilt = type(model).from_config(model.get_config())
        rebuilt.set_weights(model.get_weights())
        assert_same(model, rebuilt, x)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    assert_same(model, clone, x)
    assert sys.getrecursionlimit() == limit  # deep_graph() raised it only while Keras walked the graph


@pytest.mark.parametrize("name", LIVE)
def test_live_models_round_trip_through_keras_files_configs_and_clones(name: str, tmp_path: Path) -> None:
    net = network(name)
    round_trips(randomized(KERAS.build(net)), net, tmp_path, config=name != "deep_plain")


@pytest.mark.parametrize("name", EMITTED)
def test_emitted_models_round_trip_through_keras_files_configs_and_clones(name: str, tmp_path: Path) -> None:
    module = import_file(ROOT / "generated" / f"{name}_keras.py", f"saving_{name}_keras")
    try:
        model = randomized(module.build_model(input_shape=(SIZE, SIZE, 3)))
        round_trips(model, archgen.compile_spec(spec_path(name), input_size=SIZE)[1], tmp_path)
    finally:
        del sys.modules[f"saving_{name}_keras"]


def test_archgen_layers_are_registered_with_complete_configs(tmp_path: Path) -> None:
    import keras

    objects = custom_objects()
    assert sorted(objects) == [
        "archgen>BlurPool2D",
        "archgen>CeilAveragePooling2D",
        "archgen>EvalBatchNormalization",
        "archgen>EvoNormS0",
        "archgen>FilterResponseNorm",
        "archgen>NegInfPadding2D",
        "archgen>ResNet",
        "archgen>StdConv2D",
        "archgen>ZeroPadShortcut",
        "archgen>exact_gelu",
        "archgen>leaky_relu",
    ]
    pad = objects["archgen>NegInfPadding2D"](3, name="pad")
    assert type(pad).from_config(pad.get_config()).get_config() == pad.get_config()
    assert pad.get_config()["padding"] == 3
    pool = objects["archgen>CeilAveragePooling2D"](3, name="pool")
    assert pool.get_config()["stride"] == 3
    blur = objects["archgen>BlurPool2D"](2, 5, "zero", name="blur")
    assert type(blur).from_config(blur.get_config()).get_config() == blur.get_config()
    assert (blur.get_config()["kernel"], blur.get_config()["pad_mode"]) == (5, "zero")
    for norm in (objects["archgen>FilterResponseNorm"](1e-6, name="frn"), objects["archgen>EvoNormS0"](8, name="evo")):
        assert type(norm).from_config(norm.get_config()).get_config() == norm.get_config()
    std = objects["archgen>StdConv2D"](8, 3, eps=1e-8, name="std")
    assert type(std).from_config(std.get_config()).get_config() == std.get_config()
    assert std.get_config()["eps"] == 1e-8
    option_a = objects["archgen>ZeroPadShortcut"](16, 2, name="option_a")
    assert type(option_a).from_config(option_a.get_config()).get_config() == option_a.get_config()
    # A saved model names them by registered name, never as a lambda or a bare class name.
    model = KERAS.build(network("gelu_se_leaky"))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"registered_name": "archgen>ResNet"' in config
    assert "archgen>exact_gelu" in config and "archgen>leaky_relu" in config
    assert "lambda" not in config
    assert json.loads(config)["class_name"] == "ResNet"
    assert keras.saving.get_registered_object("archgen>ResNet") is not None


# A fresh interpreter: the model loads with custom_objects() (a live model's), or after importing
# the emitted file it came from, and gives the outputs saved beside it.
FRESH = """
import sys
import numpy as np
import keras
{setup}
model = keras.models.load_model(sys.argv[1]{extra})
x = np.load(sys.argv[2])
got = model(x, training=False)
got = got if isinstance(got, list) else [got]
want = np.load(sys.argv[3])
assert len(got) == len(want.files), (len(got), want.files)
for i, g in enumerate(got):
    np.testing.assert_array_equal(np.asarray(g), want[f"arr_{{i}}"])
print("loaded", type(model).__name__, len(got))
"""


def _load_in_fresh_process(tmp_path: Path, model: Any, network: archgen.Network, setup: str, extra: str) -> str:
    x = batch(network)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "want.npz", *outputs(model, x))
    script = tmp_path / "load.py"
    script.write_text(FRESH.format(setup=setup, extra=extra))
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "m.keras"), str(tmp_path / "x.npy"), str(tmp_path / "want.npz")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_saved_live_model_loads_in_a_fresh_process_with_custom_objects(tmp_path: Path) -> None:
    net = network("dense_features")
    model = randomized(KERAS.build(net))
    out = _load_in_fresh_process(
        tmp_path, model, net, "from archgen.backends.keras import custom_objects", ", custom_objects=custom_objects()"
    )
    assert "loaded ResNet 3" in out


def test_a_saved_emitted_model_loads_in_a_fresh_process_that_imports_its_file(tmp_path: Path) -> None:
    module = import_file(ROOT / "generated" / "resnet50d_keras.py", "fresh_resnet50d_keras")
    try:
        model = randomized(module.build_model(input_shape=(SIZE, SIZE, 3)))
    finally:
        del sys.modules["fresh_resnet50d_keras"]
    net = archgen.compile_spec(spec_path("resnet50d"), input_size=SIZE)[1]
    setup = f"sys.path.insert(0, {str(ROOT / 'generated')!r})\nimport resnet50d_keras  # registers its objects"
    assert "loaded ResNet 1" in _load_in_fresh_process(tmp_path, model, net, setup, "")


def test_a_features_model_names_its_outputs_after_the_stages() -> None:
    model = KERAS.build(network("dense_features"))
    assert list(model.pyramid_outputs) == ["conv1", "layer2", "layer4"]
    assert [t.shape[-1] for t in model.pyramid_outputs.values()] == [64, 512, 2048]
