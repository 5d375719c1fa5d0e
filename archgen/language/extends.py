"""Step 1 of loading: a spec file and the chain of parents its ``extends`` names, merged.

A bare name is ``NAME.yaml`` beside the file, else the shipped spec of that name; ``archgen:NAME`` is
the shipped spec; anything else is a relative path to a ``.yaml`` file, from the child file as it was
reached (a link to a file is not followed to find its parents; from the working folder, for a
mapping), never absolute and never, links followed, outside the project root of the spec being
loaded as given (``catalog.project_root``; the shipped folder, once the chain has reached a shipped
spec). Each file's fields are laid over its parents' (``merge``), then its tweaks are applied.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Problem, SpecError, printable
from . import catalog
from .merge import merge
from .messages import received, short, validate
from .tweaks import apply_tweaks, normalize, union_tweaks
from .yamlsource import Data, Path_, Pos, Positions, read_yaml

MAX_EXTENDS_DEPTH = 16
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a default name taken from a file's stem


def project_root(folder: Path) -> Path:
    """The project root that the ``extends`` chain of a spec in ``folder`` stays in (``catalog.project_root``)."""
    return catalog.project_root(folder)[0]


def load_data(path: Path) -> tuple[Data, Positions]:
    """A spec file's (or shipped name's) data with its ``extends`` chain merged, before any override."""
    display = str(path)
    try:
        found = catalog.locate(display)  # a file at hand, else a shipped spec's name
    except LookupError as exc:
        raise SpecError(Problem(display, None, None, "", exc.args[0])) from None
    if found != path:
        path, display = found, _display(found)
    try:
        # Parents are found beside the path as given, not beside the target of a link to the file (as
        # a shell user reads 'extends: base.yaml'), and must lie inside its project root (the shipped
        # folder for a shipped spec).
        catalog.real(path)
        root = catalog.shipped_dir() if catalog.is_shipped(path) else project_root(path.parent)
    except (OSError, ValueError) as exc:  # a NUL character in the path, a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(Problem(display, None, None, "", f"cannot read file: {reason}")) from None
    conflicts: list[Problem] = []
    data, positions = _load_file(path, root, display, (), 0, conflicts)
    if "name" not in data:
        name = path.stem.replace("-", "_")
        if not IDENTIFIER.fullmatch(name):
            raise SpecError(
                Problem(
                    display,
                    1,
                    1,
                    "name",
                    f"the file name {name!r} is not an identifier (letters, digits and '_', not starting "
                    "with a digit): rename the file or set 'name:'",
                )
            )
        data["name"] = name
    refuse_conflicts(data, positions, conflicts)
    return data, positions


def refuse_conflicts(data: Data, positions: Positions, conflicts: list[Problem]) -> None:
    """Tweaks that contradict their file are refused together with the spec's other problems (an
    unknown tweak beside them, a misspelt field), in reading order."""
    if not conflicts:
        return
    problems = list(conflicts)
    try:
        validate(data, positions)
    except SpecError as exc:
        problems += exc.problems
    raise SpecError(reading_order(problems))


def reading_order(problems: list[Problem]) -> list[Problem]:
    """File by file (in the order they first come up), by line and column; a problem without a line
    (an override, a mapping, the count of those not listed) after those with one."""
    files = {file: i for i, file in enumerate(dict.fromkeys(p.file for p in problems))}
    return sorted(problems, key=lambda p: (p.line is None, files[p.file], p.line or 0, p.column or 0))


def _display(path: Path) -> str:
    """A file reached by name (a shipped spec): relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load_file(
    path: Path,
    root: Path,
    display: str,
    chain: tuple[Path, ...],
    depth: int,
    conflicts: list[Problem],
    real: Path | None = None,
) -> tuple[Data, Positions]:
    """One file of the chain, as reached (``path``: links not followed, so its parents are looked up
    beside it); ``real``: its real path, where given the file read (the one checked to lie in the
    project root); ``chain`` holds the real paths of the files loaded so far."""
    own, own_pos = read_yaml(path if real is None else real, display)
    real = catalog.real(path) if real is None else real
    return load_chain(own, own_pos, path.parent, root, display, (*chain, real), depth, conflicts)


def load_chain(
    own: Data,
    own_pos: dict[Path_, Pos],
    folder: Path,
    root: Path,
    display: str,
    chain: tuple[Path, ...],
    depth: int,
    conflicts: list[Problem],
) -> tuple[Data, Positions]:
    """Lay one file's (or mapping's) fields over its parents. ``folder``: where its ``extends`` is
    looked up; ``root``: the folder every parent must lie in; ``chain``: the files loaded so far,
    this one included; ``depth``: the ``extends`` followed to reach it; ``conflicts``: where a tweak
    contradicting its file is reported (the loading goes on, to report the file's other problems)."""
    own = normalize(own)
    parent_ref = own.pop("extends", None)
    tweaks = own.get("tweaks", [])
    if parent_ref is None:
        merged, positions = own, Positions([own_pos])
    else:
        where = own_pos.get(("extends",), Pos(display, None, None))

        def refuse(message: str) -> SpecError:  # problems of the reference are located at this 'extends'
            return SpecError(Problem(where.file, where.line, where.column, "extends", message))

        parent_path, parent_real, parent_root, parent_display = _parent(
            parent_ref, folder, root, display, chain, refuse
        )
        if parent_real in chain:
            cycle = " -> ".join(p.name for p in (*chain, parent_real))
            raise refuse(f"'extends' cycle: {cycle}{_shadowed(parent_ref, parent_real)}")
        if depth >= MAX_EXTENDS_DEPTH:
            raise refuse(f"more than {MAX_EXTENDS_DEPTH} levels of 'extends'")
        try:
            parent, parent_positions = _load_file(
                parent_path, parent_root, parent_display, chain, depth + 1, conflicts, parent_real
            )
        except SpecError as exc:
            first = exc.problems[0]
            if first.file == parent_display and first.line is None:  # unreadable or too large: no line there
                raise refuse(f"parent spec '{parent_ref}': {first.message}") from None
            raise
        parent.pop("name", None)  # a name belongs to its file
        if "tweaks" in own:  # tweaks accumulate: the child's add to the parent's
            own = {**own, "tweaks": union_tweaks(parent.get("tweaks", []), own["tweaks"])}
        merged = merge(parent, own)
        positions = parent_positions.over(own_pos)
    if tweaks:
        merged = apply_tweaks(merged, own, tweaks, own_pos, display, conflicts)
    return merged, positions


def _shadowed(ref: Any, found: Path) -> str:
    """Why a bare name that closes a cycle did not reach the shipped spec of that name, and how to."""
    if not (isinstance(ref, str) and catalog.is_name(ref)) or catalog.shipped(ref) is None or catalog.is_shipped(found):
        return ""
    return (
        f"; a bare name means the file of that name beside this one before the shipped spec: write "
        f"'extends: {catalog.SHIPPED_PREFIX}{ref}' to extend the shipped {ref}"
    )


def _parent(
    ref: Any, folder: Path, root: Path, display: str, chain: tuple[Path, ...], refuse: Callable[[str], SpecError]
) -> tuple[Path, Path, Path, str]:
    """The file an ``extends`` value names (as reached, and its real path), the folder its own parents
    must stay in, and its display.

    ``archgen:NAME`` is the shipped spec of that name. A bare name (``resnet50d``) is ``resnet50d.yaml``
    beside the file if there is one, else the shipped spec of that name; a shipped spec's parents then
    stay in the shipped folder (shipped specs extend each other by relative path). Anything else is a
    relative path to a ``.yaml`` file from the file as it was reached (``folder``, links not followed),
    and its real path, links followed, must lie inside ``root`` (the project root).
    """
    if not isinstance(ref, str) or not ref:
        raise refuse(f"expected a spec name or a relative file path; received {received(ref)}")
    name = catalog.shipped_ref(ref)
    if name is not None:
        shipped = catalog.shipped(name)
        if shipped is None:
            raise refuse(catalog.unknown_shipped(printable(short(name))))
        return shipped, catalog.real(shipped), catalog.shipped_dir(), _display(shipped)
    written = f"{ref}{catalog.SUFFIX}" if catalog.is_name(ref) else ref
    try:
        if catalog.is_name(ref) and not os.path.lexists(folder / written):
            shipped = catalog.shipped(ref)
            if shipped is None:
                raise refuse(catalog.unknown_name(ref))
            return shipped, catalog.real(shipped), catalog.shipped_dir(), _display(shipped)
        if os.path.isabs(written):
            raise refuse(
                f"'{printable(short(ref))}' is an absolute path: 'extends' takes a path relative to this file "
                f"(inside its project root), a spec name, or {catalog.SHIPPED_PREFIX}NAME for a shipped spec"
            )
        path = folder / written
        real = catalog.real(path)
        if not real.is_relative_to(root):
            # As written, '..' and all (links in the folder above followed): where the user meant to go.
            meant = Path(os.path.normpath(catalog.real(folder) / written))
            raise refuse(_outside(ref, root, through_link=meant.is_relative_to(root)))
        if not real.exists():
            raise refuse(f"parent spec '{ref}' not found{_nearby(written, real, chain)}")
        if not real.is_file():
            raise refuse(f"parent spec '{ref}' is not a regular file")
        if Path(written).suffix != catalog.SUFFIX:
            raise refuse(f"parent spec '{ref}' is not a {catalog.SUFFIX} file: 'extends' reads spec files only")
    except (OSError, ValueError) as exc:  # a NUL character, a name too long for the file system, a link loop
        if isinstance(exc, SpecError):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise refuse(f"'{printable(short(ref))}' is not a usable file path ({reason})") from None
    return path, real, root, str(Path(display).parent / written)


def _outside(ref: str, root: Path, through_link: bool) -> str:
    """Why a parent outside the project root is refused, and how to make a folder above reachable."""
    shown = printable(short(ref))
    marker = catalog.project_root(root)[1] if root != catalog.shipped_dir() else None
    where = f"the project root {root} (it holds {marker})" if marker else f"the spec folder {root}"
    if through_link:  # a symbolic link inside leads out: no marker would make that right
        return f"'{shown}' lies outside {where}"
    if marker:
        return f"'{shown}' lies outside {where}: 'extends' reaches specs inside it, and shipped specs by name"
    return (
        f"'{shown}' lies outside {where}: 'extends' reaches this folder and below it, and shipped specs by name; "
        f"to reach a folder above, mark your project's root folder with an empty {catalog.MARKER} file (a .git "
        "or pyproject.toml marks it too)"
    )


def _nearby(written: str, missing: Path, chain: tuple[Path, ...]) -> str:
    """A did-you-mean among the spec files of the folder a missing parent was looked for in, named
    the way the reference writes them (``parents/valid_resnet50.yaml``)."""
    prefix = written[: written.rfind("/") + 1]
    try:
        found = [p for p in missing.parent.glob(f"*{catalog.SUFFIX}") if p.is_file() and catalog.real(p) not in chain]
    except OSError:
        found = []
    nearby = catalog.suggest(written, sorted(prefix + p.name for p in found))
    same = catalog.same_name(Path(written).stem) if not nearby and written.endswith(catalog.SUFFIX) else None
    if same is not None:  # 'specs/resnet50.yaml' outside the checkout
        return f"; did you mean the shipped spec '{same}' (extends: {same}, or {catalog.SHIPPED_PREFIX}{same})?"
    return nearby
