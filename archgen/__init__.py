"""archgen: a declarative architecture spec compiler for ResNet-family CNNs.

    spec = archgen.load_spec("specs/resnet50.yaml", overrides=["head.classes=10"])
    network = archgen.resolve(spec)          # the framework-free IR
    model = archgen.build(spec, backend="torch")

Importing archgen imports no deep-learning framework; a backend does, lazily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compiler.pipeline import compile_spec
from .errors import CheckpointError, MissingFramework, OptionError, Problem, RunError, SpecError
from .version import __version__

if TYPE_CHECKING:
    from .compiler.resolve import resolve
    from .ir import Network
    from .language.loader import Override, Overrides, load_spec
    from .language.loader import load_spec_with_positions as load_spec_with_positions
    from .language.spec import Spec
    from .runtime.transfer import transfer_weights

__all__ = [
    "CheckpointError",
    "MissingFramework",
    "Network",
    "OptionError",
    "Problem",
    "RunError",
    "Spec",
    "SpecError",
    "__version__",
    "build",
    "build_network",
    "compile_spec",
    "list_models",
    "load_spec",
    "resolve",
    "transfer_weights",
]

# The names above that live in heavier modules (pydantic's spec models, the IR), imported when first
# used, so that ``import archgen`` (and the command line's start, its help and ``--version``) does not
# pay for them. ``Override``, ``Overrides`` and ``load_spec_with_positions`` are not in __all__ but were
# always reachable here.
_LAZY = {
    "Network": "ir",
    "Override": "language.loader",
    "Overrides": "language.loader",
    "load_spec": "language.loader",
    "load_spec_with_positions": "language.loader",
    "resolve": "compiler.resolve",
    "Spec": "language.spec",
    "transfer_weights": "runtime.transfer",
}
# The subpackages and modules reachable as attributes, imported on first use; the last six by the
# names they had before the layout's subpackages (archgen.spec is archgen.language.spec).
_SUBMODULES = {
    **{name: name for name in ("language", "ir", "compiler", "codegen", "runtime", "tools", "registry", "describe")},
    **{name: f"language.{name}" for name in ("catalog", "loader", "merge", "spec", "yamlsource")},
    "transfer": "runtime.transfer",
}


def __getattr__(name: str) -> Any:
    from importlib import import_module

    if name in _SUBMODULES:
        module = import_module(f".{_SUBMODULES[name]}", __name__)
        globals()[name] = module
        return module
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{where}", __name__), name)
    globals()[name] = value  # found once; later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


# timm.create_model's keyword arguments, as the spec fields they set.
TIMM_KWARGS = {
    "num_classes": "head.classes",
    "in_chans": "input.channels",
    "drop_rate": "head.dropout",
    "drop_path_rate": "drop_path.rate",
    "output_stride": "output_stride",
}


def list_models(pattern: str = "*") -> list[str]:
    """The names of the shipped specs that match a shell-style ``pattern`` (``"resnet*"``), sorted."""
    import fnmatch

    from .language import catalog

    return [name for name in catalog.shipped_names() if fnmatch.fnmatchcase(name, pattern)]


def build(
    spec_or_path: Spec | str | Path,
    backend: str = "torch",
    *,
    overrides: Overrides = None,
    input_size: int | None = None,
    device: str | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    weights: str | Path | None = None,
    fuse: bool = False,
    **fields: Any,
) -> Any:
    """Compile a spec into a live model of ``backend``.

    Field overrides may be given as ``overrides=["stages.2.depth=36"]`` or as
    keyword arguments with ``__`` for the dots: ``head__classes=10``. timm's ``create_model``
    keywords mean what they mean there: ``num_classes`` (``head.classes``), ``in_chans``
    (``input.channels``), ``drop_rate`` (``head.dropout``), ``drop_path_rate``
    (``drop_path.rate``), ``output_stride``.

    ``features_only=True`` replaces the head by ``{type: features, out_indices: ...}`` (timm's
    option): the model returns the maps of ``feature_info`` at ``out_indices`` as a list (all of
    them by default) and ends at the last stage taken.

    ``weights``: a PyTorch state_dict file (.pth/.pt/.bin/.safetensors, torchvision/timm names, as
    ``archgen port`` reads) checked against the spec (a CheckpointError names every missing,
    unexpected or misshapen tensor) and loaded; the PyTorch model is then not initialised at all.

    ``fuse=True`` (PyTorch): the inference form, every batch norm that follows a conv folded into
    it, channels_last, in eval mode; ``model.archgen_network`` is its IR (``archgen.compiler.fuse``).
    """
    if fields:
        from .language.loader import Override

        # Each named as it was written (head__classes=10), in problems; set after ``overrides``.
        extra = [Override.keyword(k, TIMM_KWARGS.get(k, k.replace("__", ".")), v) for k, v in fields.items()]
        overrides = [*_as_list(overrides), *extra]
    if out_indices is not None and not features_only:
        raise TypeError("out_indices applies to a features model: pass features_only=True too")
    if not features_only:
        _, network = compile_spec(spec_or_path, overrides, input_size)
    else:
        network = _features_network(spec_or_path, overrides, input_size, out_indices)
    return build_network(network, backend, device=device, weights=weights, fuse=fuse)


def build_network(
    network: Network,
    backend: str = "torch",
    *,
    device: str | None = None,
    weights: str | Path | None = None,
    fuse: bool = False,
) -> Any:
    """A live model of a resolved network (what ``build`` does after compiling the spec)."""
    from . import registry

    impl = registry.get(backend)
    loaded = None
    if weights is not None:
        from .runtime.weights import read_state_dict

        loaded = read_state_dict(weights, network)
    return impl.build(network, device=device, weights=loaded, fuse=fuse)


def _features_network(
    spec_or_path: Spec | str | Path, overrides: Overrides, input_size: int | None, out_indices: Sequence[int] | None
) -> Network:
    """The spec's network with a features head taking ``out_indices`` (every map if None)."""
    from pydantic import ValidationError

    from .compiler.resolve import resolve
    from .language.loader import load_spec_with_positions
    from .language.spec import FeaturesHead, NoStem, Spec

    if isinstance(spec_or_path, Spec):
        spec, positions = spec_or_path, None
        if overrides:
            raise TypeError("overrides apply to a spec file or mapping; pass one, or change the Spec with model_copy")
    else:
        spec, positions = load_spec_with_positions(spec_or_path, overrides)
    if out_indices is None:
        out_indices = range(len(spec.stages) + (0 if isinstance(spec.stem, NoStem) else 1))
    try:
        head = FeaturesHead(type="features", out_indices=list(out_indices))
    except ValidationError as exc:
        message = "; ".join(e["msg"] for e in exc.errors())
        raise SpecError(Problem("out_indices=", None, None, "head.out_indices", message)) from None
    return resolve(spec.model_copy(update={"head": head}), positions, input_size)


def _as_list(overrides: Overrides) -> list[str | Override]:
    """Overrides of any form as a list of '--set' strings and Overrides, each named as it was written."""
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        from .language.loader import Override

        return [Override.item(k, v) for k, v in overrides.items()]
    return list(overrides)
