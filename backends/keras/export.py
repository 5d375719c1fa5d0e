"""The Keras side of ``archgen export``: Keras' own ``model.export`` writes a TensorFlow SavedModel
(a folder) or a LiteRT flatbuffer (``.tflite``), and the file is read back with what runs it in
deployment: ``tf.saved_model.load`` and the LiteRT interpreter (``ai_edge_litert``, which replaces
the deprecated ``tf.lite.Interpreter``). Batches are channels-first numpy arrays at this interface,
as the core draws them; the model sees them channels-last.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from archgen.errors import MissingFramework

Run = Callable[[Any], list[Any]]  # a numpy batch (channels-first) -> the outputs as numpy arrays
KERAS_FORMATS = {"saved_model": "tf_saved_model", "litert": "litert"}


def require(fmt: str) -> None:
    """Raise MissingFramework unless Keras runs on TensorFlow here (its exporters need it)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise MissingFramework(
            f"--format {fmt} is written by Keras' TensorFlow exporter; this Keras runs on "
            f"{keras.backend.backend()} (KERAS_BACKEND): set KERAS_BACKEND=tensorflow"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print each variable's signature and warn about their own APIs; none of it is the user's."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        yield


def _channels_last(x: Any) -> Any:
    return x.transpose(0, 2, 3, 1)


def as_list(value: Any) -> list[Any]:
    """Outputs (a tensor, or a list/tuple of them) as numpy arrays."""
    import numpy as np

    items = list(value) if isinstance(value, list | tuple) else [value]
    return [np.asarray(v) for v in items]


def run_live(model: Any, x: Any) -> list[Any]:
    """The live model's inference outputs for a channels-first numpy batch."""
    return as_list(model(_channels_last(x), training=False))


def save(model: Any, fmt: str, path: Path, example: Any, outputs: int) -> None:
    """``model.export`` in ``fmt``; the batch dimension stays dynamic (the input is (None, h, w, c))."""
    with _quiet():
        model.export(str(path), format=KERAS_FORMATS[fmt], verbose=False)


def load(fmt: str, path: Path) -> tuple[str, Run]:
    """The exported artifact loaded as a deployment loads it: (the loader's name, run it on a batch)."""
    if fmt == "saved_model":
        import tensorflow as tf

        with _quiet():
            program = tf.saved_model.load(str(path))
        return "tf.saved_model.load", lambda x: as_list(program.serve(_channels_last(x)))
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner()

        def run(x: Any) -> list[Any]:
            (name,) = runner.get_input_details()
            found = runner(**{name: _channels_last(x)})
            # output_0, output_1, ...: in the model's order by their number (not as text: output_10)
            return [found[k] for k in sorted(found, key=lambda k: int(re.sub(r"\D", "", k) or 0))]

        return "the LiteRT interpreter", run
    raise ValueError(f"unknown export format {fmt!r}")
