"""The Keras 3 backend: live models are the emitted source, executed (as for PyTorch)."""

from __future__ import annotations

import math
import os
from typing import Any

from archgen.emit import load_source, render
from archgen.ir import Network, Shape

from .emit import keras_name

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class KerasBackend:
    name = "keras"

    def build(self, network: Network, device: str | None = None) -> Any:
        source = render(network, "keras", source=f"{network.name} (live)")
        module = load_source(source, f"archgen_live_keras.{network.name}_{network.digest[:12]}")
        model = module.build_model()
        model.archgen_network = network  # lets transfer_weights check and map by IR name
        return model

    def get_weights(self, model: Any, network: Network) -> dict[str, dict[str, Any]]:
        """Every weighted IR layer's arrays, converted to PyTorch's layout (the canonical one)."""
        out: dict[str, dict[str, Any]] = {}
        for layer in network.layers():
            if not (layer.params or layer.stats):
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

    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        """Shapes (channels-first, as the IR's) after the stem, each stage and the head."""
        import keras
        import numpy as np

        points = [s.name for s in network.stages]
        if network.stem:
            points.insert(0, "stem")
        probe = keras.Model(model.inputs[0], [model.get_layer(p).output for p in points] + [model.output])
        c, h, w = network.input_shape
        outs = probe(np.random.default_rng(0).standard_normal((2, h, w, c)).astype("float32"), training=False)
        shapes = {
            p: _channels_first(tuple(int(d) for d in o.shape[1:]))
            for p, o in zip([*points, "output"], outs, strict=True)
        }
        if network.head:
            shapes["head"] = shapes["output"]
        return shapes


# Keras' BatchNormalization weights in order, under PyTorch's names.
_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _channels_first(shape: tuple[int, ...]) -> Shape:
    return (shape[-1], *shape[:-1]) if len(shape) == 3 else shape


BACKEND = KerasBackend()
