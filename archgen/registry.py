"""Backends by name: the only way the core reaches one.

A backend is a package exposing ``EMITTER`` (its templates and filters, importable
without its framework), ``BACKEND`` (the live side, which imports the
framework when first touched), and optionally ``WEIGHTS`` (its weights files: a
``WeightsFile``, importable without its framework), ``SIDES`` (the modules it brings beside
the live side: ``export``, ``bench``), ``EXPORTS`` (the formats its ``export`` writes) and
``FRAMEWORK`` (the module whose models are its models). The built-in ones live in ``archgen.backends``;
others register a package through the ``archgen.backends`` entry-point group, so
a third backend (JAX/Flax, ONNX) needs no change in the core.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from .errors import MissingFramework, OptionError

if TYPE_CHECKING:
    from pathlib import Path

    from .ir import Network, Shape

BUILTIN: dict[str, str] = {"keras": "archgen.backends.keras", "torch": "archgen.backends.torch"}

Weights = dict[str, dict[str, Any]]  # IR layer name -> {tensor name: numpy array, in PyTorch's layout}
# A progress display over a long loop: (items, description, total) -> the same items (rich's ``track``).
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


@dataclass(frozen=True)
class Emitter:
    """What ``archgen emit`` needs from a backend: its templates and filters, no framework."""

    package: str  # the package whose ``templates/`` folder holds ``template``
    template: str
    filters: dict[str, Callable[..., Any]] = field(default_factory=dict)


class WeightsFile(Protocol):
    """A backend's weights files: read into ``Weights`` and written from them, so that ``archgen port``
    moves a checkpoint between any two backends through the one canonical layout."""

    suffixes: tuple[str, ...]  # a file of this kind has a name ending in one of these
    kind: str  # what such a file is, for messages ("a PyTorch state_dict")

    def read(self, path: Path, network: Network, progress: Progress | None = None) -> Weights:
        """Every tensor of ``network`` from the file at ``path``, checked against the IR first: a
        CheckpointError names each missing, unexpected or misshapen tensor, and a file that is not
        plain data of the kind (a FIFO, a link out of the file, compressed or exotic values)."""

    def load(self, path: Path, network: Network) -> Any:
        """A live model of the backend holding the file, checked as ``read`` checks it and then loaded by
        the framework's own reader, as a user would load it: what a written file is verified with,
        apart from the conversions of ``read`` and ``write``."""

    def write(
        self,
        weights: Weights,
        network: Network,
        output: Path,
        check: Callable[[Path], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Write ``weights`` to ``output`` all or nothing (``archgen.atomic``); ``check`` is called on the
        complete staged file before it takes ``output``'s place."""


class Backend(Protocol):
    """The live side of a backend: models of its framework, built from the IR and checked against it."""

    name: str
    extra: str  # pip install 'archgen[<extra>]' brings the framework
    fuses: bool  # build(..., fuse=True) gives the inference form (else an OptionError)
    randomizes: bool  # randomize draws random weights (else NotImplementedError: draw them in another backend)

    def require(self) -> None:
        """Import the framework, or raise MissingFramework saying what to install."""

    def build(
        self,
        network: Network,
        device: str | None = None,
        dtype: str | None = None,
        *,
        weights: Weights | None = None,
        fuse: bool = False,
    ) -> Any:
        """A live model for the network, initialised as the spec says or holding ``weights`` (OptionError /
        RunError for devices); ``fuse``: its inference form (OptionError where the backend has none)."""

    def counts(self, model: Any) -> tuple[int, int]:
        """(trainable parameters, normalisation statistics) of a live model."""

    def outputs(self, model: Any, network: Network, x: Any) -> dict[str, Any]:
        """Eval-mode activations (numpy, channels-first) after the stem, every stage and the head."""

    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        """Run a dummy input; shapes (channels-first) at the stem, every stage and the output."""

    def get_weights(self, model: Any, network: Network) -> Weights:
        """Every weighted IR layer's tensors, in PyTorch's layout (the canonical one)."""

    def set_weights(self, model: Any, network: Network, weights: Weights) -> None:
        """Load tensors given in PyTorch's layout, by IR layer name."""

    def randomize(self, model: Any, network: Network, seed: int = 0, gamma: tuple[float, float] = (0.5, 1.5)) -> None:
        """Every weight random, norm statistics calibrated (NotImplementedError where the backend cannot)."""

    def model_class(self) -> type:
        """The framework's base class of the backend's live models (``registry.backend_of``)."""


class UnknownBackend(OptionError, KeyError):
    """No backend of that name (a KeyError for the lookup, an OptionError for the user: exit 2)."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0])


@functools.cache
def _targets() -> dict[str, str]:
    """Backend name -> package, read once per process (scanning the installed packages' entry points
    takes ~14 ms, once per ``archgen.build`` before; importing importlib.metadata ~25 ms more, which is
    why only this function does)."""
    from importlib.metadata import entry_points

    external = {ep.name: ep.value.split(":")[0] for ep in entry_points(group="archgen.backends")}
    return {**external, **BUILTIN}


def names() -> list[str]:
    return sorted(_targets())


def _package(name: str) -> ModuleType:
    target = BUILTIN.get(name) or _targets().get(name)  # a built-in name wins: no entry-point scan for it
    if target is None:
        raise UnknownBackend(f"unknown backend {name!r}; expected one of: {', '.join(names())}")
    return importlib.import_module(target)


def emitters() -> list[str]:
    """Backends that bring templates for ``archgen emit``."""
    return [name for name in names() if getattr(_package(name), "EMITTER", None) is not None]


def emitter(name: str) -> Emitter:
    """The backend's templates and filters (its framework is not imported)."""
    found = getattr(_package(name), "EMITTER", None)
    if found is None:
        raise UnknownBackend(
            f"the {name} backend brings no templates; backends with templates: {', '.join(emitters())}"
        )
    return found  # type: ignore[no-any-return]


def get(name: str) -> Backend:
    """The backend of this name, its framework imported; MissingFramework (with what to install) if it cannot be."""
    package = _package(name)
    try:
        backend = package.BACKEND
    except ImportError as exc:
        missing = (exc.name or "its framework").split(".")[0]
        raise MissingFramework(
            f"the {name} backend needs {missing}, which is not installed: pip install 'archgen[{name}]'"
        ) from None
    backend.require()
    return backend  # type: ignore[no-any-return]


def side(name: str, part: str) -> ModuleType:
    """A backend package's module ``part`` (``export``, ``bench``), which the package declares in ``SIDES``;
    OptionError naming the backends that have one where it does not."""
    package = _package(name)
    if part not in getattr(package, "SIDES", ()):
        having = [n for n in names() if part in getattr(_package(n), "SIDES", ())]
        raise OptionError(f"the {name} backend has no {part}; backends with one: {', '.join(having) or 'none'}")
    return importlib.import_module(f"{package.__name__}.{part}")


def weights_file(name: str) -> WeightsFile:
    """The backend's weights files (its framework is imported only to read or write one)."""
    found = getattr(_package(name), "WEIGHTS", None)
    if found is None:
        raise OptionError(f"the {name} backend has no weights files; backends with them: {', '.join(weighing())}")
    return found  # type: ignore[no-any-return]


def weighing() -> list[str]:
    """Backends that bring weights files."""
    return [name for name in names() if getattr(_package(name), "WEIGHTS", None) is not None]


def weights_owner(path: Path) -> str | None:
    """The backend whose weights files end as ``path``'s name does; None where none does."""
    return next((n for n in weighing() if path.name.endswith(weights_file(n).suffixes)), None)


def exporters() -> dict[str, str]:
    """Export format -> the backend whose ``export`` module writes it (its package's ``EXPORTS``)."""
    out: dict[str, str] = {}
    for name in names():
        for fmt in getattr(_package(name), "EXPORTS", ()):
            out.setdefault(fmt, name)
    return out


def backend_of(model: Any) -> str:
    """The backend a live model belongs to: the one that built it (``archgen_backend``, set by every
    backend's ``build``), else (a model of an emitted file) the backend whose ``model_class`` it is an
    instance of, asked only of backends whose framework (``FRAMEWORK``) is imported; where two claim it
    (a Keras model on Keras' torch backend is a torch module too), the more derived class wins."""
    name = getattr(model, "archgen_backend", None)
    if isinstance(name, str):
        return name
    claims: dict[str, type] = {}
    for candidate in names():
        framework = getattr(_package(candidate), "FRAMEWORK", None)
        if framework is None or framework not in sys.modules:
            continue  # no model of a framework that is not imported can exist
        model_class = get(candidate).model_class()
        if isinstance(model, model_class):
            claims[candidate] = model_class
    best = [n for n, c in claims.items() if all(issubclass(c, other) for other in claims.values())]
    if len(best) != 1:
        raise TypeError(f"not a model of a known backend: {type(model).__name__}")
    return best[0]
