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
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, assert_never

from .. import registry
from ..atomic import replace_atomic
from ..errors import CheckpointError, Problem
from ..ir import Act, AnyLayer, AvgPool, Conv, Dropout, DropPath, GlobalPool, Linear, MaxPool, Network, Norm
from . import checkpoint_files

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


def _refuse(problems: list[Problem], path: Path, hints: list[Problem] | None = None) -> None:
    if len(problems) > MAX_LISTED:
        more = len(problems) - MAX_LISTED
        problems = [*problems[:MAX_LISTED], _problem(path, "", f"... and {more} more mismatches")]
    raise CheckpointError([*problems, *(hints or [])])


def expected_tensors(network: Network) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """Every state_dict key of the spec's torch model -> (IR layer, tensor name, shape), in network order.

    Derived from the IR alone, so a ``.safetensors`` file is checked without importing torch.
    """
    out: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for layer in network.layers():
        for key, shape in tensor_shapes(layer).items():
            out[f"{layer.name}.{key}"] = (layer.name, key, shape)
    return out


def tensor_shapes(layer: AnyLayer) -> dict[str, tuple[int, ...]]:
    """The state_dict tensors of one IR layer (PyTorch's names and layout); none for an unweighted layer."""
    match layer:
        case Conv():
            kernel = (layer.kernel,) * layer.dims
            shapes: dict[str, tuple[int, ...]] = {"weight": (layer.out_ch, layer.in_ch // layer.groups, *kernel)}
            return shapes | ({"bias": (layer.out_ch,)} if layer.bias else {})
        case Linear():
            shapes = {"weight": (layer.out_features, layer.in_features)}
            return shapes | ({"bias": (layer.out_features,)} if layer.bias else {})
        case Norm():
            return {k: (layer.channels,) for k in ("weight", "bias", "running_mean", "running_var")}
        case Act() | MaxPool() | AvgPool() | GlobalPool() | Dropout() | DropPath():
            return {}
        case _:
            assert_never(layer)


def optional_keys(network: Network) -> set[str]:
    """Keys a checkpoint may carry that hold no weight (batch-norm step counters)."""
    return {f"{x.name}.num_batches_tracked" for x in network.layers() if isinstance(x, Norm)}


def read_torch_checkpoint(path: Path) -> dict[str, Any]:
    """A flat ``{key: numpy array}`` from a state_dict file (wrappers and a ``module.`` prefix removed).

    Only what a float32 model holds faithfully is read (``archgen.runtime.checkpoint_files`` says what, and
    why): float16, bfloat16, float32 and float64 weights, the same arrays from ``.pth`` and
    ``.safetensors``; anything else is a CheckpointError naming the tensor and its kind, as is a file
    that is not a regular file or that would claim more memory than it holds."""
    if path.suffix == ".safetensors":
        state: Any = checkpoint_files.read_safetensors(path)  # parsed here: torch is not imported
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
    return checkpoint_files.as_state(state, path)


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
    unexpected = [key for key in state if key not in expected and key not in optional]
    for i, key in enumerate(unexpected):
        # a hint for the keys that are listed (difflib's cost grows with the key's length)
        hinted = i < MAX_LISTED and isinstance(key, str) and len(key) <= checkpoint_files.MAX_KEY_SHOWN
        close = difflib.get_close_matches(key, list(expected), n=1) if hinted else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(_problem(path, checkpoint_files.shown(key), f"not in the spec '{network.name}'{hint}"))
    if problems:
        _refuse(problems, path, _classifier_hint(state, network, path))
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
    return [_problem(path, classifier.name, message)]


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

    # HDF5 needs a real file; about 4 bytes a float32 value, plus its index (a few KB a layer).
    size = 4 * (network.params + network.stats) + 4096 * len(items)
    replace_atomic(
        lambda tmp: model.save_weights(str(tmp)), output, KERAS_SUFFIX, reload if check else None, real_size=size
    )
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
    """Refuse a ``.weights.h5`` that Keras would not read as plain arrays of the spec's Keras model, which
    fits it position by position; checked before Keras opens it, so that Keras and HDF5 meet no surprise.

    The file must be a regular file (a FIFO is never opened), reach every object through hard links only
    (a soft or external link names another object or file), and hold, beneath each layer's ``vars``,
    exactly the datasets the spec's model has. Each must be a float array (float16, float32, float64, or
    Keras' bfloat16: 2-byte opaque values marked ``dtype="bfloat16"``) of the shape the model needs, its
    data in the file itself (no external storage, no virtual dataset) and stored plainly (no compression
    or other filter: Keras writes none, and decompression is where a small file claims large memory or
    needs a filter this machine lacks). The data is then read (at most the model's size) to prove it can be.
    """
    import h5py

    keras_backend = _backend("keras")
    checkpoint_files.regular_file(path)
    layout = keras_backend.weights_file_layout(model, network)
    expected = {key: (shape, layer) for key, shape, layer in layout}
    problems: list[Problem] = []
    try:
        with h5py.File(path, "r") as f:
            found = _h5_objects(f)
            for key, (shape, layer) in expected.items():
                if key not in found:
                    problems.append(
                        _problem(path, layer, f"'{key}' missing from the file (the spec needs shape {shape})")
                    )
                    continue
                why = found[key]
                if not isinstance(why, str):
                    try:
                        why = _h5_dataset_problem(why, shape)
                    except _H5_ERRORS as exc:  # a damaged object
                        why = f"cannot be read: {str(exc)[:200] or type(exc).__name__}"
                if why:
                    problems.append(_problem(path, layer, f"'{key}' {why}"))
    except OSError as exc:
        raise CheckpointError(_problem(path, "", f"cannot read as a Keras weights file (HDF5): {exc}")) from None
    for key, why in found.items():
        if key not in expected:
            what = why if isinstance(why, str) else f"is not in the spec '{network.name}'"
            problems.append(_problem(path, "", f"'{checkpoint_files.shown(key)}' {what}"))
    if problems:
        _refuse(problems, path)


# What h5py raises for an object it cannot open or read (beyond OSError, its usual report).
_H5_ERRORS = (OSError, KeyError, TypeError, ValueError, RuntimeError)


def _h5_objects(f: Any) -> dict[str, Any]:
    """Every dataset of an HDF5 file by its path (no leading ``/``), reached through hard links, and for
    every other object (a soft or external link, an object reached a second time, a named datatype, a
    group inside a layer's ``vars``) what is wrong with it, as a string."""
    found: dict[str, Any] = {}
    seen: set[Any] = {f["/"].id}
    groups: list[tuple[str, Any]] = [("", f)]
    while groups:
        prefix, group = groups.pop()
        for name in group:
            full = f"{prefix}{name}"
            try:
                why = _h5_visit(group, name, full, prefix, seen, groups, found)
            except _H5_ERRORS as exc:  # a damaged object
                why = f"cannot be read: {str(exc)[:200] or type(exc).__name__}"
            if why:
                found[full] = why
    return found


def _h5_visit(
    group: Any, name: str, full: str, prefix: str, seen: set[Any], groups: list[tuple[str, Any]], found: dict[str, Any]
) -> str | None:
    """One link of ``group``: a dataset into ``found``, a group into ``groups``; what is wrong with it, if anything."""
    import h5py

    link = group.get(name, getlink=True)
    if isinstance(link, h5py.SoftLink):
        return f"is a soft link (to '{checkpoint_files.shown(link.path)}'); Keras writes none"
    if isinstance(link, h5py.ExternalLink):
        target = checkpoint_files.shown(f"{link.filename}:{link.path}")
        return f"is an external link (to '{target}'); Keras writes none"
    if not isinstance(link, h5py.HardLink):
        return f"is a link of another kind ({type(link).__name__}); Keras writes none"
    obj = group[name]
    if obj.id in seen:
        return "is a second link to an object already seen (Keras writes each once)"
    seen.add(obj.id)
    in_vars = prefix == "vars/" or prefix.endswith("/vars/")
    if isinstance(obj, h5py.Group) and in_vars:
        return "is a group where Keras reads a layer's variables"
    if isinstance(obj, h5py.Group):
        groups.append((f"{full}/", obj))
    elif isinstance(obj, h5py.Dataset):
        found[full] = obj
    else:
        return f"is a {type(obj).__name__.lower()}, not a group or an array"
    return None


def _h5_dataset_problem(dataset: Any, shape: tuple[int, ...]) -> str | None:
    """What keeps an HDF5 dataset from being a faithful Keras weight of ``shape``; None if nothing does."""
    if dataset.shape is None or tuple(dataset.shape) != shape:
        have = "no shape (an empty dataset)" if dataset.shape is None else f"shape {tuple(dataset.shape)}"
        return f"has {have} in the file, the spec needs {shape}"
    if dataset.is_virtual:
        return "is a virtual dataset (its data lives in other files); Keras writes its arrays in the file"
    if dataset.external:
        files = ", ".join(checkpoint_files.shown(str(name)) for name, *_ in dataset.external)
        return f"is stored in external files ({files}); Keras writes its arrays in the file"
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters():
        names = ", ".join(plist.get_filter(i)[3].decode("ascii", "replace") for i in range(plist.get_nfilters()))
        return f"is stored compressed or filtered ({names}); Keras writes its arrays plainly"
    dtype = dataset.dtype
    marked = dataset.attrs.get("dtype") if "dtype" in dataset.attrs else None  # Keras' mark of bfloat16
    bfloat16 = dtype.kind == "V" and dtype.itemsize == 2 and dtype.fields is None and _is(marked, "bfloat16")
    if not bfloat16 and not (dtype.kind == "f" and dtype.itemsize in (2, 4, 8) and marked is None):
        mark = f" marked dtype={checkpoint_files.shown(str(marked))}" if marked is not None else ""
        return f"holds {dtype}{mark} values, not a float array (float16, bfloat16, float32 or float64)"
    if math.prod(shape) and dataset.id.get_storage_size() == 0:
        return "holds no data (its storage was never written)"
    dataset[()]  # raises where the data cannot be read (the caller names it)
    return None


def _is(value: Any, text: str) -> bool:
    return isinstance(value, str) and value == text
