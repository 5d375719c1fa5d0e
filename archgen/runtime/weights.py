"""Weights as archgen hands them between backends and files: per IR layer, PyTorch's names and layout.

Which tensors a network holds follows from its IR alone (``tensor_shapes``), so a file is checked against
the spec before any model is built or anything written. Each backend reads and writes its own files
(its package's ``WEIGHTS``, a ``registry.WeightsFile``) through these ``Weights``; ``read_state_dict``
reads the interchange files that ``--weights`` takes everywhere.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, assert_never

from .. import registry
from ..errors import CheckpointError, Problem
from ..ir import (
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
    ZeroPad,
)
from . import checkpoint_files

Weights = registry.Weights
# The backend whose weights files are the interchange format (``--weights``): state_dicts, whose names and
# layout are those of ``Weights`` themselves, and which every training script in the field writes.
STATE_DICTS = "torch"
MAX_LISTED = 10  # further mismatches are counted, not listed


def problem(path: Path | str, field: str, message: str) -> Problem:
    return Problem(str(path), None, None, field, message)


def refuse(problems: list[Problem], path: Path, hints: list[Problem] | None = None) -> None:
    """Raise a CheckpointError listing the first ``MAX_LISTED`` problems (and counting the rest)."""
    if len(problems) > MAX_LISTED:
        more = len(problems) - MAX_LISTED
        problems = [*problems[:MAX_LISTED], problem(path, "", f"... and {more} more mismatches")]
    raise CheckpointError([*problems, *(hints or [])])


def tensor_shapes(layer: AnyLayer) -> dict[str, tuple[int, ...]]:
    """The state_dict tensors of one IR layer (PyTorch's names and layout); none for an unweighted layer."""
    match layer:
        case Conv():
            kernel = (layer.kernel,) * layer.dims
            shapes: dict[str, tuple[int, ...]] = {"weight": (layer.out_ch, layer.in_ch // layer.groups, *kernel)}
            return shapes | ({"bias": (layer.out_ch,)} if layer.bias else {})
        case Linear():
            pointwise = (1, 1) if layer.conv else ()  # stored as a 1x1 conv's weight
            shapes = {"weight": (layer.out_features, layer.in_features, *pointwise)}
            return shapes | ({"bias": (layer.out_features,)} if layer.bias else {})
        case Norm():
            return {k: (layer.channels,) for k in ("weight", "bias", "running_mean", "running_var")}
        case GroupNorm():
            return {k: (layer.channels,) for k in ("weight", "bias")}
        case NormAct():
            return {k: (layer.channels,) for k in ("weight", "bias", layer.extra)}
        case Act() | MaxPool() | AvgPool() | BlurPool() | ZeroPad() | GlobalPool() | Dropout() | DropPath():
            return {}
        case _:
            assert_never(layer)


def expected_tensors(network: Network) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """Every state_dict key of the spec's torch model -> (IR layer, tensor name, shape), in network order."""
    out: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for layer in network.layers():
        for key, shape in tensor_shapes(layer).items():
            out[f"{layer.name}.{key}"] = (layer.name, key, shape)
    return out


def optional_keys(network: Network) -> set[str]:
    """Keys a state_dict may carry that hold no weight (batch-norm step counters)."""
    return {f"{x.name}.num_batches_tracked" for x in network.layers() if isinstance(x, Norm)}


def check_state(state: dict[str, Any], network: Network, path: Path) -> Weights:
    """Group a flat state_dict by IR layer, refusing any missing, unexpected or misshapen tensor."""
    expected = expected_tensors(network)
    optional = optional_keys(network)
    problems: list[Problem] = []
    weights: Weights = {}
    for key, (layer, name, shape) in expected.items():
        if key not in state:
            problems.append(problem(path, key, f"missing from the checkpoint (the spec needs shape {shape})"))
            continue
        have = tuple(int(d) for d in getattr(state[key], "shape", ()))
        if have != shape:
            problems.append(problem(path, key, f"shape {have} in the checkpoint, the spec needs {shape}"))
            continue
        weights.setdefault(layer, {})[name] = state[key]
    unexpected = [key for key in state if key not in expected and key not in optional]
    for i, key in enumerate(unexpected):
        # a hint for the keys that are listed (difflib's cost grows with the key's length)
        hinted = i < MAX_LISTED and isinstance(key, str) and len(key) <= checkpoint_files.MAX_KEY_SHOWN
        close = difflib.get_close_matches(key, list(expected), n=1) if hinted else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(problem(path, checkpoint_files.shown(key), f"not in the spec '{network.name}'{hint}"))
    if problems:
        refuse(problems, path, _classifier_hint(state, network, path))
    return weights


def _classifier_hint(state: dict[str, Any], network: Network, path: Path) -> list[Problem]:
    """Where only the classifier's class count differs (a 1000-class checkpoint, a 10-class spec), what
    to do about it, as timm's fine-tuning recipe does it."""
    classifier = next((x for x in network.head if isinstance(x, Linear)), None)
    key = f"{classifier.name}.weight" if classifier is not None else ""
    have = tuple(getattr(state.get(key), "shape", ()))
    if classifier is None or len(have) != 2 or have[1] != classifier.in_features or have[0] == classifier.out_features:
        return []
    message = (
        f"the checkpoint's classifier has {have[0]} classes, the spec {classifier.out_features}: load it with "
        f"--set head.classes={have[0]} and then replace the classifier (model.reset_classifier("
        f"{classifier.out_features})), or remove {classifier.name}.* from the checkpoint"
    )
    return [problem(path, classifier.name, message)]


def flatten(weights: Weights, network: Network) -> dict[str, Any]:
    """A torch state_dict (numpy values) in network order, with the norm layers' step counters."""
    import numpy as np

    out: dict[str, Any] = {}
    for key, (layer, name, _) in expected_tensors(network).items():
        out[key] = np.ascontiguousarray(weights[layer][name])
    for key in optional_keys(network):
        out[key] = np.zeros((), dtype=np.int64)
    return out


def read_state_dict(path: Path | str, network: Network) -> Weights:
    """The tensors of a state_dict file (``--weights``), checked against ``network``."""
    return registry.weights_file(STATE_DICTS).read(Path(path), network)
