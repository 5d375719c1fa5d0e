"""Backends by name. A backend is a module exposing ``BACKEND`` (see ``Backend``);
built-in ones are listed here, others register through the
``archgen.backends`` entry-point group. Nothing is imported until asked for."""

from __future__ import annotations

import importlib
import importlib.util
import os
from importlib.metadata import entry_points
from typing import Any, Protocol

from .errors import MissingFramework
from .ir import Network, Shape

BUILTIN: dict[str, str] = {"keras": "backends.keras", "torch": "backends.torch"}


class Backend(Protocol):
    name: str

    def build(self, network: Network, device: str | None = None) -> Any:
        """A live model for the network, initialised as the spec says."""

    def counts(self, model: Any) -> tuple[int, int]:
        """(trainable parameters, normalisation statistics) of a live model."""

    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        """Run a dummy input; shapes (channels-first) at the stem, every stage and the output."""


def _external() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="archgen.backends")}


def names() -> list[str]:
    return sorted({**_external(), **BUILTIN})


def emitters() -> list[str]:
    """Backends that bring templates for ``archgen emit`` (a ``templates`` folder beside an ``emit`` module)."""
    out = []
    for name in names():
        target = {**_external(), **BUILTIN}[name].split(":")[0]
        spec = importlib.util.find_spec(target)
        if spec and spec.submodule_search_locations:
            folder = spec.submodule_search_locations[0]
            if os.path.isfile(os.path.join(folder, "emit.py")) and os.path.isdir(os.path.join(folder, "templates")):
                out.append(name)
    return out


def get(name: str) -> Backend:
    """The backend of this name, its framework imported; MissingFramework (with what to install) if it cannot be."""
    target = {**_external(), **BUILTIN}.get(name)
    if target is None:
        raise KeyError(f"unknown backend '{name}'; expected one of: {', '.join(names())}")
    try:
        backend = importlib.import_module(target.split(":")[0]).BACKEND
    except ImportError as exc:
        missing = (exc.name or "its framework").split(".")[0]
        raise MissingFramework(
            f"the {name} backend needs {missing}, which is not installed: pip install 'archgen[{name}]'"
        ) from None
    require = getattr(backend, "require", None)
    if require is not None:
        require()
    return backend
