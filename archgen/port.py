"""Porting checkpoints between frameworks (``archgen port``).

A PyTorch state_dict file (torchvision/timm style, ``.pth``/``.pt``/``.bin`` or
``.safetensors``) becomes a Keras ``.weights.h5`` for the spec's Keras model,
or the reverse. Every key and shape is checked against the spec's IR before
anything is built or written; the first mismatch (in the network's order) is
named, and the output file appears only complete (written beside it, then
renamed).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import registry
from .atomic import replace_atomic
from .errors import CheckpointError, Problem
from .ir import Conv, Layer, Linear, Network, Norm

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
KERAS_SUFFIX = ".weights.h5"
# Wrappers training scripts save a state_dict under (timm, Lightning-style and plain loops).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
MAX_LISTED = 10  # further mismatches are counted, not listed

Weights = dict[str, dict[str, Any]]  # IR layer name -> {torch tensor name: numpy array}
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]
Check = Callable[[Path], None]


def _backend(name: str) -> Any:
    """A backend through the registry; port also uses its file helpers beyond the ``Backend`` protocol."""
    return registry.get(name)


def path_problem(checkpoint: Path, output: Path, target: str) -> tuple[str, str] | None:
    """What is wrong with the file names of a port to ``target``, and which argument it is; None if nothing."""
    sources = TORCH_SUFFIXES if target == "keras" else (KERAS_SUFFIX,)
    outputs = (KERAS_SUFFIX,) if target == "keras" else TORCH_SUFFIXES
    out_hint = "'-o' / '--output'"
    if not checkpoint.name.endswith(sources):
        return f"--to {target} reads a {' / '.join(sources)} file, not '{checkpoint.name}'", "'CHECKPOINT'"
    if not output.name.endswith(outputs):
        return f"--to {target}: the output must end with {' / '.join(outputs)}, not '{output.name}'", out_hint
    if output.resolve() == checkpoint.resolve():
        return "the output would overwrite the checkpoint", out_hint
    if not output.parent.is_dir():
        return f"the output's folder '{output.parent}' does not exist", out_hint
    return None


def _problem(path: Path | str, field: str, message: str) -> Problem:
    return Problem(str(path), None, None, field, message)


def _refuse(problems: list[Problem], path: Path) -> None:
    if len(problems) > MAX_LISTED:
        more = len(problems) - MAX_LISTED
        problems = [*problems[:MAX_LISTED], _problem(path, "", f"... and {more} more mismatches")]
    raise CheckpointError(problems)


def expected_tensors(network: Network) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """Every state_dict key of the spec's torch model -> (IR layer, tensor name, shape), in network order.

    Derived from the IR alone, so a ``.safetensors`` file is checked without importing torch.
    """
    out: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for layer in network.layers():
        for key, shape in tensor_shapes(layer).items():
            out[f"{layer.name}.{key}"] = (layer.name, key, shape)
    return out


def tensor_shapes(layer: Layer) -> dict[str, tuple[int, ...]]:
    """The state_dict tensors of one IR layer (PyTorch's names and layout); none for an unweighted layer."""
    match layer:
        case Conv():
            shapes: dict[str, tuple[int, ...]] = {
                "weight": (layer.out_ch, layer.in_ch // layer.groups, layer.kernel, layer.kernel)
            }
            return shapes | ({"bias": (layer.out_ch,)} if layer.bias else {})
        case Linear():
            shapes = {"weight": (layer.out_features, layer.in_features)}
            return shapes | ({"bias": (layer.out_features,)} if layer.bias else {})
        case Norm():
            return {k: (layer.channels,) for k in ("weight", "bias", "running_mean", "running_var")}
    if layer.weighted:
        raise ValueError(f"{layer.name}: no checkpoint mapping for IR {layer.kind} layers")
    return {}


def optional_keys(network: Network) -> set[str]:
    """Keys a checkpoint may carry that hold no weight (batch-norm step counters)."""
    return {f"{x.name}.num_batches_tracked" for x in network.layers() if isinstance(x, Norm)}


def read_torch_checkpoint(path: Path) -> dict[str, Any]:
    """A flat ``{key: numpy array}`` from a state_dict file (wrappers and a ``module.`` prefix removed)."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file

            state: Any = load_file(str(path))
        except Exception as exc:  # safetensors reports bad headers and dtypes with its own errors
            raise CheckpointError(_problem(path, "", f"cannot read as safetensors: {exc}")) from None
    else:
        state = _backend("torch").load_state_dict_file(path)  # a pickle: only torch reads it safely
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        kind = type(state).__name__
        raise CheckpointError(
            _problem(path, "", f"holds a {kind}, not a state_dict (save model.state_dict(), not the model)")
        )
    if all(isinstance(k, str) and k.startswith("module.") for k in state):  # saved from DataParallel/DDP
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def check_state(state: dict[str, Any], network: Network, path: Path) -> Weights:
    """Group a flat state_dict by IR layer, refusing any missing, unexpected or misshapen tensor."""
    expected = expected_tensors(network)
    optional = optional_keys(network)
    problems: list[Problem] = []
    weights: Weights = {}
    for key, (layer, name, shape) in expected.items():
        if key not in state:
            problems.append(_problem(path, key, f"missing from the checkpoint (the spec needs shape {shape})"))
            continue
        have = tuple(int(d) for d in getattr(state[key], "shape", ()))
        if have != shape:
            problems.append(_problem(path, key, f"shape {have} in the checkpoint, the spec needs {shape}"))
            continue
        weights.setdefault(layer, {})[name] = state[key]
    for key in state:
        if key not in expected and key not in optional:
            close = difflib.get_close_matches(key, list(expected), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(_problem(path, key, f"not in the spec '{network.name}'{hint}"))
    if problems:
        _refuse(problems, path)
    return weights


def flatten(weights: Weights, network: Network) -> dict[str, Any]:
    """A torch state_dict (numpy values) in network order, with the norm layers' step counters."""
    import numpy as np

    out: dict[str, Any] = {}
    for key, (layer, name, _) in expected_tensors(network).items():
        out[key] = np.ascontiguousarray(weights[layer][name])
    for key in optional_keys(network):
        out[key] = np.zeros((), dtype=np.int64)
    return out


class VerificationError(RuntimeError):
    """The ported file does not compute what the checkpoint does (a bug: exit 1, nothing written)."""

    def __init__(self, comparison: Any) -> None:
        self.comparison = comparison
        super().__init__(comparison.verdict())


def verify(network: Network, weights: Weights, keras_model: Any, seed: int = 0) -> Any:
    """torch with ``weights`` against ``keras_model`` on one random batch, at every stage boundary."""
    import numpy as np

    from .compare import compare_models

    torch_backend = _backend("torch")
    torch_model = torch_backend.build(network)
    torch_backend.set_weights(torch_model, network, weights)
    x = np.random.default_rng(seed).standard_normal((2, *network.input_shape)).astype("float32")
    result = compare_models(network, torch_model, keras_model, x, "float32")
    if not result.ok:
        raise VerificationError(result)
    return result


def torch_to_keras(
    checkpoint: Path, network: Network, output: Path, progress: Progress | None = None, check: bool = False
) -> tuple[Weights, Any]:
    """Read and check a torch checkpoint, write the Keras weights file (``check``: verified before the rename).

    Returns the weights and the verification's comparison (None without ``check``)."""
    keras_backend = _backend("keras")

    weights = check_state(read_torch_checkpoint(checkpoint), network, checkpoint)
    model = keras_backend.build(network)
    items = list(weights.items())
    for name, tensors in progress(items, "setting Keras weights", len(items)) if progress else items:
        keras_backend.set_weights(model, network, {name: tensors})
    found: list[Any] = []

    def reload(tmp: Path) -> None:  # the file as written, into a fresh model
        fresh = keras_backend.build(network)
        fresh.load_weights(str(tmp))
        found.append(verify(network, weights, fresh))

    replace_atomic(lambda tmp: model.save_weights(str(tmp)), output, KERAS_SUFFIX, reload if check else None)
    return weights, found[0] if found else None


def keras_to_torch(
    checkpoint: Path, network: Network, output: Path, progress: Progress | None = None, check: bool = False
) -> tuple[Weights, Any]:
    """Read and check a Keras weights file, write the torch state_dict (``check``: verified before the rename).

    Returns the weights and the verification's comparison (None without ``check``)."""
    keras_backend = _backend("keras")

    model = keras_backend.build(network)
    check_keras_file(checkpoint, model, network)
    model.load_weights(str(checkpoint))
    weights: Weights = {}
    layers = [x for x in network.layers() if x.weighted]
    for layer in progress(layers, "reading Keras weights", len(layers)) if progress else layers:
        weights.update(keras_backend.get_weights(model, network, names=[layer.name]))
    state = flatten(weights, network)
    found: list[Any] = []

    def reload(tmp: Path) -> None:  # the file as written, read back as any user would
        found.append(verify(network, check_state(read_torch_checkpoint(tmp), network, tmp), model))

    if output.suffix == ".safetensors":
        from safetensors.numpy import save_file

        def write(tmp: Path) -> None:
            save_file(state, str(tmp), metadata={"format": "pt"})
    else:

        def write(tmp: Path) -> None:
            _backend("torch").save_state_dict_file(state, tmp)

    replace_atomic(write, output, output.suffix, reload if check else None)
    return weights, found[0] if found else None


def check_keras_file(path: Path, model: Any, network: Network) -> None:
    """Refuse a ``.weights.h5`` whose arrays do not fit the spec's Keras model position by position."""
    import h5py

    keras_backend = _backend("keras")

    try:
        with h5py.File(path, "r") as f:
            found: dict[str, tuple[int, ...]] = {}
            f.visititems(
                lambda name, obj: found.__setitem__(name, obj.shape) if isinstance(obj, h5py.Dataset) else None
            )
    except OSError as exc:
        raise CheckpointError(_problem(path, "", f"cannot read as a Keras weights file (HDF5): {exc}")) from None
    problems: list[Problem] = []
    layout = keras_backend.weights_file_layout(model, network)
    for key, shape, layer in layout:
        if key not in found:
            problems.append(_problem(path, layer, f"'{key}' missing from the file (the spec needs shape {shape})"))
        elif tuple(found[key]) != shape:
            problems.append(
                _problem(path, layer, f"'{key}' has shape {tuple(found[key])} in the file, the spec needs {shape}")
            )
    known = {key for key, _, _ in layout}
    problems += [
        _problem(path, "", f"'{key}' is not in the spec '{network.name}'") for key in found if key not in known
    ]
    if problems:
        _refuse(problems, path)
