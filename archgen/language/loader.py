"""From a YAML file (plus ``extends`` parents and ``--set`` overrides) to a Spec.

The source is a file, the name of a shipped spec (``resnet50d``, when no such file is
at hand), or a spec's data as a mapping (located as ``<dict>``, without lines).
Order of application, each step over the previous one:
1. the parent named by ``extends`` (recursively): a bare name is ``NAME.yaml`` beside
   the file, else the shipped spec of that name; ``archgen:NAME`` is the shipped spec;
   anything else is a relative path to a ``.yaml`` file, from the child file as it was
   reached (a link to a file is not followed to find its parents; from the working folder,
   for a mapping), never absolute and never, links followed, outside the project root of
   the spec being loaded as given (``catalog.project_root``: the nearest folder above it
   holding ``.archgen``, ``.git`` or ``pyproject.toml``, else its own folder; the shipped
   folder, once the chain has reached a shipped spec);
2. the file's own fields (``merge.py`` rules);
3. the file's ``tweaks`` (B, C, D), which may not contradict a field written
   in the same file (a contradiction is reported with the file's other problems);
4. the ``overrides`` (``field.path=value``, value parsed as YAML; or a mapping of field paths to
   values, or ``Override``s, which name the override as the caller wrote it); tweaks an override
   adds are expanded first, then the other overrides are set.
Errors name file, line and field; all validation errors are reported together (the first
MAX_PROBLEMS of them, and a line counting the rest). An override of ``extends`` is refused: the
chain is read with the file, before overrides apply.
"""

from __future__ import annotations

import datetime
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import Problem, SpecError, dotted, printable
from . import catalog
from . import spec as spec_models
from .merge import merge
from .spec import Spec, expand_stages
from .yamlsource import Path_, Pos, Positions, parse_yaml, plain_data, read_yaml, yaml_text

MAX_EXTENDS_DEPTH = 16
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
Data = dict[str, Any]  # spec data as YAML gives it


@dataclass(frozen=True)
class Override:
    """One override as the caller wrote it: the dotted ``field`` it sets (``head.classes``), the
    ``value`` (data as YAML would give it), and ``form``, which names it in problems as it was written:
    ``keyword`` (``archgen.build(..., head__classes=10)``: ``where`` is ``head__classes=10``) or
    ``mapping`` (``overrides={"head.classes": 10}``). A ``--set`` is a plain ``FIELD=VALUE`` string."""

    field: str
    value: Any
    where: str
    form: Literal["keyword", "mapping"] = "mapping"

    @classmethod
    def keyword(cls, name: str, field: str, value: Any) -> Override:
        """``name=value`` as a keyword argument, setting ``field`` (``head__classes`` sets head.classes)."""
        return cls(field, value, f"{name}={value!r}", "keyword")

    @classmethod
    def item(cls, key: Any, value: Any) -> Override:
        """One item of an ``overrides={...}`` mapping."""
        return cls(str(key), value, f"overrides={{{key!r}: {value!r}}}", "mapping")

    def assign(self, field: str, text: str) -> str:
        """How this caller sets ``field`` to ``text`` (said in messages: set all of a list)."""
        if self.form == "keyword":
            return f"{field.replace('.', '__')}={text}"
        return f"overrides={{'{field}': {text}}}"


# '--set FIELD=VALUE' strings (as the command line gives them), or overrides as the Python API takes them.
Overrides = Sequence[str | Override] | Mapping[str, Any] | None
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
        data, positions = _load_data(own, own_pos, folder, _root(folder), MAPPING_DISPLAY, (), 0, conflicts)
        parent = own.get("extends")
        if "name" not in data and isinstance(parent, str):  # no file name to default to: the parent's
            name = (catalog.shipped_ref(parent) or Path(parent).stem).replace("-", "_")
            if _IDENTIFIER.fullmatch(name):
                data["name"] = name
        _refuse_conflicts(data, positions, conflicts)
    else:
        data, positions = load_data(Path(source))
    data, positions = apply_overrides(data, positions, overrides)
    return validate(data, positions), positions


def _root(folder: Path) -> Path:
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
        root = catalog.shipped_dir() if catalog.is_shipped(path) else _root(path.parent)
    except (OSError, ValueError) as exc:  # a NUL character in the path, a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(Problem(display, None, None, "", f"cannot read file: {reason}")) from None
    conflicts: list[Problem] = []
    data, positions = _load_file(path, root, display, (), 0, conflicts)
    if "name" not in data:
        name = path.stem.replace("-", "_")
        if not _IDENTIFIER.fullmatch(name):
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
    _refuse_conflicts(data, positions, conflicts)
    return data, positions


def _refuse_conflicts(data: Data, positions: Positions, conflicts: list[Problem]) -> None:
    """Tweaks that contradict their file are refused together with the spec's other problems (an
    unknown tweak beside them, a misspelt field), in reading order."""
    if not conflicts:
        return
    problems = list(conflicts)
    try:
        validate(data, positions)
    except SpecError as exc:
        problems += exc.problems
    raise SpecError(_reading_order(problems))


def _reading_order(problems: list[Problem]) -> list[Problem]:
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
    return _load_data(own, own_pos, path.parent, root, display, (*chain, real), depth, conflicts)


def _load_data(
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
            own = {**own, "tweaks": _union(parent.get("tweaks", []), own["tweaks"])}
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
        raise refuse(f"expected a spec name or a relative file path; received {_received(ref)}")
    name = catalog.shipped_ref(ref)
    if name is not None:
        shipped = catalog.shipped(name)
        if shipped is None:
            raise refuse(catalog.unknown_shipped(printable(_short(name))))
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
                f"'{printable(_short(ref))}' is an absolute path: 'extends' takes a path relative to this file "
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
        raise refuse(f"'{printable(_short(ref))}' is not a usable file path ({reason})") from None
    return path, real, root, str(Path(display).parent / written)


def _outside(ref: str, root: Path, through_link: bool) -> str:
    """Why a parent outside the project root is refused, and how to make a folder above reachable."""
    shown = printable(_short(ref))
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


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


SHORTHAND_KEYS = ("stem", "block", "head")


def normalize(data: Data) -> Data:
    """Expand ``stem: deep`` to ``{type: deep}`` (also for stage blocks and the
    shortcut) so that a child's mapping merges over a parent's shorthand."""

    def typed(value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    def block(value: Any) -> Any:
        value = typed(value)
        if isinstance(value, dict) and "shortcut" in value:
            value = {**value, "shortcut": typed(value["shortcut"])}
        return value

    out = {k: typed(v) if k in ("stem", "head") else v for k, v in data.items()}
    if "block" in out:
        out["block"] = block(out["block"])
    if isinstance(out.get("stages"), list):
        out["stages"] = [
            {**st, "block": block(st["block"])} if isinstance(st, dict) and "block" in st else st
            for st in out["stages"]
        ]
    return out


def _union(a: Any, b: Any) -> Any:
    if not (isinstance(a, list) and isinstance(b, list)):
        return b
    return a + [t for t in b if t not in a]


# What each tweak sets: (path, value). B only concerns bottleneck blocks.
TWEAKS: dict[str, str] = {
    "B": "stride on the 3x3 conv of bottleneck blocks (block.stride_at: 3x3)",
    "C": "deep stem of three 3x3 convs (stem.type: deep)",
    "D": "average-pool shortcut (block.shortcut.type: avgpool)",
}


def apply_tweaks(
    merged: Data,
    own: Data,
    tweaks: Any,
    own_pos: dict[Path_, Pos],
    display: str,
    conflicts: list[Problem] | None = None,
) -> Data:
    """Expand the Bag-of-Tricks shorthand, refusing contradictions in the same file: each is added to
    ``conflicts`` (the tweak is then not applied), or raised where that is None."""
    if not isinstance(tweaks, list):
        return merged  # validation reports the type
    merged = dict(merged)
    written = Positions([own_pos])

    def conflict(tweak: str, path: Path_, wanted: str, found: Any) -> None:
        pos = written.find(path) if path[:1] in own_pos else None
        pos = pos or own_pos.get(("tweaks",)) or Pos(display, None, None)
        shown = found if isinstance(found, str) else yaml_text(found)
        problem = Problem(
            pos.file,
            pos.line,
            pos.column,
            dotted(path),
            f"tweak {tweak} means {wanted}, but this file sets {dotted(path)}: {printable(_short(shown))}",
        )
        if conflicts is None:
            raise SpecError(problem)
        conflicts.append(problem)

    own_block: Data = own["block"] if isinstance(own.get("block"), dict) else {}
    for tweak in tweaks:
        if tweak == "B":
            found = own_block.get("stride_at")
            if found not in (None, "3x3"):
                conflict("B", ("block", "stride_at"), "stride_at: 3x3", found)
                continue
            block = merged.get("block")
            if isinstance(block, dict) and block.get("type") == "bottleneck":
                merged["block"] = {**block, "stride_at": "3x3"}
        elif tweak == "C":
            stem: Any = own.get("stem")
            found = stem.get("type") if isinstance(stem, dict) else stem
            if found not in (None, "deep"):
                conflict("C", ("stem", "type"), "stem.type: deep", found)
                continue
            alien = [k for k in stem if k not in spec_models.DeepStem.model_fields] if isinstance(stem, dict) else []
            if alien:  # e.g. stem: {width: 16}, a classic stem's field that the deep stem would drop
                conflict("C", ("stem", alien[0]), f"stem.type: deep (which has no '{alien[0]}')", stem[alien[0]])
                continue
            old = merged.get("stem")
            old = {"type": old} if isinstance(old, str) else (old or {})
            if old.get("type") != "deep":
                kept = {k: old[k] for k in ("pool", "pool_padding", "norm_act") if k in old}
                merged["stem"] = {"type": "deep", **kept}
        elif tweak == "D":
            shortcut = own_block.get("shortcut")
            found = shortcut.get("type") if isinstance(shortcut, dict) else shortcut
            if found not in (None, "avgpool"):
                conflict("D", ("block", "shortcut", "type"), "shortcut.type: avgpool", found)
                continue
            block = merged.get("block")
            if isinstance(block, dict) and block.get("type") in ("basic", "bottleneck"):
                merged["block"] = {**block, "shortcut": {"type": "avgpool"}}
    return merged


def apply_overrides(data: Data, positions: Positions, overrides: Overrides) -> tuple[Data, Positions]:
    """Set ``field.path=value`` pairs (value parsed as YAML) on the merged data. Every problem an
    override causes is located at it, named as it was written (file ``--set FIELD=VALUE``, or
    ``head__classes=10`` for a keyword of the Python API, ``overrides={'head.classes': 10}`` for an item
    of a mapping), no line."""
    if not overrides:
        return data, positions
    given = [Override.item(k, v) for k, v in overrides.items()] if isinstance(overrides, Mapping) else overrides
    parsed: list[tuple[Path_, Any, str]] = []
    assign: dict[str, Callable[[str, str], str]] = {}  # how each override's caller sets a field, by its 'where'
    for raw in given:
        if isinstance(raw, Override):
            key, value, where = raw.field, raw.value, raw.where
            assign[where] = raw.assign
        else:
            key, value = parse_override(str(raw))
            where = f"--set {raw}"
            assign[where] = _set_option
        parsed.append((_override_path(key, where), value, where))
    for path, value, where in parsed:
        if path[0] == "extends":  # the chain was read with the file: an override would be kept and ignored
            raise SpecError(
                Problem(
                    where,
                    None,
                    None,
                    dotted(path),
                    "'extends' cannot be set by an override: the parents are read with the file, before "
                    "overrides apply; edit 'extends' in the file, or start a spec from that parent with "
                    f"'archgen new NAME --from {_short(str(value), 40) if isinstance(value, str) else 'PARENT'}'",
                )
            )
    # Overrides of tweaks go first, and the tweaks they add are expanded as a file's are: the other
    # overrides then win over them, as a file's fields win over its parents'.
    tweaks = [item for item in parsed if item[0][0] == "tweaks"]
    others = [item for item in parsed if item[0][0] != "tweaks"]
    layer: dict[Path_, Pos] = {}
    data = dict(data)
    before = data.get("tweaks")

    def set_all(data: Data, chosen: list[tuple[Path_, Any, str]]) -> Data:
        for path, value, where in chosen:
            value, value_pos = plain_data(value, where, path)  # the value's own fields, for Positions.exact
            data = _set_path(data, path, value, where, layer, assign[where])
            layer.update(value_pos)
        return data

    data = set_all(data, tweaks)
    if tweaks:
        data = _override_tweaks(data, before, tweaks[-1][2])
    data = set_all(data, others)
    return data, positions.over(layer)


def _set_option(field: str, text: str) -> str:
    """How the command line sets ``field`` to ``text``."""
    return f"--set '{field}={text}'"


def _override_tweaks(data: Data, before: Any, where: str) -> Data:
    """Expand the tweaks an override added; one it took away cannot be undone (its fields are set)."""
    old = before if isinstance(before, list) else []
    new = data.get("tweaks")
    if not isinstance(new, list):
        return data  # validation reports the type
    gone = [t for t in old if t not in new]
    if gone:
        raise SpecError(
            Problem(
                where,
                None,
                None,
                "tweaks",
                f"tweak {gone[0]} cannot be taken back by an override: its fields were set when the file was "
                f"read ({TWEAKS.get(str(gone[0]), gone[0])}); set those fields instead",
            )
        )
    return apply_tweaks(data, {}, [t for t in new if t not in old], {}, where)


def _override_path(key: str, where: str) -> Path_:
    parts = key.split(".")
    if not all(parts):
        raise SpecError(
            Problem(where, None, None, key, f"expected a dotted field path such as stages.2.depth; received {key!r}")
        )
    return tuple(int(p) if p.isascii() and p.isdigit() else p for p in parts)


def parse_override(raw: str) -> tuple[str, Any]:
    """Split ``field.path=value``; the value is parsed as a YAML scalar or flow collection."""
    where = f"--set {raw}"
    key, sep, text = raw.partition("=")
    if not sep or not key.strip():
        raise SpecError(Problem(where, None, None, raw, "expected FIELD=VALUE, e.g. stages.2.depth=36"))
    try:
        value, _ = parse_yaml(f"v: {text}" if text.strip() else "v: null", where)
    except SpecError as exc:
        raise SpecError(Problem(where, None, None, key.strip(), exc.message)) from None
    if list(value) != ["v"]:  # a line break in the value started a second field
        raise SpecError(Problem(where, None, None, key.strip(), "expected one YAML value on one line"))
    return key.strip(), value["v"]


def _set_path(
    data: Any,
    path: Path_,
    value: Any,
    where: str,
    layer: dict[Path_, Pos],
    assign: Callable[[str, str], str] = _set_option,
    done: Path_ = (),
) -> Any:
    """``data`` with ``value`` at ``path``; ``done`` is the path walked to reach ``data``. A mapping the
    override creates on its way is added to ``layer``: what is wrong inside it is the override's doing.
    ``assign``: how the override's caller sets a field (said where a list must be set whole)."""
    head, rest = path[0], path[1:]
    name = dotted(done)

    def refuse(message: str) -> SpecError:
        return SpecError(Problem(where, None, None, dotted((*done, *path)), message))

    if head == "stages" and not done and isinstance(data, dict):
        try:  # a preset becomes its list of stages, so that stages.N can be indexed
            data = {**data, "stages": expand_stages(data.get("stages"))}
        except ValueError as exc:  # stages: 7 is no preset: the override cannot reach into it
            raise refuse(f"cannot set inside 'stages': {exc}") from None
    if isinstance(data, list):
        if not isinstance(head, int) or head >= len(data):
            # stages.depth means stages.N.depth; stages.7.depth (or -1) names an N that is not there
            index = isinstance(head, int) or head.removeprefix("-").isdigit()
            wanted = dotted(("N", *rest) if index else ("N", head, *rest))
            if not data:
                raise refuse(f"'{name}' is an empty list: there is no {name}.{wanted} to set; received {head!r}")
            noun = "stage" if done == ("stages",) else "item"
            raise refuse(
                f"'{name}' is a list of {len(data)} {noun}{'s' if len(data) > 1 else ''}: expected "
                f"{name}.{wanted} with N from 0 to {len(data) - 1}; received {head!r}"
            )
        items = list(data)
        items[head] = _set_path(items[head], rest, value, where, layer, assign, (*done, head)) if rest else value
        return items
    if not isinstance(data, dict):
        raise refuse(f"'{name}' is {_received(data)}, not a mapping: it has no field '{head}'")
    if isinstance(head, int):  # no mapping of the language has a numeric field
        after = f"'{name}' is not a list: expected a field name after '{name}.'" if done else "expected a field name"
        raise refuse(f"{after}; received {head}")
    out = dict(data)
    if not rest:
        if value is None:
            out.pop(head, None)
        else:
            out[head] = value
        return out
    child = out.get(head)
    if isinstance(child, str) and head in (*SHORTHAND_KEYS, "shortcut"):
        child = {"type": child}
    if child is None:
        if isinstance(rest[0], int):
            whole = dotted((*done, head))
            raise refuse(f"'{whole}' is not set, so it has no item {rest[0]}: set all of it ({assign(whole, '[...]')})")
        child = {}
        layer[(*done, head)] = Pos(where, None, None)
    out[head] = _set_path(child, rest, value, where, layer, assign, (*done, head))
    return out


def validate(data: Data, positions: Positions) -> Spec:
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc, data, positions)) from None


def _field_names() -> list[str]:
    names: set[str] = set()
    for obj in vars(spec_models).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            names.update(obj.model_fields)
    return sorted(names)


# Discriminator values pydantic inserts into error locations.
_VARIANT_TAGS = {spec_models.variant_tag(m) for u in spec_models.UNIONS.values() for m in spec_models.variants(u)}
_UNION_FIELDS = set(spec_models.UNIONS)
# Names pydantic gives the members of a union or a validator chain in error locations.
_INTERNAL = ("function-", "constrained-", "lax-or-strict", "json-or-python", "nullable", "tagged-union")


def _internal(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith(_INTERNAL) or part in ("str", "int", "list"))


def _data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Turn pydantic's error location into a data path (dropping union tags and validator names)."""
    path: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            path.append(part)
            cur = cur[part]
            continue
        if _internal(part):
            continue
        if part in _VARIANT_TAGS and path and path[-1] in _UNION_FIELDS:
            continue
        if isinstance(cur, dict) and cur.get("type") == part:
            continue
        if isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            path.append(part)
            cur = cur[part]
            continue
        path.append(part)
        cur = None
    return tuple(path)


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives an annotation stands for (Annotated and unions flattened)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _unwrap(arg)]
    return [tp]


def _tag(tp: Any) -> str | None:
    """The ``type`` a variant model is chosen by, if it is one."""
    if isinstance(tp, type) and issubclass(tp, BaseModel) and "type" in tp.model_fields:
        args = get_args(tp.model_fields["type"].annotation)
        return args[0] if len(args) == 1 else None
    return None


def _models_at(loc: tuple[Any, ...]) -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    """The models whose fields apply at a (pydantic) location, and all variants of the union there."""
    current: list[Any] = [Spec]
    variants: list[Any] = []
    for part in loc:
        if _internal(part):
            continue
        models = [tp for tp in current if isinstance(tp, type) and issubclass(tp, BaseModel)]
        tagged = [tp for tp in models if _tag(tp) == part]
        if tagged:  # pydantic names the variant it validated against
            current = tagged
            continue
        nxt: list[Any] = []
        for tp in current:
            if tp in models and isinstance(part, str) and part in tp.model_fields:
                nxt += _unwrap(tp.model_fields[part].annotation)
            elif get_origin(tp) in (list, tuple) and isinstance(part, int):
                nxt += [m for arg in get_args(tp) if arg is not Ellipsis for m in _unwrap(arg)]
        current = nxt
        variants = [tp for tp in current if _tag(tp)]
    models = [tp for tp in current if isinstance(tp, type) and issubclass(tp, BaseModel)]
    return models, variants


def _unknown_field(key: str, loc: tuple[Any, ...]) -> str:
    """'unknown field' with the closest field of the same model, or the variant the field belongs to."""
    import difflib  # only a mistake needs it

    models, variants = _models_at(loc)
    fields = {f for m in models for f in m.model_fields} if models else set(_field_names())
    others = sorted(fields - {key})
    close = difflib.get_close_matches(key, others, n=1, cutoff=0.6)
    close = close or [f for f in others if min(len(f), len(key)) >= 3 and (key.startswith(f) or f.startswith(key))]
    message = f"unknown field '{key}'"
    if close:
        return f"{message}; did you mean '{close[0]}'?"
    owners = [_tag(v) for v in variants if key in v.model_fields and v not in models]
    if owners and len(models) == 1 and _tag(models[0]):
        return f"{message}: type {_tag(models[0])} has no '{key}' (type {' and '.join(map(str, owners))} has)"
    return message


def _at(data: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _inherited(path: Path_, data: Data) -> bool:
    """An error in a stage's block that comes from the top-level block (merged into every stage)."""
    if len(path) < 3 or path[0] != "stages" or path[2] != "block":
        return False
    own = _at(data, path[:3])
    if own is None:
        return True
    return isinstance(own, dict) and len(path) > 3 and path[3] not in own and path[3] != "type"


def _number(value: Any) -> str:
    """A bound as users write it: 0 and 16, not 0.0 and 16.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _received(value: Any) -> str:
    """What a field was given, as the end of 'expected X; received Y'."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime.date):  # YAML reads 2024-01-31 as a date
        return f"the date {value.isoformat()} (quote it to make it text)"
    return _short(yaml_text(value))  # as YAML writes it: true and null, not Python's True and None


# archgen's wording for pydantic's error types: what was expected ("; received ..." is added).
_EXPECTED = {
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "greater than or equal to"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "less than or equal to"),
}


def _message(err: Any, path: Path_) -> tuple[str, bool]:
    """archgen's message for one pydantic error, and whether it still needs '; received ...'."""
    import difflib  # only a mistake needs it

    kind, ctx, message = err["type"], err.get("ctx") or {}, err["msg"]
    if kind in _EXPECTED:
        return _EXPECTED[kind], True
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"expected a number {words} {_number(ctx[key])}", True
    if kind in ("too_short", "too_long"):
        count = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        bound = f"{'at least' if kind == 'too_short' else 'at most'} {count} item{'' if count == 1 else 's'}"
        return f"expected a list of {bound}; received {ctx['actual_length']}", False
    if kind == "string_too_long":
        return f"expected at most {ctx['max_length']} characters; received {len(err['input'])}", False
    if kind == "string_pattern_mismatch":
        if path == ("name",):
            return "expected an identifier (ASCII letters, digits and '_', not starting with a digit)", True
        return f"expected text matching {ctx['pattern']}", True
    if kind == "literal_error":
        return f"expected {ctx['expected']}", True
    if kind == "extra_forbidden":
        return _unknown_field(str(path[-1]) if path else "", tuple(err["loc"])[:-1]), False
    if kind == "missing":
        if path == ("name",):  # a file's name defaults to the file name: only a mapping can lack one
            return (
                "required field is missing (a mapping has no file name to default to, nor a parent in 'extends')",
                False,
            )
        return "required field is missing", False
    if kind == "union_tag_not_found":
        return "'type' is required here", False
    if kind == "union_tag_invalid":
        given = err["input"].get("type") if isinstance(err.get("input"), dict) else ctx["tag"]
        tag, expected = str(ctx["tag"]), str(ctx["expected_tags"])
        if not isinstance(given, str):  # type: true, type: 3 (type: null removes the field, in a child)
            return f"expected {expected}; received {_received(given)}", False
        close = difflib.get_close_matches(tag, [t.strip("'") for t in expected.split(", ")], n=1)
        return f"unknown type {tag!r}; expected {expected}" + (f"; did you mean '{close[0]}'?" if close else ""), False
    message = message.removeprefix("Value error, ")  # our own validators' messages
    if kind == "value_error" and isinstance(err.get("input"), dict):  # a rule over a mapping's fields
        return message, False
    return message.replace("Input should be", "expected"), "received" not in message


# At most this many problems are listed; then one line says how many more there are. A screenful: a
# spec is a few dozen lines, so a hand-written one with every field wrong stays under it, while a
# generated or mangled file with thousands of unknown keys does not flood the terminal (or a CI log)
# with lines nobody reads; fixing the first ones and validating again shows the next.
MAX_PROBLEMS = 50


def _problems(exc: ValidationError, data: Data, positions: Positions) -> list[Problem]:
    """archgen's problems for pydantic's errors: one per mistake, in reading order, at most MAX_PROBLEMS
    of them and then a line counting the rest.

    Linear in the number of errors (dicts keep the order), and the did-you-mean of an unknown field,
    the costly part, is worked out only for the fields that are listed or that may explain a missing
    one: 100,000 unknown keys are refused in seconds."""
    found: dict[tuple[Path_, str], tuple[Any, ...] | None] = {}  # (path, message) -> an unknown field's loc
    for err in exc.errors(include_url=False):
        path = _data_path(tuple(err["loc"]), data)
        if err["type"] == "extra_forbidden":  # one problem per unknown key, its message made when needed
            found.setdefault((path, _UNKNOWN), tuple(err["loc"])[:-1])
            continue
        message, received = _message(err, path)
        if err["type"] == "union_tag_invalid" and isinstance(_at(data, path), dict | str):  # str: an override's
            path = (*path, "type")
        if received and "input" in err:
            message += f"; received {_received(err['input'])}"
        if path == ("head", "classes") and err["type"] == "greater_than":  # timm's num_classes=0
            message += "; for a network without a classifier, write head: features (it returns feature maps)"
        found[(path, message)] = None
    if any(p[:1] == ("block",) for p, _ in found):  # one report per mistake, at the top-level block
        found = {(p, m): loc for (p, m), loc in found.items() if not _inherited(p, data)}
    messages: dict[Path_, str] = {}  # the unknown fields' messages made so far

    def unknown(path: Path_) -> str:
        if path not in messages:
            messages[path] = _unknown_field(str(path[-1]) if path else "", found[(path, _UNKNOWN)] or ())
        return messages[path]

    # 'widht' is unknown and so 'width' is missing: the did-you-mean says both.
    missing = {p for p, m in found if m.startswith("required field is missing") and p}
    if missing:
        by_parent: dict[Path_, set[str]] = {}
        for p in missing:
            by_parent.setdefault(p[:-1], set()).add(str(p[-1]))
        meant = set()
        for p, m in found:  # only an unknown key beside a missing field can name it
            if m == _UNKNOWN and p and p[:-1] in by_parent:
                for name in by_parent[p[:-1]]:
                    if _may_suggest(str(p[-1]), name) and unknown(p).endswith(f"did you mean '{name}'?"):
                        meant.add((*p[:-1], name))
        found = {
            (p, m): loc
            for (p, m), loc in found.items()
            if not (m.startswith("required field is missing") and p in meant)
        }
    located = []
    for path, message in found:
        located.append((positions.find(path) or Pos("<spec>", None, None), path, message))
    # In reading order (as _reading_order sorts problems).
    files = {file: i for i, file in enumerate(dict.fromkeys(pos.file for pos, _, _ in located))}
    located.sort(key=lambda item: (item[0].line is None, files[item[0].file], item[0].line or 0, item[0].column or 0))
    out = [
        Problem(pos.file, pos.line, pos.column, dotted(path), unknown(path) if message == _UNKNOWN else message)
        for pos, path, message in located[:MAX_PROBLEMS]
    ]
    more = len(located) - MAX_PROBLEMS
    if more > 0:
        message = f"... and {more:,} more problem{'s' if more > 1 else ''} (the first {MAX_PROBLEMS} are listed)"
        out.append(Problem(located[MAX_PROBLEMS][0].file, None, None, "", message))
    return out


_UNKNOWN = "unknown field"  # in _problems, an unknown key whose message is not made yet


def _may_suggest(key: str, name: str) -> bool:
    """Whether ``_unknown_field`` could suggest ``name`` for ``key`` (a cheap bound on its two rules)."""
    import difflib  # only a mistake needs it

    if min(len(key), len(name)) >= 3 and (key.startswith(name) or name.startswith(key)):
        return True
    matcher = difflib.SequenceMatcher(None, key, name)
    return matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6
