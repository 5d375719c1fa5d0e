"""Safe YAML reading that remembers where every value came from.

Only plain data is built (SafeLoader tags). Anchors and aliases are refused
outright (they are the vector of "billion laughs" and ``extends`` covers
reuse), as are duplicate keys, non-string keys, deep nesting and large files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

MAX_BYTES = 1 << 20
MAX_DEPTH = 32

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Pos:
    file: str
    line: int | None
    column: int | None


@dataclass
class Positions:
    """Where each field path was written, searched innermost layer first."""

    layers: list[dict[Path_, Pos]] = field(default_factory=list)

    def over(self, layer: dict[Path_, Pos]) -> Positions:
        return Positions([layer, *self.layers])

    def find(self, path: Path_) -> Pos | None:
        for k in range(len(path), -1, -1):
            for layer in self.layers:
                pos = layer.get(path[:k])
                if pos is not None:
                    return pos
        return None


def _mark_pos(display: str, mark: Any) -> Pos:
    if mark is None:
        return Pos(display, None, None)
    return Pos(display, mark.line + 1, mark.column + 1)


def _fail(display: str, mark: Any, message: str, fieldname: str = "") -> SpecError:
    pos = _mark_pos(display, mark)
    return SpecError(Problem(pos.file, pos.line, pos.column, fieldname, message))


def read_yaml(path: Path, display: str) -> tuple[Any, dict[Path_, Pos]]:
    """Parse one YAML file into plain data plus the position of every path."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(Problem(display, None, None, "", f"cannot read file: {exc.strerror or exc}")) from None
    if len(raw) > MAX_BYTES:
        raise SpecError(
            Problem(display, None, None, "", f"file is larger than {MAX_BYTES} bytes; a spec is a few dozen lines")
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            Problem(display, line, None, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
        ) from None
    return parse_yaml(text, display)


def parse_yaml(text: str, display: str) -> tuple[Any, dict[Path_, Pos]]:
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _fail(display, event.start_mark, "YAML anchors and aliases are not allowed; use 'extends'")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if "\\t" in message or "'\\t'" in str(exc):
            message = "tab character: YAML indentation must use spaces"
        raise _fail(display, mark, f"YAML syntax error: {message}") from None
    except yaml.YAMLError as exc:
        raise SpecError(Problem(display, None, None, "", f"YAML error: {exc}")) from None
    except RecursionError:
        raise SpecError(Problem(display, None, None, "", "nesting is too deep")) from None
    if node is None:
        raise SpecError(Problem(display, 1, 1, "", "the file is empty; a spec is a YAML mapping"))
    positions: dict[Path_, Pos] = {}
    data = _build(node, (), display, positions, 0)
    if not isinstance(data, dict):
        raise _fail(display, node.start_mark, f"a spec is a YAML mapping, got {type(data).__name__}")
    return data, positions


_constructor = yaml.SafeLoader("")


def _build(node: yaml.Node, path: Path_, display: str, positions: dict[Path_, Pos], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _fail(display, node.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
    positions.setdefault(path, _mark_pos(display, node.start_mark))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise _fail(display, key_node.start_mark, "keys must be plain strings", ".".join(map(str, path)))
            key = key_node.value
            if key in out:
                raise _fail(
                    display,
                    key_node.start_mark,
                    f"duplicate key '{key}'",
                    ".".join(map(str, (*path, key))),
                )
            positions[(*path, key)] = _mark_pos(display, key_node.start_mark)
            out[key] = _build(value_node, (*path, key), display, positions, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), display, positions, depth + 1) for i, item in enumerate(node.value)]
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise _fail(display, node.start_mark, f"bad value: {exc}", ".".join(map(str, path))) from None
