"""Step 3 of loading: ``--set FIELD=VALUE`` overrides (or the Python API's keywords and mappings) set
on the merged data, each problem named as its override was written."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import Problem, SpecError, dotted
from .messages import received, short
from .spec import expand_stages
from .tweaks import SHORTHAND_KEYS, TWEAKS, apply_tweaks
from .yamlsource import Data, Path_, Pos, Positions, parse_yaml, plain_data


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
        parsed.append((override_path(key, where), value, where))
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
                    f"'archgen new NAME --from {short(str(value), 40) if isinstance(value, str) else 'PARENT'}'",
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


def override_path(key: str, where: str) -> Path_:
    """A dotted field path as data keys (``stages.2.depth``: the list index as an int); SpecError,
    located at ``where``, for an empty part."""
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
        raise refuse(f"'{name}' is {received(data)}, not a mapping: it has no field '{head}'")
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
