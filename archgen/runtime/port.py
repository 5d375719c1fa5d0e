"""Porting checkpoints between frameworks (``archgen port``).

A weights file of one backend (a PyTorch state_dict, ``.pth``/``.pt``/``.bin`` or ``.safetensors``; a
Keras ``.weights.h5``) becomes the other's for the same spec: the source backend's ``WeightsFile`` reads
it into ``Weights``, checking every key and shape against the spec's IR before anything is built or
written (the first mismatches in the network's order are named); the target's writes them, and the
output file appears only complete (staged, optionally verified, then renamed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import registry
from ..ir import Network
from ..registry import Progress, Weights


def path_problem(checkpoint: Path, output: Path, target: str) -> tuple[str, str] | None:
    """What is wrong with the file names of a port to ``target``, and which argument it is; None if nothing."""
    source = registry.weights_owner(checkpoint)
    if source is None or source == target:
        sources = [s for n in registry.weighing() if n != target for s in registry.weights_file(n).suffixes]
        return f"--to {target} reads a {' / '.join(sources)} file, not '{checkpoint.name}'", "'CHECKPOINT'"
    outputs = registry.weights_file(target).suffixes
    out_hint = "'-o' / '--output'"
    if not output.name.endswith(outputs):
        return f"--to {target}: the output must end with {' / '.join(outputs)}, not '{output.name}'", out_hint
    if output.resolve() == checkpoint.resolve():
        return "the output would overwrite the checkpoint", out_hint
    if not output.parent.is_dir():
        return f"the output's folder '{output.parent}' does not exist", out_hint
    return None


class VerificationError(RuntimeError):
    """The ported file does not compute what the checkpoint does (a bug: exit 1, nothing written)."""

    def __init__(self, comparison: Any) -> None:
        self.comparison = comparison
        super().__init__(comparison.verdict())


def verify(network: Network, checkpoint: Path, source: str, ported: Path, target: str, seed: int = 0) -> Any:
    """The checkpoint against the ported file, each loaded by its own framework (``WeightsFile.load``), on
    one random batch at every stage boundary: a conversion bug cannot cancel itself out on the way back."""
    import numpy as np

    from .compare import compare_models

    reference = registry.weights_file(source).load(checkpoint, network)
    other = registry.weights_file(target).load(ported, network)
    x = np.random.default_rng(seed).standard_normal((2, *network.input_shape)).astype("float32")
    result = compare_models(network, reference, other, x, "float32")
    if not result.ok:
        raise VerificationError(result)
    return result


def port(
    checkpoint: Path,
    network: Network,
    target: str,
    output: Path,
    progress: Progress | None = None,
    check: bool = False,
) -> tuple[Weights, Any]:
    """Read and check ``checkpoint`` (a weights file of the backend its name says), write it as ``target``'s
    weights file ``output`` (``check``: read back and verified before the rename).

    Returns the weights and the verification's comparison (None without ``check``)."""
    source = registry.weights_owner(checkpoint)
    if source is None:
        raise ValueError(f"no backend reads '{checkpoint.name}' (path_problem says why)")
    weights = registry.weights_file(source).read(checkpoint, network, progress)
    found: list[Any] = []

    def reload(tmp: Path) -> None:  # the file as written, read back as any user would
        found.append(verify(network, checkpoint, source, tmp, target))

    registry.weights_file(target).write(weights, network, output, reload if check else None, progress)
    return weights, found[0] if found else None
