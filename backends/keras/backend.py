"""The Keras 3 backend: live models are the emitted source, executed (as for PyTorch)."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from archgen.emit import load_source, render
from archgen.ir import Network, Shape

from .emit import keras_name

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class KerasBackend:
    name = "keras"

    def build(self, network: Network, device: str | None = None, dtype: str | None = None) -> Any:
        """A live Keras model; ``dtype`` (e.g. float64) sets every layer's dtype policy.

        ``device`` is left to Keras' own placement (its backend picks the accelerator).
        """
        source = render(network, "keras", source=f"{network.name} (live)")
        module = load_source(source, f"archgen_live_keras.{network.name}_{network.digest[:12]}")
        with _floatx(dtype):
            model = module.build_model()
        model.archgen_network = network  # lets transfer_weights check and map by IR name
        return model

    def get_weights(
        self, model: Any, network: Network, names: Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Every weighted IR layer's arrays (or those ``names``), converted to PyTorch's layout (the canonical one)."""
        out: dict[str, dict[str, Any]] = {}
        wanted = None if names is None else set(names)
        for layer in network.layers():
            if not (layer.params or layer.stats) or (wanted is not None and layer.name not in wanted):
                continue
            values = model.get_layer(keras_name(layer.name)).get_weights()
            if layer.op == "conv":
                out[layer.name] = {"weight": values[0].transpose(3, 2, 0, 1)} | (
                    {"bias": values[1]} if len(values) > 1 else {}
                )
            elif layer.op == "linear":
                out[layer.name] = {"weight": values[0].T} | ({"bias": values[1]} if len(values) > 1 else {})
            elif layer.op == "norm":
                out[layer.name] = dict(zip(_NORM_KEYS, values, strict=True))
            else:
                raise ValueError(f"{layer.name}: no weight mapping for IR op '{layer.op}'")
        return out

    def set_weights(self, model: Any, network: Network, weights: dict[str, dict[str, Any]]) -> None:
        for name, tensors in weights.items():
            layer = model.get_layer(keras_name(name))
            op = next(x.op for x in network.layers() if x.name == name)
            if op == "conv":
                values = [tensors["weight"].transpose(2, 3, 1, 0)] + ([tensors["bias"]] if "bias" in tensors else [])
            elif op == "linear":
                values = [tensors["weight"].T] + ([tensors["bias"]] if "bias" in tensors else [])
            else:
                values = [tensors[k] for k in _NORM_KEYS]
            current = layer.get_weights()
            for have, value in zip(current, values, strict=True):
                if tuple(have.shape) != value.shape:
                    raise ValueError(f"{name}: shape {value.shape} does not fit {tuple(have.shape)}")
            layer.set_weights([v.astype(have.dtype) for have, v in zip(current, values, strict=True)])

    def counts(self, model: Any) -> tuple[int, int]:
        size = lambda weights: sum(math.prod(int(d) for d in w.shape) for w in weights)  # noqa: E731
        return size(model.trainable_weights), size(model.non_trainable_weights)

    def outputs(self, model: Any, network: Network, x: Any) -> dict[str, Any]:
        """Inference activations (numpy, channels-first as the IR's) after the stem, every stage
        and the head, for a channels-first numpy batch ``x``."""
        import keras

        points = [s.name for s in network.stages]
        if network.stem:
            points.insert(0, "stem")
        probe = keras.Model(model.inputs[0], [model.get_layer(p).output for p in points] + [model.output])
        outs = probe(x.transpose(0, 2, 3, 1).astype(model.dtype), training=False)
        found = {
            p: _channels_first(keras.ops.convert_to_numpy(o)) for p, o in zip([*points, "output"], outs, strict=True)
        }
        if network.head:
            found["head"] = found["output"]
        return found

    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        """Shapes (channels-first, as the IR's) after the stem, each stage and the head."""
        import numpy as np

        x = np.random.default_rng(0).standard_normal((2, *network.input_shape), dtype=np.float32)
        return {k: tuple(v.shape[1:]) for k, v in self.outputs(model, network, x).items()}

    def weights_file_layout(self, model: Any, network: Network) -> list[tuple[str, tuple[int, ...], str]]:
        """(dataset path, shape, IR layer) of every array ``model.save_weights`` writes, in file order.

        Keras 3 names a functional model's layers in its ``.weights.h5`` by class (``conv2d_12``), not
        by layer name, so a file fits a model only position by position; this lists the positions.
        """
        used: dict[str, int] = {}
        ir_names = {keras_name(x.name): x.name for x in network.layers()}
        out = []
        for layer in model.layers:
            base = _snake(type(layer).__name__)
            used[base] = used.get(base, -1) + 1
            key = base if used[base] == 0 else f"{base}_{used[base]}"
            for i, var in enumerate(layer.weights):
                out.append(
                    (f"layers/{key}/vars/{i}", tuple(int(d) for d in var.shape), ir_names.get(layer.name, layer.name))
                )
        return out


@contextlib.contextmanager
def _floatx(dtype: str | None) -> Iterator[None]:
    """Layers take their dtype from the global policy when created; set it for one build only."""
    if not dtype:
        yield
        return
    import keras

    saved = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(saved[0])
        keras.config.set_dtype_policy(saved[1])


# Keras' BatchNormalization weights in order, under PyTorch's names.
_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _snake(name: str) -> str:
    """Keras' own class-name to file-key rule (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _channels_first(array: Any) -> Any:
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


BACKEND = KerasBackend()
