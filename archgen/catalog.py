"""The specs shipped with archgen, reachable by name from anywhere.

In a source checkout they are the repository's ``specs/`` folder; in an
installed wheel they are package data (``archgen/specs/``, mapped onto the
same folder by ``pyproject.toml``). A bare name such as ``resnet50d`` (on the
command line, in ``archgen.build``, or as ``extends: resnet50d``) means the
shipped spec of that name unless a file of that name is at hand.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import cache
from pathlib import Path

SUFFIX = ".yaml"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@cache
def shipped_dir() -> Path:
    """The folder of the shipped specs (package data, or the checkout's ``specs/``)."""
    here = Path(__file__).resolve().parent
    installed = here / "specs"
    if installed.is_dir():
        return installed
    checkout = here.parent / "specs"
    if checkout.is_dir() and (here.parent / "pyproject.toml").is_file():
        return checkout
    raise RuntimeError(f"archgen's shipped specs are missing (looked in {installed} and {checkout}): reinstall archgen")


def shipped_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob(f"*{SUFFIX}"))


def is_name(ref: str) -> bool:
    """A bare spec name (``resnet50d``), as opposed to a file path (``resnet50d.yaml``, ``../x.yaml``)."""
    return bool(_NAME.fullmatch(ref))


def shipped(name: str) -> Path | None:
    """The shipped spec file of this name, if there is one."""
    if not is_name(name):
        return None
    path = shipped_dir() / f"{name}{SUFFIX}"
    return path if path.is_file() else None


def locate(ref: str) -> Path:
    """What a spec reference names: whatever is at that path (a file, or something the loader then
    refuses by name), else the shipped spec of that bare name. A bare name that is neither raises
    LookupError with ``unknown_name``'s message; a missing path is returned for its reader to report."""
    path = Path(ref)
    if os.path.lexists(path) or not is_name(ref):
        return path
    found = shipped(ref)
    if found is None:
        raise LookupError(unknown_name(ref))
    return found


def is_shipped(path: Path) -> bool:
    try:
        return path.resolve().parent == shipped_dir()
    except (OSError, ValueError):
        return False


def suggest(name: str, candidates: list[str]) -> str:
    """'; did you mean 'x'?' for the closest candidate, or nothing."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name(name: str) -> str:
    """The message for a name that is neither a file at hand nor a shipped spec."""
    return (
        f"no spec file '{name}' here and no shipped spec of that name{suggest(name, shipped_names())} "
        "('archgen list' shows the shipped specs)"
    )


def source_name(path: Path) -> str:
    """A spec's path as written in emitted headers: ``specs/NAME.yaml`` for a shipped spec (the same
    wherever archgen is installed or run), else relative to the working folder when inside it."""
    if is_shipped(path):
        return f"specs/{path.name}"
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()
