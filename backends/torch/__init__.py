"""The PyTorch backend: live ``nn.Module`` models from the archgen IR.

The framework is imported only when ``BACKEND`` is first used: ``archgen emit`` renders this
package's templates (``emit.py``) on machines without torch.
"""

from __future__ import annotations

from typing import Any

from .emit import EMITTER

__all__ = ["BACKEND", "EMITTER"]


def __getattr__(name: str) -> Any:
    if name == "BACKEND":
        from .backend import BACKEND

        return BACKEND
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
