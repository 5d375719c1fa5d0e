"""Exporting a spec's model as a deployable file (``archgen export``), checked against the live model
before it appears: from PyTorch, ONNX, TorchScript or a torch.export program; from Keras (its own
``model.export``), a TensorFlow SavedModel or a LiteRT flatbuffer.

The live model is built (eval mode) with a checkpoint's weights, or with random ones (every weight,
norm statistics calibrated) so that the check means something. The file is written beside its final
name, loaded back the way a user loads it (onnxruntime, ``torch.jit.load``, ``torch.export.load``,
``tf.saved_model.load``, the LiteRT interpreter)
and run on a random batch of 2 at the network's input size; every output (one tensor, or the list a
features model returns) must be within ``TOLERANCE`` of the live model's, measured as the largest
absolute difference over the largest magnitude of the live output. Otherwise ``ExportMismatch`` is
raised and nothing is written; else the file is renamed into place (keeping an old file's mode).

Frameworks are imported only inside the functions (each backend's side is ``archgen.backends.<backend>.export``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import registry
from ..atomic import replace_atomic, replace_tree_atomic
from ..errors import MissingFramework, OptionError, memory_guard
from ..ir import Network, Shape
from .weights import STATE_DICTS, tensor_shapes

# Format -> the suffixes its file may end with (the first is the usual one). TorchScript files are
# commonly .pt (PyTorch's own examples) and sometimes .ts; a torch.export program is .pt2, as
# torch.export.save's documentation names it.
# A SavedModel is a folder (any name); a LiteRT model is a .tflite flatbuffer.
FORMATS: dict[str, tuple[str, ...]] = {
    "onnx": (".onnx",),
    "torchscript": (".pt", ".ts"),
    "exported-program": (".pt2",),
    "saved_model": (),
    "litert": (".tflite",),
}
FOLDERS = {"saved_model"}
# What a format needs beyond its backend's framework: the ONNX exporter writes with onnx and onnxscript,
# the check reads the file with onnxruntime; a LiteRT file is read with the LiteRT interpreter.
NEEDS: dict[str, tuple[str, ...]] = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "litert": ("ai_edge_litert",)}
IMPORT_NAMES = {"ai_edge_litert": "ai-edge-litert"}
TOLERANCE = 1e-4  # the largest relative difference accepted (float32 rounding is ~1e-6 to 1e-5 here)
BATCH = 2  # the batch the reloaded file is checked on; the export traces BATCH + 1, so the batch is dynamic
SEED = 0  # of the random weights and of the input
GAMMA = (0.05, 0.15)  # random norm scales, as archgen compare draws them: deep random nets stay well-conditioned
ONNX_LIMIT = 2**31 - 2**24  # weight bytes one ONNX file holds: a protobuf is at most 2 GiB, less room for the graph


@dataclass(frozen=True)
class OutputDiff:
    """One output of the exported file against the live model's."""

    index: int
    shape: Shape  # the live model's, batch included
    max_abs: float  # largest magnitude of the live output
    max_diff: float  # largest absolute difference (inf where it is not finite)

    @property
    def relative(self) -> float:
        if self.max_diff == 0:
            return 0.0
        return self.max_diff / self.max_abs if self.max_abs > 0 else math.inf


@dataclass(frozen=True)
class Verification:
    """The exported file's outputs against the live model's on one batch."""

    outputs: tuple[OutputDiff, ...]
    tolerance: float
    problem: str | None = None  # a structural difference: the number of outputs, or a shape

    @property
    def worst(self) -> float:
        if self.problem is not None:
            return math.inf
        return max((o.relative for o in self.outputs), default=0.0)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.worst <= self.tolerance

    def describe(self) -> str:
        """The measured figure, in words."""
        if self.problem is not None:
            return self.problem
        worst = max(self.outputs, key=lambda o: o.relative)
        where = "" if len(self.outputs) == 1 else f" (output {worst.index} of {len(self.outputs)})"
        return f"{worst.relative:.2e}{where} (max |diff| / max |live output|; tolerance {self.tolerance:.0e})"


def _arrays(value: Any) -> list[Any]:
    """A tensor or array, or a list/tuple of them, as a list of numpy arrays."""
    import numpy as np

    items = list(value) if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if hasattr(item, "detach"):  # a torch tensor
            item = item.detach().cpu().numpy()
        out.append(np.asarray(item))
    return out


def compare_outputs(got: Any, want: Any, tolerance: float | None = None) -> Verification:
    """Compare the exported file's outputs ``got`` with the live model's ``want``: each a tensor (or
    array), or a list/tuple of them compared position by position. ``tolerance``: default ``TOLERANCE``."""
    import numpy as np

    limit = TOLERANCE if tolerance is None else tolerance
    g, w = _arrays(got), _arrays(want)
    if len(g) != len(w):
        return Verification((), limit, f"the exported file gives {len(g)} outputs, the live model {len(w)}")
    diffs: list[OutputDiff] = []
    for i, (a, b) in enumerate(zip(g, w, strict=True)):
        shape = tuple(int(d) for d in b.shape)
        if tuple(a.shape) != shape:
            where = "its output" if len(w) == 1 else f"its output {i}"
            found = tuple(int(d) for d in a.shape)
            return Verification((), limit, f"{where} has shape {found}, the live model's {shape}")
        b64, a64 = b.astype(np.float64), a.astype(np.float64)
        max_abs = float(np.abs(b64).max()) if b.size else 0.0
        max_diff = float(np.abs(a64 - b64).max()) if b.size else 0.0
        if not math.isfinite(max_diff):
            max_diff = math.inf
        diffs.append(OutputDiff(i, shape, max_abs, max_diff))
    return Verification(tuple(diffs), limit)


class ExportMismatch(RuntimeError):
    """The exported file, loaded back, does not compute what the live model does (exit 1, nothing written)."""

    def __init__(self, verification: Verification, loader: str) -> None:
        self.verification = verification
        self.loader = loader
        what = verification.describe() if verification.problem else f"by {verification.describe()}"
        super().__init__(f"loaded with {loader}, it differs from the live model {what}")


@dataclass(frozen=True)
class ExportResult:
    network: str
    fmt: str
    path: Path
    size: int  # bytes
    random_weights: bool
    loader: str
    input_shape: Shape  # the checked batch, batch included
    verification: Verification


def path_problem(output: Path, fmt: str, weights: Path | None) -> tuple[str, str] | None:
    """What is wrong with the file names of an export, and which argument it is; None if nothing."""
    out_hint = "'-o' / '--output'"
    suffixes = FORMATS[fmt]
    state_dicts = registry.weights_file(STATE_DICTS)
    if weights is not None and not weights.name.endswith(state_dicts.suffixes):
        listed = " / ".join(state_dicts.suffixes)
        return f"reads {state_dicts.kind} ({listed}), not '{weights.name}'", "'--weights'"
    if fmt in FOLDERS:
        if output.exists() and not output.is_dir():
            return f"--format {fmt} writes a folder, and '{output}' is a file", out_hint
        if output.is_dir() and any(output.iterdir()) and not (output / "saved_model.pb").exists():
            return f"'{output}' is a folder that holds no SavedModel; it would be replaced whole", out_hint
    elif output.is_dir():
        return f"--format {fmt} writes a file, and '{output}' is a folder", out_hint
    elif output.suffix not in suffixes:
        return f"--format {fmt}: the output must end with {' / '.join(suffixes)}, not '{output.name}'", out_hint
    if weights is not None and output.resolve() == weights.resolve():
        return "the output would overwrite the checkpoint given to --weights", out_hint
    if not output.parent.is_dir():
        return f"the output's folder '{output.parent}' does not exist", out_hint
    return None


def size_problem(network: Network, fmt: str) -> str | None:
    """Why the network cannot be written in ``fmt`` at all (an ONNX file holds at most 2 GiB)."""
    weight_bytes = 4 * (network.params + network.stats)
    if fmt in ("onnx", "litert") and weight_bytes > ONNX_LIMIT:
        other = "exported-program or torchscript" if fmt == "onnx" else "saved_model"
        return (
            f"--format {fmt}: {network.name}'s {network.params:,} params are {weight_bytes / 2**30:.1f} GiB of "
            f"float32, over the 2 GiB one {'ONNX' if fmt == 'onnx' else 'LiteRT'} file holds; use --format {other}"
        )
    return None


def backend_of(fmt: str) -> str:
    """The backend that writes ``fmt`` (the one whose package lists it in ``EXPORTS``)."""
    found = registry.exporters().get(fmt)
    if found is None:
        raise OptionError(f"--format {fmt}: no backend writes it; formats: {', '.join(registry.exporters())}")
    return found


def _backend_export(fmt: str) -> Any:
    """The format's backend side (``archgen.backends.<backend>.export``), imported when first needed."""
    return registry.side(backend_of(fmt), "export")


def require(fmt: str) -> None:
    """Raise MissingFramework (naming what to install) unless what ``fmt`` needs, torch included, is installed."""
    missing = []
    for name in NEEDS.get(fmt, ()):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(IMPORT_NAMES.get(name, name))
    if missing:
        names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        verb = "is" if len(missing) == 1 else "are"
        raise MissingFramework(
            f"--format {fmt} needs {names}, which {verb} not installed: pip install 'archgen[export]'"
        )
    registry.get(backend_of(fmt))
    _backend_export(fmt).require(fmt)


def random_weights(network: Network, seed: int = SEED, gamma: tuple[float, float] = GAMMA) -> Any:
    """Random tensors for every weighted layer, in PyTorch's layout (numpy): convs and linear layers
    scaled by their fan-in, norm scales in ``gamma``, shifts and means small, variances near 1. For a
    backend that draws none of its own (Keras); deep nets stay well-conditioned."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for layer in network.layers():
        tensors = {}
        for name, shape in tensor_shapes(layer).items():
            if name == "weight" and len(shape) > 1:
                value = rng.normal(0.0, 1.0 / math.sqrt(math.prod(shape[1:])), shape)
            elif name == "weight":
                value = rng.uniform(*gamma, shape)
            elif name == "running_var":
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
            tensors[name] = value.astype("float32")
        if tensors:
            out[layer.name] = tensors
    return out


def export(
    network: Network,
    fmt: str,
    output: Path,
    weights: dict[str, dict[str, Any]] | None = None,
    *,
    fuse: bool = False,
) -> ExportResult:
    """Write the network's model (PyTorch's or Keras', by ``fmt``) to ``output`` once its reloaded file
    agrees with it.

    ``weights``: per-layer tensors in PyTorch's layout (``weights.read_state_dict`` of a checkpoint); without
    them every weight is random. ``fuse``: the PyTorch model's inference form (``archgen.compiler.fuse``), its
    file held to the unfused model's outputs. Raises ExportMismatch (nothing written) if the file disagrees.
    """
    import numpy as np

    if fmt not in FORMATS:
        raise OptionError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    problem = size_problem(network, fmt)
    if problem:
        raise OptionError(problem)
    require(fmt)
    side = _backend_export(fmt)

    backend = registry.get(backend_of(fmt))
    if fuse and not backend.fuses:
        raise OptionError(f"--fuse: --format {fmt} exports the {backend.name} model, which has no inference form")
    model = backend.build(network)
    if weights is None and backend.randomizes:
        backend.randomize(model, network, seed=SEED, gamma=GAMMA)
    else:
        backend.set_weights(model, network, weights if weights is not None else random_weights(network))
    reference = model  # the file is held to the unfused model's outputs, fused or not
    if fuse:
        model = backend.build(network, weights=backend.get_weights(model, network), fuse=True)
    rng = np.random.default_rng(SEED + 1)
    x = rng.standard_normal((BATCH, *network.input_shape)).astype("float32")
    example = rng.standard_normal((BATCH + 1, *network.input_shape)).astype("float32")
    size = f"{network.input_shape[1]}x{network.input_shape[2]}"
    with memory_guard(f"running {network.name} on a batch of {BATCH} at {size}"):
        want = side.run_live(reference, x)
    found: list[tuple[str, Verification]] = []

    def check(tmp: Path) -> None:  # the file as written, loaded as a user would
        loader, run = side.load(fmt, tmp)
        result = compare_outputs(run(x), want)
        if not result.ok:
            raise ExportMismatch(result, loader)
        found.append((loader, result))

    def write(tmp: Path) -> None:
        side.save(model, fmt, tmp, example, len(want))

    with memory_guard(f"exporting {network.name} ({network.params:,} params) as {fmt}"):
        if fmt in FOLDERS:
            replace_tree_atomic(write, output, check)
        else:
            replace_atomic(write, output, output.suffix, check)
    loader, verification = found[0]
    files = [p for p in output.rglob("*") if p.is_file()] if output.is_dir() else [output]
    nbytes = sum(p.stat().st_size for p in files)
    return ExportResult(
        network.name,
        fmt,
        output,
        nbytes,
        weights is None,
        loader,
        (BATCH, *network.input_shape),
        verification,
    )
