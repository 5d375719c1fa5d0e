"""The specs shipped with archgen, reachable by name from anywhere.

In a source checkout they are the repository's ``specs/`` folder; in an
installed wheel they are package data (``archgen/specs/``, mapped onto the
same folder by ``pyproject.toml``). A bare name such as ``resnet50d`` (on the
command line, in ``archgen.build``, or as ``extends: resnet50d``) means the
shipped spec of that name unless a file of that name is at hand.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
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
    """What a spec reference names: whatever is at that path, else the shipped spec of that bare name.

    A bare name that is neither raises LookupError with ``unknown_name``'s message; so do a folder and
    a symbolic link loop, which can never be a spec. Anything else that is there (a FIFO, a dangling
    link, an unreadable file) is returned for the loader to refuse by name, without opening it, and
    so is a missing path that is no bare name."""
    path = Path(ref)
    if os.path.lexists(path):
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LookupError(f"'{ref}' is a symbolic link loop: it never reaches a file") from None
            return path  # a dangling link, a folder that cannot be searched: the reader says why
        if stat.S_ISDIR(mode):
            raise LookupError(f"'{ref}' is a folder, not a spec file")
        return path
    if not is_name(ref):
        return path
    found = shipped(ref)
    if found is None:
        raise LookupError(unknown_name(ref))
    return found


def folder(ref: str | Path) -> Path:
    """A folder of specs (``--specs``), or LookupError saying why it is none: missing, a file, a
    symbolic link loop, or a path the file system cannot take."""
    path = Path(ref)
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            raise LookupError(f"'{ref}' is a symbolic link loop: it never reaches a folder") from None
        if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise LookupError(f"folder '{ref}' does not exist") from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LookupError(f"folder '{ref}' cannot be read ({reason})") from None
    if not stat.S_ISDIR(mode):
        raise LookupError(f"'{ref}' is a file, not a folder of specs")
    return path


def real(path: Path) -> Path:
    """``path.resolve()``, but a symbolic link loop is an OSError (ELOOP) like any other unusable path:
    Python 3.11's resolve raises RuntimeError for it."""
    try:
        return path.resolve()
    except RuntimeError:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path)) from None


def is_shipped(path: Path) -> bool:
    try:
        return real(path).parent == shipped_dir()
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
        return real(path).relative_to(real(Path.cwd())).as_posix()
    except (OSError, ValueError):
        return path.as_posix()
