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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import spec as spec_models
from .errors import Problem, SpecError, dotted
from .merge import merge
from .spec import Spec, expand_stages
from .yamlsource import Path_, Pos, Positions, parse_yaml, read_yaml

MAX_EXTENDS_DEPTH = 16
Overrides = list[str] | tuple[str, ...] | Mapping[str, Any] | None


def load_spec(path: str | Path, overrides: Overrides = None) -> Spec:
    """Load, merge, override and validate a spec file. Raises SpecError."""
    spec, _ = load_spec_with_positions(path, overrides)
    return spec


def load_spec_with_positions(path: str | Path, overrides: Overrides = None) -> tuple[Spec, Positions]:
    path = Path(path)
    root = path.resolve().parent
    data, positions = _load_file(path, root, str(path), ())
    data.setdefault("name", path.stem.replace("-", "_"))
    data, positions = apply_overrides(data, positions, overrides)
    return validate(data, positions), positions


def _load_file(path: Path, root: Path, display: str, chain: tuple[Path, ...]) -> tuple[dict, Positions]:
    real = path.resolve()
    if real in chain:
        cycle = " -> ".join(p.name for p in (*chain, real))
        raise SpecError(Problem(display, None, None, "extends", f"'extends' cycle: {cycle}"))
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise SpecError(Problem(display, None, None, "extends", f"more than {MAX_EXTENDS_DEPTH} levels of 'extends'"))
    own, own_pos = read_yaml(path, display)
    own = normalize(own)
    positions = Positions([own_pos])
    parent_ref = own.pop("extends", None)
    tweaks = own.get("tweaks", [])
    if parent_ref is None:
        merged, positions = own, Positions([own_pos])
    else:
        where = own_pos.get(("extends",), Pos(display, None, None))
        if not isinstance(parent_ref, str) or not parent_ref:
            raise SpecError(Problem(where.file, where.line, where.column, "extends", "expected a relative file path"))
        parent_path = (path.parent / parent_ref).resolve()
        if not parent_path.is_relative_to(root):
            raise SpecError(
                Problem(
                    where.file,
                    where.line,
                    where.column,
                    "extends",
                    f"'{parent_ref}' lies outside the spec folder {root}",
                )
            )
        if not parent_path.is_file():
            raise SpecError(
                Problem(where.file, where.line, where.column, "extends", f"parent spec '{parent_ref}' not found")
            )
        parent_display = str(Path(display).parent / parent_ref)
        parent, parent_positions = _load_file(parent_path, root, parent_display, (*chain, real))
        parent.pop("name", None)  # a name belongs to its file
        if "tweaks" in own:  # tweaks accumulate: the child's add to the parent's
            own = {**own, "tweaks": _union(parent.get("tweaks", []), own["tweaks"])}
        merged = merge(parent, own)
        positions = parent_positions.over(own_pos)
    if tweaks:
        merged = apply_tweaks(merged, own, tweaks, own_pos, display)
    return merged, positions


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
        data = {**data, "stages": expand_stages(data.get("stages"))}
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


def _data_path(loc: tuple, data: Any) -> Path_:
    """Turn pydantic's error location into a data path (dropping union tags)."""
    path: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict):
            if part in cur:
                path.append(part)
                cur = cur[part]
            elif cur.get("type") == part or part in _VARIANT_TAGS:
                continue
            else:
                path.append(part)
                cur = None
        elif isinstance(cur, list) and isinstance(part, int):
            path.append(part)
            cur = cur[part] if part < len(cur) else None
        elif isinstance(part, str) and cur is not None and part in ("str", "int", "list", "dict"):
            continue
        else:
            path.append(part)
            cur = None
    return tuple(path)


def _problems(exc: ValidationError, data: dict, positions: Positions) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = _data_path(loc, data)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            key = str(path[-1]) if path else ""
            close = difflib.get_close_matches(key, _field_names(), n=1, cutoff=0.6)
            message = f"unknown field '{key}'" + (f"; did you mean '{close[0]}'?" if close else "")
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "union_tag_not_found":
            message = "'type' is required here"
        elif err["type"] in ("literal_error", "union_tag_invalid"):
            message = message.replace("Input should be", "expected")
            if "input" in err and not isinstance(err["input"], dict | list):
                message += f"; received {err['input']!r}"
        elif "input" in err and not isinstance(err["input"], dict | list):
            message = f"{message}; received {err['input']!r}"
        message = message.removeprefix("Value error, ")
        key = (path, message)
        if key in seen:
            continue
        seen.add(key)
        pos = positions.find(path) or Pos("<spec>", None, None)
        problems.append(Problem(pos.file, pos.line, pos.column, dotted(path), message))
    return problems
