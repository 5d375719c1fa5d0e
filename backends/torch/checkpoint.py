"""Reading and writing PyTorch state_dict files for ``archgen port`` (values as numpy arrays)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from archgen.errors import CheckpointError, Problem


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    return value


def load_state_dict(path: Path) -> Any:
    """The file's contents with tensors as numpy arrays, unpickled safely (tensors and containers only)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports pickles of arbitrary objects and corrupt files alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"cannot read as a PyTorch state_dict (loaded with weights_only=True): {first}"
        raise CheckpointError(Problem(str(path), None, None, "", message)) from None
    return _numpy(data)


def save_state_dict(state: dict[str, Any], path: Path) -> None:
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
