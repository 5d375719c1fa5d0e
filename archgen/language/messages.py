"""Step 4 of loading: validation by the spec models, with pydantic's errors turned into problems that
name file, line and field, in the spec's words (the field a typo meant, the values allowed)."""

from __future__ import annotations

import datetime
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import Problem, SpecError, dotted
from . import spec as spec_models
from .spec import Spec
from .yamlsource import Data, Path_, Pos, Positions, yaml_text


def short(text: str, limit: int = 80) -> str:
    """Text cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


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


def received(value: Any) -> str:
    """What a field was given, as the end of 'expected X; received Y'."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime.date):  # YAML reads 2024-01-31 as a date
        return f"the date {value.isoformat()} (quote it to make it text)"
    return short(yaml_text(value))  # as YAML writes it: true and null, not Python's True and None


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
            return f"expected {expected}; received {received(given)}", False
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
        message, with_input = _message(err, path)
        if err["type"] == "union_tag_invalid" and isinstance(_at(data, path), dict | str):  # str: an override's
            path = (*path, "type")
        if with_input and "input" in err:
            message += f"; received {received(err['input'])}"
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
    # In reading order (as reading_order sorts problems).
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
