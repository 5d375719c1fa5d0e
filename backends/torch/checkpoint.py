"""Reading and writing PyTorch state_dict files for ``archgen port`` (values as numpy arrays).

What is read, and what refused, is ``archgen.runtime.checkpoint_files``' policy: here torch's tensors become
numpy arrays where that is faithful, and an ``Unloadable`` naming their kind where it is not, for the
core to report with the tensor's name.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from archgen.errors import CheckpointError, Problem
from archgen.runtime.checkpoint_files import Unloadable, check_torch_archive, open_regular, unloadable_dtype

# Levels of dicts whose tensors are converted: the file's top level and one wrapper below it
# (``{"state_dict": {...}}``), the only places ``weights_file.read_state`` looks for the state_dict. Deeper values
# (an optimizer's state) stay as they are, and a deeply nested file costs no recursion.
_LEVELS = 2


def _array(value: torch.Tensor) -> Any:
    """A tensor as a numpy array (bfloat16 and float16 as float32, exactly), or why it cannot be one."""
    if value.is_nested:
        return Unloadable("a nested tensor", "a weight is one dense tensor; save it unbound")
    if value.layout != torch.strided:
        kind = "a sparse tensor" if "sparse" in str(value.layout) else "a tensor"
        return Unloadable(f"{kind} of layout {value.layout}", "save it dense (.to_dense())")
    if value.is_quantized:
        return Unloadable(f"a quantized tensor ({value.dtype})", "save the float model's weights (dequantize())")
    if value.device.type == "meta":
        return Unloadable("a meta tensor (it holds no data)", "save the weights of a model that has them")
    value = value.detach()
    if value.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16; float32 holds both exactly
        return value.float().numpy()
    if value.is_complex():
        value = value.resolve_conj()
    try:
        return value.resolve_neg().numpy()
    except (TypeError, RuntimeError):  # a dtype numpy has no counterpart for: float8, bits, ...
        return unloadable_dtype(str(value.dtype).removeprefix("torch."))


def _numpy(value: Any, levels: int = _LEVELS) -> Any:
    if isinstance(value, torch.Tensor):
        return _array(value)
    if isinstance(value, dict) and levels > 0:
        return {k: _numpy(v, levels - 1) for k, v in value.items()}
    return value


def load_state_dict(path: Path) -> Any:
    """The file's contents with tensors as numpy arrays, unpickled safely (tensors and containers only).

    The file must be a regular file, and a zip archive must hold no more than its size declares
    (``archgen.runtime.checkpoint_files.check_torch_archive``), before torch reads it."""
    with open_regular(path) as (fh, size):
        check_torch_archive(fh, size, path)
        fh.seek(0)
        try:
            with warnings.catch_warnings():  # torch's notes on sparse validation, TypedStorage, ...
                warnings.simplefilter("ignore")
                data = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch reports pickles of arbitrary objects and corrupt files alike
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            message = f"cannot read as a PyTorch state_dict (loaded with weights_only=True): {first}"
            raise CheckpointError(Problem(str(path), None, None, "", message)) from None
    return _numpy(data)


def save_state_dict(state: dict[str, Any], path: Path) -> None:
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
