"""From a YAML file (plus ``extends`` parents and ``--set`` overrides) to a Spec: the loader's steps
in order, each over the previous one's result.

The source is a file, the name of a shipped spec (``resnet50d``, when no such file is at hand), or a
spec's data as a mapping (located as ``<dict>``, without lines).
1. ``extends``: the parent chain, read recursively and merged (``merge`` rules), each file's fields
   over its parents';
2. ``tweaks``: each file's tweaks (B, C, D), which may not contradict a field written in the same file
   (a contradiction is reported with the file's other problems);
3. ``overrides``: ``field.path=value`` (the value parsed as YAML), or a mapping of field paths to
   values, or ``Override``s; tweaks an override adds are expanded first, then the other overrides
   are set. An override of ``extends`` is refused: the chain is read with the file;
4. ``messages``: validation by the spec models. Errors name file, line and field; all of them are
   reported together (the first MAX_PROBLEMS, and a line counting the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import Problem
from . import catalog
from .extends import IDENTIFIER, load_chain, load_data, project_root, refuse_conflicts
from .messages import validate
from .overrides import Override, Overrides, apply_overrides
from .spec import Spec
from .yamlsource import Positions, plain_data

__all__ = ["MAPPING_DISPLAY", "Override", "Overrides", "Source", "load_data", "load_spec", "load_spec_with_positions"]


# A spec file, the name of a shipped spec (``resnet50d``), or a spec's data as YAML would give it.
Source = str | Path | Mapping[str, Any]
MAPPING_DISPLAY = "<dict>"  # the 'file' of problems in a spec given as a mapping


def load_spec(source: Source, overrides: Overrides = None) -> Spec:
    """Load, merge, override and validate a spec (a file, a shipped spec's name, or a mapping).
    Raises SpecError."""
    spec, _ = load_spec_with_positions(source, overrides)
    return spec


def load_spec_with_positions(source: Source, overrides: Overrides = None) -> tuple[Spec, Positions]:
    if isinstance(source, Mapping):
        # Like a file's content; its 'extends' is relative to the working folder, and the chain stays in
        # the working folder's project root.
        own, own_pos = plain_data(source, MAPPING_DISPLAY)
        folder = Path.cwd()
        conflicts: list[Problem] = []
        data, positions = load_chain(own, own_pos, folder, project_root(folder), MAPPING_DISPLAY, (), 0, conflicts)
        parent = own.get("extends")
        if "name" not in data and isinstance(parent, str):  # no file name to default to: the parent's
            name = (catalog.shipped_ref(parent) or Path(parent).stem).replace("-", "_")
            if IDENTIFIER.fullmatch(name):
                data["name"] = name
        refuse_conflicts(data, positions, conflicts)
    else:
        data, positions = load_data(Path(source))
    data, positions = apply_overrides(data, positions, overrides)
    return validate(data, positions), positions
