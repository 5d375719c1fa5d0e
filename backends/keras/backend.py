"""The Keras 3 backend: live models are the emitted source, executed (as for PyTorch)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, assert_never

from archgen import live
from archgen.codegen.emit import render, render_template
from archgen.errors import MissingFramework, OptionError, RunError, memory_guard
from archgen.ir import (
    Act,
    AnyLayer,
    AvgPool,
    BlurPool,
    Conv,
    Dropout,
    DropPath,
    GlobalPool,
    GroupNorm,
    Linear,
    MaxPool,
    Network,
    Norm,
    NormAct,
    Shape,
    ZeroPad,
)

from .emit import keras_name

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# What TensorFlow's native code prints to stderr while it loads, before its logging is set up (so
# TF_CPP_MIN_LOG_LEVEL cannot hold it back), once per shared library: start-up news, not problems.
_STARTUP_NOISE = re.compile(
    r"absl::InitializeLog|port\.cc:\d+\] oneDNN custom operations|cudart_stub\.cc|cuda_platform\.cc:\d+\] failed call "
    r"to cuInit|cuda_executor|cpu_feature_guard|To enable the following instructions|rebuild TensorFlow with"
)


def _import_triton_first() -> None:
    """Import triton, where it is installed, before TensorFlow is: TensorFlow >= 2.20 loads its library
    with RTLD_GLOBAL, and a triton imported after it (timm, torchvision and torch.compile import it)
    binds to TensorFlow's LLVM and kills the process with SIGSEGV (tensorflow/tensorflow#124205).
    Imported first, triton keeps its own. Without triton (CPU-only torch, no torch) this is one
    find_spec; once TensorFlow is loaded it is too late, and importing triton then would be the crash."""
    if "triton" in sys.modules or "tensorflow" in sys.modules:
        return
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec("triton") is not None:
            importlib.import_module("triton")
    except Exception:  # a broken triton install is torch's concern; Keras runs without it
        pass


@contextlib.contextmanager
def _quiet_startup() -> Iterator[None]:
    """Hold back the framework's start-up lines on file descriptor 2; anything else it printed is passed on."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is not a real file (captured by a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not _STARTUP_NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))


def _devices(kind: str | None) -> list[str]:
    """Keras' devices of ``kind`` (cpu, gpu; None: its default kind). Keras on PyTorch has no
    distribution library (keras.distribution.list_devices fails there), so PyTorch is asked."""
    import keras

    if keras.backend.backend() != "torch":
        try:
            found: list[str] = keras.distribution.list_devices(kind)
        except RuntimeError:  # JAX without that platform (JAX_PLATFORMS=cpu, no CUDA plugin)
            return []
        return found
    import torch

    gpus = [f"gpu:{i}" for i in range(torch.cuda.device_count())]
    return gpus if kind == "gpu" or (kind is None and gpus) else ["cpu:0"]


class KerasBackend:
    name = "keras"
    extra = "keras"  # pip install 'archgen[keras]'

    def require(self) -> None:
        """Import Keras and the framework it runs on, or say what to install (MissingFramework)."""
        _import_triton_first()
        if "keras" in sys.modules:
            return
        wanted = os.environ.get("KERAS_BACKEND", "tensorflow")
        try:
            with _quiet_startup():
                import keras  # noqa: F401  (the ImportError below names what is missing)

                _devices(None)  # initialises the framework's devices (more start-up lines)
        except ImportError as exc:
            missing = exc.name or str(exc)
            sys.modules.pop("keras", None)
            if missing.split(".")[0] in ("keras", "h5py") or (wanted == "tensorflow" and "tensorflow" in missing):
                raise MissingFramework(
                    f"the keras backend needs {missing.split('.')[0]}, which is not installed: "
                    "pip install 'archgen[keras]'"
                ) from None
            raise MissingFramework(
                f"Keras is set to run on {wanted} (KERAS_BACKEND={wanted}), which cannot be imported ({exc}): "
                f"pip install {wanted}, or set KERAS_BACKEND to one that is installed (tensorflow, jax or torch)"
            ) from None

    def device_scope(self, device: str | None) -> contextlib.AbstractContextManager[Any]:
        """Keras' placement on ``device`` (cpu, cuda, cuda:N, as for PyTorch); a GPU Keras cannot see is a RunError."""
        if device is None:
            return contextlib.nullcontext()
        kind, _, index = device.partition(":")
        if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
            raise OptionError(f"--device {device!r}: expected cpu, cuda or cuda:N")
        import keras

        want = "cpu" if kind == "cpu" else "gpu"
        found = _devices(want)
        n = int(index or 0)
        if n >= len(found):
            seen = f"{len(found)} GPU(s)" if found else "no GPU"
            raise RunError(
                f"--device {device!r}: Keras ({keras.backend.backend()} backend) sees {seen} on this machine; "
                "use --device cpu"
            )
        scope: contextlib.AbstractContextManager[Any] = keras.device(f"{want}:{n}")
        return scope

    fuses = False  # no inference form: build(..., fuse=True) is an OptionError
    randomizes = False  # weights are drawn in torch and moved (archgen.runtime.compare)

    def build(
        self,
        network: Network,
        device: str | None = None,
        dtype: str | None = None,
        *,
        weights: dict[str, dict[str, Any]] | None = None,
        fuse: bool = False,
    ) -> Any:
        """A live Keras model; ``dtype`` (e.g. float64) sets every layer's dtype policy; ``device`` places
        its weights (cpu, cuda, cuda:N); ``weights`` (PyTorch's layout, by IR name) are loaded after the
        build, since Keras creates and initialises a layer's variables as it is called."""
        if fuse:
            raise OptionError(
                f"fuse: the {self.name} backend has no inference form (norms folded into convs); "
                "build it with backend='torch', or without fuse"
            )
        self.require()
        name = live.name_for("keras", network.name, network.digest)
        module = live.loaded(name)
        if module is None:  # rendered once per process and network
            module = live.load(render(network, "keras", source=f"{network.name} (live)"), name)
        with self.device_scope(device), _floatx(dtype), memory_guard(f"building {network.name} on {device or 'cpu'}"):
            model = module.build_model()
        model.archgen_network = network  # lets transfer_weights check and map by IR name
        model.archgen_backend = self.name
        if weights is not None:
            self.set_weights(model, network, weights)
        return model

    def get_weights(
        self, model: Any, network: Network, names: Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Every weighted IR layer's arrays (or those ``names``), converted to PyTorch's layout (the canonical one)."""
        out: dict[str, dict[str, Any]] = {}
        wanted = None if names is None else set(names)
        for layer in network.layers():
            if layer.weighted and (wanted is None or layer.name in wanted):
                out[layer.name] = _to_torch(layer, model.get_layer(keras_name(layer.name)).get_weights())
        return out

    def set_weights(self, model: Any, network: Network, weights: dict[str, dict[str, Any]]) -> None:
        for name, tensors in weights.items():
            layer = model.get_layer(keras_name(name))
            values = _from_torch(network.layer(name), tensors)
            current = layer.get_weights()
            for have, value in zip(current, values, strict=True):
                if tuple(have.shape) != value.shape:
                    raise ValueError(f"{name}: shape {value.shape} does not fit {tuple(have.shape)}")
            layer.set_weights([v.astype(have.dtype) for have, v in zip(current, values, strict=True)])

    def model_class(self) -> type:
        import keras

        return keras.Model  # type: ignore[no-any-return]

    def randomize(self, model: Any, network: Network, seed: int = 0, gamma: tuple[float, float] = (0.5, 1.5)) -> None:
        raise NotImplementedError(
            "the keras backend draws no random weights: draw them in torch and move them (archgen.runtime.compare)"
        )

    def counts(self, model: Any) -> tuple[int, int]:
        """(trainable weights, batch-norm statistics): a frozen layer's weights are neither."""
        import keras

        def size(weights: list[Any]) -> int:
            return sum(math.prod(int(d) for d in w.shape) for w in weights)

        norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
        return size(model.trainable_weights), size([w for x in norms for w in (x.moving_mean, x.moving_variance)])

    def outputs(self, model: Any, network: Network, x: Any) -> dict[str, Any]:
        """Inference activations (numpy, channels-first as the IR's) after the stem, every stage
        and the head, for a channels-first numpy batch ``x``."""
        import keras

        points = [s.name for s in network.stages]
        if network.stem:
            points.insert(0, "stem")
        ends = list(model.outputs)
        # One output, or a features model's maps (out_indices): "output" is then the last of them.
        names = ["output"] if len(ends) == 1 else [*(f"output.{i}" for i in range(len(ends))), "output"]
        ends = ends if len(ends) == 1 else [*ends, ends[-1]]
        with _recursion_room():  # a functional model over a deep graph (as the emitted build_model does)
            probe = keras.Model(model.inputs[0], [model.get_layer(keras_name(p)).output for p in points] + ends)
        outs = probe(x.transpose(0, 2, 3, 1).astype(model.dtype), training=False)
        arrays = [_channels_first(keras.ops.convert_to_numpy(o)) for o in outs]
        found = dict(zip([*points, *names], arrays, strict=True))
        if network.head:
            found["head"] = found["output"]
        return found

    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        """Shapes (channels-first, as the IR's) after the stem, each stage and the head."""
        import numpy as np

        size = f"{network.input_shape[1]}x{network.input_shape[2]}"
        with self.device_scope(device), memory_guard(f"running {network.name} on a batch of 2 at {size}"):
            x = np.random.default_rng(0).standard_normal((2, *network.input_shape), dtype=np.float32)
            return {k: tuple(v.shape[1:]) for k, v in self.outputs(model, network, x).items()}


# The objects of templates/objects.py.j2, as custom_objects.py.j2 defines all of them.
CUSTOM_OBJECTS = (
    "ResNet",
    "NegInfPadding2D",
    "CeilAveragePooling2D",
    "BlurPool2D",
    "StdConv2D",
    "EvalBatchNormalization",
    "FilterResponseNorm",
    "EvoNormS0",
    "ZeroPadShortcut",
    "exact_gelu",
    "leaky_relu",
)


def custom_objects() -> dict[str, Any]:
    """Every Keras object archgen's models may use, by its registered name (``archgen>ResNet``, ...):
    what ``keras.models.load_model`` needs to read a saved archgen model in a process that has not
    built one (``custom_objects=custom_objects()``, or ``keras.saving.custom_object_scope``).
    Importing an emitted file registers the objects it uses, as does building a live model."""
    BACKEND.require()
    import keras

    module = live.load(render_template("keras", "custom_objects.py.j2"), f"{live.__name__}.keras_objects")
    objects = [getattr(module, name) for name in CUSTOM_OBJECTS]
    return {keras.saving.get_registered_name(obj): obj for obj in objects}


@contextlib.contextmanager
def _recursion_room(limit: int = 50_000) -> Iterator[None]:
    """Keras builds a functional model by walking its graph recursively; deep nets need more depth."""
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(max(saved, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


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


def _to_torch(layer: AnyLayer, values: list[Any]) -> dict[str, Any]:
    """A Keras layer's arrays in PyTorch's names and layout (conv HWIO -> OIHW, WIO -> OIW; dense transposed)."""
    match layer:
        case Conv():
            spatial = range(layer.dims)
            weight = values[0].transpose(layer.dims + 1, layer.dims, *spatial)
            return {"weight": weight} | ({"bias": values[1]} if len(values) > 1 else {})
        case Linear():
            weight = values[0].T
            weight = weight.reshape(*weight.shape, 1, 1) if layer.conv else weight  # stored as a 1x1 conv's
            return {"weight": weight} | ({"bias": values[1]} if len(values) > 1 else {})
        case Norm():
            return dict(zip(_NORM_KEYS, values, strict=True))
        case GroupNorm():  # gamma, beta
            return dict(zip(_NORM_KEYS[:2], values, strict=True))
        case NormAct():  # weight, bias, tau or v
            return dict(zip(("weight", "bias", layer.extra), values, strict=True))
        case Act() | MaxPool() | AvgPool() | BlurPool() | ZeroPad() | GlobalPool() | Dropout() | DropPath():
            raise ValueError(f"{layer.name}: IR {layer.kind} layers hold no weights")
        case _:
            assert_never(layer)


def _from_torch(layer: AnyLayer, tensors: dict[str, Any]) -> list[Any]:
    """PyTorch-layout tensors as the arrays of the Keras layer, in Keras' order."""
    bias = [tensors["bias"]] if "bias" in tensors else []
    match layer:
        case Conv():
            spatial = range(2, 2 + layer.dims)
            return [tensors["weight"].transpose(*spatial, 1, 0), *bias]
        case Linear():
            weight = tensors["weight"]
            weight = weight.reshape(weight.shape[:2]) if layer.conv else weight  # (out, in, 1, 1) -> (out, in)
            return [weight.T, *bias]
        case Norm():
            return [tensors[k] for k in _NORM_KEYS]
        case GroupNorm():
            return [tensors[k] for k in _NORM_KEYS[:2]]
        case NormAct():
            return [tensors[k] for k in ("weight", "bias", layer.extra)]
        case Act() | MaxPool() | AvgPool() | BlurPool() | ZeroPad() | GlobalPool() | Dropout() | DropPath():
            raise ValueError(f"{layer.name}: IR {layer.kind} layers hold no weights")
        case _:
            assert_never(layer)


def _channels_first(array: Any) -> Any:
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


BACKEND = KerasBackend()
