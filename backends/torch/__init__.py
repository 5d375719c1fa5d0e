"""The PyTorch backend: live ``nn.Module`` models from the archgen IR.

The framework is imported only when ``BACKEND`` is first used: ``archgen emit`` renders this
package's templates (``emit.py``) on machines without torch.
"""

from __future__ import annotations

from typing import Any

from .emit import EMITTER

# What the package brings beside its live side, declared without importing the framework (registry.side):
# its ``export`` module writes these formats (archgen export), its ``bench`` module runs archgen bench.
SIDES = ("export", "bench")
FRAMEWORK = "torch"  # the module whose models are this backend's (registry.backend_of)
EXPORTS = ("onnx", "torchscript", "exported-program")

__all__ = ["BACKEND", "EMITTER", "EXPORTS", "FRAMEWORK", "SIDES", "WEIGHTS"]


def __getattr__(name: str) -> Any:
    if name == "BACKEND":
        from .backend import BACKEND

        return BACKEND
    if name == "WEIGHTS":  # its weights files, read and written through the framework only when used
        from .weights_file import WEIGHTS

        return WEIGHTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
