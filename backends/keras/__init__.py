"""The Keras 3 backend: channels-last models whose layer names are the IR names from the archgen IR.

The framework is imported only when ``BACKEND`` is first used: ``archgen emit`` renders this
package's templates (``emit.py``) on machines without keras.
"""

from __future__ import annotations

from typing import Any

from .emit import EMITTER

# What the package brings beside its live side, declared without importing the framework (registry.side):
# its ``export`` module writes these formats (archgen export), its ``bench`` module runs archgen bench.
SIDES = ("export", "bench")
FRAMEWORK = "keras"  # the module whose models are this backend's (registry.backend_of)
EXPORTS = ("saved_model", "litert")

__all__ = ["BACKEND", "EMITTER", "EXPORTS", "FRAMEWORK", "SIDES", "WEIGHTS", "custom_objects"]


def custom_objects() -> dict[str, Any]:
    """archgen's Keras objects by registered name, for ``keras.models.load_model(..., custom_objects=...)``."""
    from .backend import custom_objects as objects

    return objects()


def __getattr__(name: str) -> Any:
    if name == "BACKEND":
        from .backend import BACKEND

        return BACKEND
    if name == "WEIGHTS":  # its weights files, read and written through the framework only when used
        from .weights_file import WEIGHTS

        return WEIGHTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
