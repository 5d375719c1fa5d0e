"""``archgen bench``'s Keras side: the spec's model (channels-last, random init), a random batch on the
device, and one step to time through Keras' own compiled functions: an eval forward is
``model.predict_on_batch(x)`` (``model(x, training=False)`` in Keras' predict function), a training step
``model.train_on_batch(x, labels)`` after ``compile(optimizer=SGD, loss=sparse categorical
cross-entropy)`` (from logits, or from probabilities where the head ends with a softmax; the mean of
every output map for a features model).

Both return their results as numpy arrays, which waits for the device: each timed iteration ends
when the step has finished. ``compile``: ``jit_compile=True`` (XLA on TensorFlow and JAX,
torch.compile on Keras' PyTorch backend); without it, TensorFlow runs the step as a ``tf.function``
graph and PyTorch eagerly, while JAX always jits (Keras on JAX without jit runs op by op, which
measures nothing a user would run). ``amp="bf16"``: the ``mixed_bfloat16`` dtype policy while the
model is built (bfloat16 compute, float32 weights); the global policy is restored afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from archgen.ir import Network
from archgen.runtime.bench import BenchOptions, RssMeter, Runner, cpu_name, softmax_output

from .backend import BACKEND

LR = 1e-4  # as the PyTorch side: random labels must not drive the weights to inf/NaN
MOMENTUM = 0.9


@contextlib.contextmanager
def policy(name: str | None) -> Any:
    """Keras' global dtype policy set to ``name`` for what runs inside (layers take it when created)."""
    if name is None:
        yield
        return
    import keras

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)


class TensorflowGpuMeter:
    def __init__(self, index: int) -> None:
        self.name = f"GPU:{index}"

    def start(self) -> None:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats(self.name)

    def stop(self) -> tuple[int | None, str]:
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info(self.name)["peak"]), "tensorflow get_memory_info peak"


class JaxGpuMeter:
    """JAX keeps a peak but cannot reset it: the figure covers the process's life, warmup included."""

    def __init__(self, index: int) -> None:
        self.index = index

    def start(self) -> None:
        pass

    def stop(self) -> tuple[int | None, str]:
        import jax

        stats = jax.devices("gpu")[self.index].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return (None if peak is None else int(peak)), "jax peak_bytes_in_use (since the process started)"


class TorchGpuMeter:
    def __init__(self, index: int) -> None:
        self.index = index

    def start(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)
        torch.cuda.reset_peak_memory_stats(self.index)

    def stop(self) -> tuple[int | None, str]:
        import torch

        torch.cuda.synchronize(self.index)
        return int(torch.cuda.max_memory_allocated(self.index)), "torch.cuda.max_memory_allocated"


def _gpu(framework: str, index: int) -> tuple[Any, str]:
    """The memory meter and the name of GPU ``index`` as Keras' framework sees it."""
    name = f"GPU {index}"
    if framework == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(Exception):
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[index])
            name = str(details.get("device_name", name))
        return TensorflowGpuMeter(index), name
    if framework == "jax":
        import jax

        with contextlib.suppress(Exception):
            name = str(jax.devices("gpu")[index].device_kind)
        return JaxGpuMeter(index), name
    import torch

    with contextlib.suppress(Exception):
        name = torch.cuda.get_device_name(index)
    return TorchGpuMeter(index), name


def _trainable(model: Any, network: Network) -> tuple[Any, Any]:
    """The model to train and its loss: the model itself with cross-entropy for a classifier; for a
    features model, the same layers ending in the sum of the means of its output maps, which is the loss."""
    import keras

    if network.classes is not None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax_output(network))
        return model, loss
    outs = list(model.outputs)
    total = keras.ops.mean(outs[0], axis=tuple(range(1, len(outs[0].shape))))
    for out in outs[1:]:
        total = total + keras.ops.mean(out, axis=tuple(range(1, len(out.shape))))
    return keras.Model(model.inputs, total), lambda y_true, y_pred: keras.ops.mean(y_pred)


def prepare(network: Network, options: BenchOptions) -> Runner:
    BACKEND.require()
    import keras

    framework = keras.backend.backend()
    device = options.device or "cpu"
    scope = contextlib.ExitStack()
    scope.enter_context(BACKEND.device_scope(device))  # OptionError / RunError for a device Keras lacks
    try:
        with policy("mixed_bfloat16" if options.amp == "bf16" else None):
            model = BACKEND.build(network, device=device)
        rng = np.random.default_rng(options.seed)
        c, h, w = network.input_shape
        x = keras.ops.convert_to_tensor(rng.standard_normal((options.batch, h, w, c), dtype=np.float32))
        labels = keras.ops.convert_to_tensor(
            rng.integers(0, network.classes or 1, options.batch).astype("int32" if network.classes else "float32")
        )
        jit = options.compile or framework == "jax"
        target, loss = _trainable(model, network) if options.train else (model, None)
        optimizer = keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM) if options.train else None
        target.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
        jitted = bool(target.jit_compile)  # Keras turns it off (with a warning) where a layer cannot be jitted
    except BaseException:
        scope.close()
        raise

    if options.train:

        def step() -> Any:
            return target.train_on_batch(x, labels)

    else:

        def step() -> Any:
            return target.predict_on_batch(x)

    kind, _, index = device.partition(":")
    if kind == "cuda":
        meter, name = _gpu(framework, int(index or 0))
        where = f"cuda:{int(index or 0)}"
    else:
        meter, name, where = RssMeter(), cpu_name(), "cpu"
    compiled = {
        "tensorflow": "tf.function + XLA (jit_compile)" if jitted else "tf.function",
        "jax": "jax.jit (XLA)" if jitted else "eager",
        "torch": "torch.compile" if jitted else "eager",
    }.get(framework, "jit_compile" if jitted else "eager")
    runtime = f"keras {keras.__version__} on {framework}, {compiled}"
    if kind == "cuda" and framework == "tensorflow" and options.amp is None:
        import tensorflow as tf

        if tf.config.experimental.tensor_float_32_execution_enabled():
            runtime += ", float32 convs in TF32 (TensorFlow's default)"
    return Runner(
        step=step,
        sync=lambda: None,  # each step's outputs come back as numpy: the step has finished
        memory=meter,
        device=where,
        device_name=name,
        runtime=runtime,
        dtype="bfloat16" if options.amp == "bf16" else "float32",
        model=model,
        channels_last=True,  # Keras' layout (NHWC): the model and its input
        close=scope.close,
    )
