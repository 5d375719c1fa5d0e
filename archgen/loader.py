"""From a YAML file (plus ``extends`` parents and ``--set`` overrides) to a Spec.

Order of application, each step over the previous one:
1. the parent named by ``extends`` (recursively), relative to the child file
   and never outside the folder of the spec being loaded;
2. the file's own fields (``merge.py`` rules);
3. the file's ``tweaks`` (B, C, D), which may not contradict a field written
   in the same file;
4. the ``overrides`` (``field.path=value``, value parsed as YAML).
Errors name file, line and field; all validation errors are reported together.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from . import spec as spec_models
from .errors import Problem, SpecError, dotted, printable
from .merge import merge
from .spec import Spec, expand_stages
from .yamlsource import Path_, Pos, Positions, parse_yaml, read_yaml

MAX_EXTENDS_DEPTH = 16
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
Overrides = list[str] | tuple[str, ...] | Mapping[str, Any] | None


def load_spec(path: str | Path, overrides: Overrides = None) -> Spec:
    """Load, merge, override and validate a spec file. Raises SpecError."""
    spec, _ = load_spec_with_positions(path, overrides)
    return spec


def load_spec_with_positions(path: str | Path, overrides: Overrides = None) -> tuple[Spec, Positions]:
    path = Path(path)
    try:
        root = path.resolve().parent
    except (OSError, ValueError) as exc:  # a NUL character in the path, a symlink loop
        raise SpecError(Problem(str(path), None, None, "", f"cannot read file: {exc}")) from None
    data, positions = _load_file(path, root, str(path), ())
    if "name" not in data:
        name = path.stem.replace("-", "_")
        if not _IDENTIFIER.fullmatch(name):
            raise SpecError(
                Problem(
                    str(path),
                    1,
                    1,
                    "name",
                    f"the file name {name!r} is not an identifier (letters, digits and '_', not starting "
                    "with a digit): rename the file or set 'name:'",
                )
            )
        data["name"] = name
    data, positions = apply_overrides(data, positions, overrides)
    return validate(data, positions), positions


def _load_file(path: Path, root: Path, display: str, chain: tuple[Path, ...]) -> tuple[dict, Positions]:
    real = path.resolve()
    own, own_pos = read_yaml(path, display)
    own = normalize(own)
    positions = Positions([own_pos])
    parent_ref = own.pop("extends", None)
    tweaks = own.get("tweaks", [])
    if parent_ref is None:
        merged, positions = own, Positions([own_pos])
    else:
        where = own_pos.get(("extends",), Pos(display, None, None))

        def refuse(message: str) -> SpecError:  # problems of the reference are located at this 'extends'
            return SpecError(Problem(where.file, where.line, where.column, "extends", message))

        if not isinstance(parent_ref, str) or not parent_ref:
            raise refuse("expected a relative file path")
        try:
            parent_path = (path.parent / parent_ref).resolve()
            if not parent_path.is_relative_to(root):
                raise refuse(f"'{parent_ref}' lies outside the spec folder {root}")
            if not parent_path.exists():
                raise refuse(f"parent spec '{parent_ref}' not found")
            if not parent_path.is_file():
                raise refuse(f"parent spec '{parent_ref}' is not a regular file")
        except (OSError, ValueError) as exc:  # a NUL character, a name too long for the file system, ...
            if isinstance(exc, SpecError):
                raise
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise refuse(f"'{printable(_short(parent_ref))}' is not a usable file path ({reason})") from None
        if parent_path in (*chain, real):
            cycle = " -> ".join(p.name for p in (*chain, real, parent_path))
            raise refuse(f"'extends' cycle: {cycle}")
        if len(chain) >= MAX_EXTENDS_DEPTH:
            raise refuse(f"more than {MAX_EXTENDS_DEPTH} levels of 'extends'")
        parent_display = str(Path(display).parent / parent_ref)
        try:
            parent, parent_positions = _load_file(parent_path, root, parent_display, (*chain, real))
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
        merged = apply_tweaks(merged, own, tweaks, own_pos, display)
    return merged, positions


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


SHORTHAND_KEYS = ("stem", "block", "head")


def normalize(data: dict) -> dict:
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


def apply_tweaks(merged: dict, own: dict, tweaks: Any, own_pos: dict, display: str) -> dict:
    """Expand the Bag-of-Tricks shorthand, refusing contradictions in the same file."""
    if not isinstance(tweaks, list):
        return merged  # validation reports the type
    merged = dict(merged)

    def conflict(tweak: str, path: Path_, wanted: str, found: Any) -> SpecError:
        pos = own_pos.get(path) or own_pos.get(("tweaks",)) or Pos(display, None, None)
        return SpecError(
            Problem(
                pos.file,
                pos.line,
                pos.column,
                dotted(path),
                f"tweak {tweak} means {wanted}, but this file sets {dotted(path)}: {found}",
            )
        )

    own_block = own.get("block") if isinstance(own.get("block"), dict) else {}
    for tweak in tweaks:
        if tweak == "B":
            found = own_block.get("stride_at")
            if found not in (None, "3x3"):
                raise conflict("B", ("block", "stride_at"), "stride_at: 3x3", found)
            block = merged.get("block")
            if isinstance(block, dict) and block.get("type") == "bottleneck":
                merged["block"] = {**block, "stride_at": "3x3"}
        elif tweak == "C":
            stem = own.get("stem")
            found = stem.get("type") if isinstance(stem, dict) else stem
            if found not in (None, "deep"):
                raise conflict("C", ("stem", "type"), "stem.type: deep", found)
            alien = [k for k in stem if k not in spec_models.DeepStem.model_fields] if isinstance(stem, dict) else []
            if alien:  # e.g. stem: {width: 16}, a classic stem's field that the deep stem would drop
                raise conflict("C", ("stem", alien[0]), f"stem.type: deep (which has no '{alien[0]}')", stem[alien[0]])
            old = merged.get("stem")
            old = {"type": old} if isinstance(old, str) else (old or {})
            if old.get("type") != "deep":
                kept = {k: old[k] for k in ("pool", "pool_padding", "norm_act") if k in old}
                merged["stem"] = {"type": "deep", **kept}
        elif tweak == "D":
            shortcut = own_block.get("shortcut")
            found = shortcut.get("type") if isinstance(shortcut, dict) else shortcut
            if found not in (None, "avgpool"):
                raise conflict("D", ("block", "shortcut", "type"), "shortcut.type: avgpool", found)
            block = merged.get("block")
            if isinstance(block, dict) and block.get("type") in ("basic", "bottleneck"):
                merged["block"] = {**block, "shortcut": {"type": "avgpool"}}
    return merged


def apply_overrides(data: dict, positions: Positions, overrides: Overrides) -> tuple[dict, Positions]:
    """Set ``field.path=value`` pairs (value parsed as YAML) on the merged data."""
    if not overrides:
        return data, positions
    items: list[tuple[str, Any, str]] = []
    if isinstance(overrides, Mapping):
        items = [(str(k), v, f"{k}={v!r}") for k, v in overrides.items()]
    else:
        for raw in overrides:
            key, value = parse_override(str(raw))
            items.append((key, value, str(raw)))
    layer: dict[Path_, Pos] = {}
    data = dict(data)
    for key, value, raw in items:
        path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        data = _set_path(data, path, value, raw)
        layer[path] = Pos(f"--set {raw}", None, None)
    return data, positions.over(layer)


def parse_override(raw: str) -> tuple[str, Any]:
    """Split ``field.path=value``; the value is parsed as a YAML scalar or flow collection."""
    key, sep, text = raw.partition("=")
    if not sep or not key.strip():
        raise SpecError(Problem("--set", None, None, raw, "expected FIELD=VALUE, e.g. stages.2.depth=36"))
    try:
        value, _ = parse_yaml(f"v: {text}" if text.strip() else "v: null", "--set")
    except SpecError as exc:
        raise SpecError(Problem("--set", None, None, key, exc.message)) from None
    return key.strip(), value["v"]


def _set_path(data: Any, path: Path_, value: Any, raw: str) -> Any:
    head, rest = path[0], path[1:]
    if head == "stages" and isinstance(data, dict):
        try:  # a preset becomes its list of stages, so that stages.N can be indexed
            data = {**data, "stages": expand_stages(data.get("stages"))}
        except ValueError as exc:  # stages: 7 is no preset: the override cannot reach into it
            raise SpecError(
                Problem("--set", None, None, raw.partition("=")[0], f"cannot set inside 'stages': {exc}")
            ) from None
    if isinstance(data, list):
        if not isinstance(head, int) or head >= len(data):
            raise SpecError(
                Problem(
                    "--set", None, None, raw.partition("=")[0], f"index {head} is out of range (list of {len(data)})"
                )
            )
        out = list(data)
        out[head] = _set_path(out[head], rest, value, raw) if rest else value
        return out
    if not isinstance(data, dict):
        raise SpecError(
            Problem("--set", None, None, raw.partition("=")[0], f"'{head}' is set inside a value that is not a mapping")
        )
    out = dict(data)
    if not rest:
        if value is None:
            out.pop(str(head), None)
        else:
            out[str(head)] = value
        return out
    child = out.get(str(head))
    if isinstance(child, str) and str(head) in (*SHORTHAND_KEYS, "shortcut"):
        child = {"type": child}
    out[str(head)] = _set_path(child if child is not None else {}, rest, value, raw)
    return out


def validate(data: dict, positions: Positions) -> Spec:
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
_VARIANT_TAGS = {"classic", "deep", "none", "basic", "bottleneck", "plain", "classifier", "features"}
_UNION_FIELDS = {"stem", "block", "head"}
# Names pydantic gives the members of a union or a validator chain in error locations.
_INTERNAL = ("function-", "constrained-", "lax-or-strict", "json-or-python", "nullable", "tagged-union")


def _internal(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith(_INTERNAL) or part in ("str", "int", "list"))


def _data_path(loc: tuple, data: Any) -> Path_:
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


def _models_at(loc: tuple) -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
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


def _unknown_field(key: str, loc: tuple) -> str:
    """'unknown field' with the closest field of the same model, or the variant the field belongs to."""
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
        return f"{message}: type {_tag(models[0])} has no '{key}' (type {' and '.join(owners)} has)"
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


def _inherited(path: Path_, data: dict) -> bool:
    """An error in a stage's block that comes from the top-level block (merged into every stage)."""
    if len(path) < 3 or path[0] != "stages" or path[2] != "block":
        return False
    own = _at(data, path[:3])
    if own is None:
        return True
    return isinstance(own, dict) and len(path) > 3 and path[3] not in own and path[3] != "type"


def _problems(exc: ValidationError, data: dict, positions: Positions) -> list[Problem]:
    problems: list[tuple[Path_, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _data_path(loc, data)
        message = err["msg"]
        received = "input" in err and not isinstance(err["input"], dict | list)
        if err["type"] == "extra_forbidden":
            message, received = _unknown_field(str(path[-1]) if path else "", loc[:-1]), False
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "union_tag_not_found":
            message = "'type' is required here"
        elif err["type"] == "union_tag_invalid":
            tag, expected = str(err["ctx"]["tag"]), str(err["ctx"]["expected_tags"])
            close = difflib.get_close_matches(tag, [t.strip("'") for t in expected.split(", ")], n=1)
            message = f"unknown type {tag!r}; expected {expected}" + (f"; did you mean '{close[0]}'?" if close else "")
            received = False
            if isinstance(_at(data, path), dict):
                path = (*path, "type")
        elif err["type"] == "literal_error":
            message = message.replace("Input should be", "expected")
        elif err["type"] == "string_pattern_mismatch" and path == ("name",):
            message = "not an identifier (ASCII letters, digits and '_', not starting with a digit)"
        message = message.removeprefix("Value error, ")
        if received and "received" not in message:
            message += f"; received {err['input']!r}"
        if (path, message) not in problems:
            problems.append((path, message))
    if any(p[:1] == ("block",) for p, _ in problems):  # one report per mistake, at the top-level block
        problems = [(p, m) for p, m in problems if not _inherited(p, data)]
    # 'widht' is unknown and so 'width' is missing: the did-you-mean says both.
    meant = {(*p[:-1], m.split("did you mean '")[1][:-2]) for p, m in problems if "did you mean '" in m}
    problems = [(p, m) for p, m in problems if not (m == "required field is missing" and p in meant)]
    out = []
    for path, message in problems:
        pos = positions.find(path) or Pos("<spec>", None, None)
        out.append(Problem(pos.file, pos.line, pos.column, dotted(path), message))
    return out
