"""``archgen export``'s PyTorch side: a live model written as ONNX, TorchScript or a torch.export
program, and such a file loaded back the way a user loads it.

ONNX goes through the torch.export-based exporter (``dynamo=True``), not the TorchScript-based one
(``dynamo=False``). Measured here (torch 2.14, onnxruntime 1.32, 2 CPU cores), both give the same
numbers (relative differences to the live model of 1e-6 to 9e-5 for either, on resnet18, resnet50d,
seresnet50, resnetrs50, resnet50v2 and keras_resnet50 at 32-40 px), handle a list of outputs and a
dynamic batch, and the TorchScript-based one is about ten times faster (resnet18 at 32 px: 1.1 s
against 10-13 s; resnet50d at 40 px: 1.6 s against 15.6 s) and needs no onnxscript. The new one is chosen
all the same: the old one is deprecated since torch 2.9 (every call warns "The feature will be
removed") while archgen's torch requirement has no upper bound, so a later install would lose the
command; the new one captures the graph with torch.export, the same capture as
``--format exported-program``, so both formats take and refuse the same models; and its
optimiser (on by default) folds the norms into the convs, leaving a plain Conv/Relu/Add graph (the
unoptimised graph has 55 BatchNormalization and 110 Expand nodes for resnet50d, the TorchScript-based
one's 60 Identity nodes). ``external_data=False`` keeps the model in one file: by default the
weights go to ``<file>.data`` beside it, named after the temporary file, which the rename into place
would orphan. One protobuf holds 2 GiB, which the core checks before anything is built.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archgen.errors import MissingFramework

ONNX_TORCH = (2, 6)  # torch.onnx.export(dynamo=True, external_data=..., optimize=...)
INPUT_NAME = "input"

Run = Callable[[Any], list[Any]]  # a numpy batch -> the outputs as numpy arrays


def require(fmt: str) -> None:
    """Raise MissingFramework if this torch cannot write ``fmt`` (its packages are checked by the core)."""
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit())
    if fmt == "onnx" and version < ONNX_TORCH:
        raise MissingFramework(
            f"--format onnx needs torch {ONNX_TORCH[0]}.{ONNX_TORCH[1]} or newer (its torch.export-based "
            f"exporter); this is torch {torch.__version__}: pip install 'archgen[export]'"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The frameworks' notices about their own APIs (torch.jit is deprecated, ...) are not the user's to act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def as_list(value: Any) -> list[Any]:
    """A model's output (a tensor, or a list/tuple of them) as a list of numpy arrays."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    return [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in items]


def run_live(model: nn.Module, x: Any) -> list[Any]:
    """The live model's eval-mode outputs for a numpy batch."""
    model.eval()
    with torch.no_grad():
        return as_list(model(torch.from_numpy(x)))


def save(model: nn.Module, fmt: str, path: Path, example: Any, outputs: int) -> None:
    """Write ``model`` (eval mode) to ``path`` in ``fmt``; ``example`` (numpy) is traced with a dynamic batch."""
    model.eval()
    x = torch.from_numpy(example)
    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        if fmt == "onnx":
            names = ["output"] if outputs == 1 else [f"output_{i}" for i in range(outputs)]
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                external_data=False,
                verbose=False,
                input_names=[INPUT_NAME],
                output_names=names,
                dynamic_shapes=({0: batch},),
            )
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.script(model), str(path))
        elif fmt == "exported-program":
            torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), str(path))
        else:
            raise ValueError(f"unknown export format {fmt!r}")


def load(fmt: str, path: Path) -> tuple[str, Run]:
    """The file at ``path`` loaded as a user would, and how: (the loader's name, run it on a numpy batch)."""
    with _quiet():
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return "onnxruntime", lambda x: list(session.run(None, {name: x}))
        if fmt == "torchscript":
            scripted = torch.jit.load(str(path), map_location="cpu")
            return "torch.jit.load", lambda x: _run_module(scripted, x)
        if fmt == "exported-program":
            program = torch.export.load(str(path)).module()
            return "torch.export.load", lambda x: _run_module(program, x)
    raise ValueError(f"unknown export format {fmt!r}")


def _run_module(module: Any, x: Any) -> list[Any]:
    with torch.no_grad(), _quiet():
        return as_list(module(torch.from_numpy(x)))
