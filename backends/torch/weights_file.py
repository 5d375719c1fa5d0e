"""PyTorch's weights files: state_dicts (torchvision/timm style), pickled (.pth/.pt/.bin) or .safetensors.

A ``.safetensors`` file is read and written without torch (``archgen.runtime.checkpoint_files`` parses it,
the ``safetensors`` package writes it), so a Keras user needs no torch to load one; a pickle is read by
torch alone, which can unpickle it safely (``weights_only``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from archgen.atomic import replace_atomic
from archgen.errors import CheckpointError
from archgen.ir import Network
from archgen.registry import Progress, Weights
from archgen.runtime import checkpoint_files
from archgen.runtime.weights import check_state, flatten, problem

# Wrappers training scripts save a state_dict under (timm, Lightning-style and plain loops).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


def read_state(path: Path) -> dict[str, Any]:
    """A flat ``{key: numpy array}`` from a state_dict file (wrappers and a ``module.`` prefix removed).

    Only what a float32 model holds faithfully is read (``archgen.runtime.checkpoint_files`` says what, and
    why): float16, bfloat16, float32 and float64 weights, the same arrays from ``.pth`` and
    ``.safetensors``; anything else is a CheckpointError naming the tensor and its kind, as is a file
    that is not a regular file or that would claim more memory than it holds."""
    if path.suffix == ".safetensors":
        state: Any = checkpoint_files.read_safetensors(path)
    else:
        from .checkpoint import load_state_dict

        state = load_state_dict(path)
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        kind = type(state).__name__
        raise CheckpointError(
            problem(path, "", f"holds a {kind}, not a state_dict (save model.state_dict(), not the model)")
        )
    if all(isinstance(k, str) and k.startswith("module.") for k in state):  # saved from DataParallel/DDP
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return checkpoint_files.as_state(state, path)


class StateDictFile:
    suffixes = (".pth", ".pt", ".bin", ".safetensors")
    kind = "a PyTorch state_dict"

    def read(self, path: Path, network: Network, progress: Progress | None = None) -> Weights:
        return check_state(read_state(path), network, path)

    def load(self, path: Path, network: Network) -> Any:
        from .backend import BACKEND, tensors

        state = read_state(path)
        check_state(state, network, path)
        model = BACKEND.build(network)
        model.load_state_dict(tensors(state), strict=True)  # the file's own keys, as a user loads them
        return model

    def write(
        self,
        weights: Weights,
        network: Network,
        output: Path,
        check: Callable[[Path], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        state = flatten(weights, network)
        if output.suffix == ".safetensors":
            from safetensors.numpy import save_file

            def write(tmp: Path) -> None:
                save_file(state, str(tmp), metadata={"format": "pt"})  # "pt": what timm and transformers mark
        else:

            def write(tmp: Path) -> None:
                from .checkpoint import save_state_dict

                save_state_dict(state, tmp)

        replace_atomic(write, output, output.suffix, check)


WEIGHTS = StateDictFile()
