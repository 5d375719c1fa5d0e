"""Keras' weights files (``.weights.h5``, HDF5), read and written for the spec's Keras model.

Keras 3 names a functional model's layers in such a file by class (``conv2d_12``), not by layer name, so
a file fits a model position by position: a file is checked against the positions of the spec's model
(``file_layout``) before Keras or HDF5 reads any of its data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archgen.atomic import replace_atomic
from archgen.errors import CheckpointError, Problem
from archgen.ir import Network
from archgen.registry import Progress, Weights
from archgen.runtime import checkpoint_files
from archgen.runtime.weights import problem, refuse

from .emit import keras_name

SUFFIX = ".weights.h5"


class KerasWeightsFile:
    suffixes = (SUFFIX,)
    kind = "a Keras weights file"

    def load(self, path: Path, network: Network) -> Any:
        from .backend import BACKEND

        model = BACKEND.build(network)
        check_file(path, model, network)
        model.load_weights(str(path))
        return model

    def read(self, path: Path, network: Network, progress: Progress | None = None) -> Weights:
        from .backend import BACKEND

        model = self.load(path, network)
        weights: Weights = {}
        layers = [x for x in network.layers() if x.weighted]
        for layer in progress(layers, "reading Keras weights", len(layers)) if progress else layers:
            weights.update(BACKEND.get_weights(model, network, names=[layer.name]))
        return weights

    def write(
        self,
        weights: Weights,
        network: Network,
        output: Path,
        check: Callable[[Path], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        from .backend import BACKEND

        model = BACKEND.build(network)
        items = list(weights.items())
        for name, tensors in progress(items, "setting Keras weights", len(items)) if progress else items:
            BACKEND.set_weights(model, network, {name: tensors})
        # HDF5 needs a real file; about 4 bytes a float32 value, plus its index (a few KB a layer).
        size = 4 * (network.params + network.stats) + 4096 * len(items)
        replace_atomic(lambda tmp: model.save_weights(str(tmp)), output, SUFFIX, check, real_size=size)


WEIGHTS = KerasWeightsFile()


def file_layout(model: Any, network: Network) -> list[tuple[str, tuple[int, ...], str]]:
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


def check_file(path: Path, model: Any, network: Network) -> None:
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

    checkpoint_files.regular_file(path)
    layout = file_layout(model, network)
    expected = {key: (shape, layer) for key, shape, layer in layout}
    problems: list[Problem] = []
    try:
        with h5py.File(path, "r") as f:
            found = _h5_objects(f)
            for key, (shape, layer) in expected.items():
                if key not in found:
                    problems.append(
                        problem(path, layer, f"'{key}' missing from the file (the spec needs shape {shape})")
                    )
                    continue
                why = found[key]
                if not isinstance(why, str):
                    try:
                        why = _h5_datasetproblem(why, shape)
                    except _H5_ERRORS as exc:  # a damaged object
                        why = f"cannot be read: {str(exc)[:200] or type(exc).__name__}"
                if why:
                    problems.append(problem(path, layer, f"'{key}' {why}"))
    except OSError as exc:
        raise CheckpointError(problem(path, "", f"cannot read as a Keras weights file (HDF5): {exc}")) from None
    for key, why in found.items():
        if key not in expected:
            what = why if isinstance(why, str) else f"is not in the spec '{network.name}'"
            problems.append(problem(path, "", f"'{checkpoint_files.shown(key)}' {what}"))
    if problems:
        refuse(problems, path)


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


def _h5_datasetproblem(dataset: Any, shape: tuple[int, ...]) -> str | None:
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


def _snake(name: str) -> str:
    """Keras' own class-name to file-key rule (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
