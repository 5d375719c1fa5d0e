"""The specs shipped with archgen, reachable by name from anywhere.

In a source checkout they are the repository's ``specs/`` folder; in an
installed wheel they are package data (``archgen/specs/``, mapped onto the
same folder by ``pyproject.toml``). A bare name such as ``resnet50d`` (on the
command line, in ``archgen.build``, or as ``extends: resnet50d``) means the
shipped spec of that name unless a file of that name is at hand;
``archgen:resnet50d`` always means the shipped one.

A user's specs live in a project: the nearest folder above a spec (its own
included) that holds one of ``MARKERS`` (``.archgen``, ``.git``,
``pyproject.toml``), else the spec's own folder. ``extends`` by path reaches
any spec inside that root and nothing outside it (``loader.py``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from functools import cache
from pathlib import Path

SUFFIX = ".yaml"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# 'archgen:resnet50d': the shipped spec of that name, whatever files are at hand.
SHIPPED_PREFIX = "archgen:"
# What marks the root of a project of specs, in the order they are named in messages: an empty
# '.archgen' file (for a folder that is no repository), a git repository (a '.git' folder, or the
# '.git' file of a worktree or submodule), a Python project.
MARKER = ".archgen"
MARKERS = (MARKER, ".git", "pyproject.toml")


@cache
def shipped_dir() -> Path:
    """The folder of the shipped specs (package data, or the checkout's ``specs/``)."""
    package = Path(__file__).resolve().parent.parent  # archgen/, this module is archgen/language/
    installed = package / "specs"
    if installed.is_dir():
        return installed
    checkout = package.parent / "specs"
    if checkout.is_dir() and (package.parent / "pyproject.toml").is_file():
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


def shipped_ref(ref: str) -> str | None:
    """The name in ``archgen:NAME`` (the shipped spec of that name), or None for any other reference."""
    return ref[len(SHIPPED_PREFIX) :] if ref.startswith(SHIPPED_PREFIX) else None


def locate(ref: str) -> Path:
    """What a spec reference names: ``archgen:NAME``, the shipped spec of that name; else whatever is at
    that path, else the shipped spec of that bare name.

    A name that is none of these raises LookupError with ``unknown_name``'s message; so do a folder and
    a symbolic link loop, which can never be a spec, and a missing path whose file name is a shipped
    spec's (``specs/resnet50.yaml`` outside the checkout: the message names the spec). Anything else
    that is there (a FIFO, a dangling link, an unreadable file) is returned for the loader to refuse by
    name, without opening it, and so is any other missing path."""
    name = shipped_ref(ref)
    if name is not None:
        found = shipped(name)
        if found is None:
            raise LookupError(unknown_shipped(name))
        return found
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
        same = same_name(path.stem) if path.suffix == SUFFIX else None
        if same is not None:
            raise LookupError(
                f"file '{ref}' does not exist; did you mean the shipped spec '{same}'? (a shipped spec is "
                f"found by its name from any folder: {same})"
            )
        return path
    found = shipped(ref)
    if found is None:
        raise LookupError(unknown_name(ref))
    return found


def same_name(stem: str) -> str | None:
    """The shipped spec whose name is ``stem``, letter case aside (``RESNET50``, ``ResNet50``)."""
    folded = stem.casefold()
    return next((n for n in shipped_names() if n.casefold() == folded), None)


def project_root(folder: Path) -> tuple[Path, str | None]:
    """The root of the project a spec in ``folder`` belongs to (real path): the nearest folder, from
    ``folder`` up, that holds one of ``MARKERS``, with the marker found; else ``folder`` itself, and
    None. Raises OSError (a symbolic link loop) or ValueError (a NUL character) as ``real`` does."""
    start = real(folder)
    for candidate in (start, *start.parents):
        for marker in MARKERS:
            try:
                if os.path.lexists(candidate / marker):
                    return candidate, marker
            except OSError:  # a folder above that cannot be searched: no marker seen there
                continue
    return start, None


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
    """'; did you mean 'x'?' for the candidate equal to ``name`` but for letter case, else the closest
    one, letter case aside (``RESNET50``: ``resnet50``), or nothing."""
    import difflib  # only a mistake needs it

    folded = {c.casefold(): c for c in reversed(candidates)}  # the first of candidates equal but for case
    same = folded.get(name.casefold())
    if same is None:
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
        same = folded[close[0]] if close else None
    return f"; did you mean '{same}'?" if same is not None else ""


def unknown_name(name: str) -> str:
    """The message for a name that is neither a file at hand nor a shipped spec."""
    return (
        f"no spec file '{name}' here and no shipped spec of that name{suggest(name, shipped_names())} "
        "('archgen list' shows the shipped specs)"
    )


def unknown_shipped(name: str) -> str:
    """The message for ``archgen:NAME`` where no shipped spec has that name."""
    return (
        f"no shipped spec '{name}' (archgen:NAME names a spec shipped with archgen){suggest(name, shipped_names())} "
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
