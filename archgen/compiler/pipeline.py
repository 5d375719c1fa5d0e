"""The whole front of the compiler in one call: a spec's source loaded, validated and resolved."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ir import Network
    from ..language.loader import Overrides
    from ..language.spec import Spec


def compile_spec(
    spec_or_path: Spec | str | Path | Mapping[str, Any], overrides: Overrides = None, input_size: int | None = None
) -> tuple[Spec, Network]:
    """Load (a file, a shipped spec's name, or a spec's data as a mapping), validate and resolve;
    errors name file, line and field."""
    from ..language.loader import load_spec_with_positions
    from ..language.spec import Spec
    from .resolve import resolve

    if isinstance(spec_or_path, Spec):
        if overrides:
            raise TypeError("overrides apply to a spec file or mapping; pass one, or change the Spec with model_copy")
        return spec_or_path, resolve(spec_or_path, input_size=input_size)
    spec, positions = load_spec_with_positions(spec_or_path, overrides)
    return spec, resolve(spec, positions, input_size)
