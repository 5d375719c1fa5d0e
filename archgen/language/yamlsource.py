"""Safe YAML reading that remembers where every value came from.

Only plain data is built (SafeLoader tags). Anchors and aliases are refused
outright (they are the vector of "billion laughs" and ``extends`` covers
reuse), as are explicit tags (``!!python/...``, ``!!binary``), merge keys,
duplicate keys, non-string keys, deep nesting, large files, anything but a
regular file, and control characters. So are the plain scalars that YAML 1.1
(PyYAML) and YAML 1.2 (YAML editors) read differently: octal ``010``, base-60
``1:30``, ``1_000``, ``0b101``, ``yes``/``no``/``on``/``off``, leading zeros,
and hexadecimal; a plain ``1e-5`` or ``-.5`` is the number YAML 1.2 makes it.
Every refusal names the line when the input has one.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from ..errors import Problem, SpecError

MAX_BYTES = 1 << 20
MAX_DEPTH = 32

Data = dict[str, Any]  # spec data as YAML gives it
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Pos:
    file: str
    line: int | None
    column: int | None
    # Written as a scalar other than null: where a mapping belongs (``shortcut: identity``) it is the
    # shorthand of ``{type: ...}``, so it also wrote the ``type`` beneath it (a null removes the field,
    # so what is beneath comes from elsewhere). Not part of a position's identity.
    scalar: bool = field(default=False, compare=False, repr=False)
    # Written as a list: it replaced whatever a parent or the layer beneath had at this path, every item
    # of it (``merge.py``); a scalar replaces only its own path, and the ``type`` of a short form. Not
    # part of a position's identity.
    whole: bool = field(default=False, compare=False, repr=False)


@dataclass
class Positions:
    """Where each field path was written, searched innermost layer first."""

    layers: list[dict[Path_, Pos]] = field(default_factory=list)

    def over(self, layer: dict[Path_, Pos]) -> Positions:
        return Positions([layer, *self.layers])

    def exact(self, path: Path_) -> bool:
        """Whether some layer wrote this very path, not only a mapping above it: a path ending in
        ``type`` is also written by the shorthand of its parent (``shortcut: identity``, in a file or
        by ``--set stages.0.block.shortcut=identity``)."""
        for layer in self.layers:
            if path in layer:
                return True
            parent = layer.get(path[:-1]) if path[-1:] == ("type",) else None
            if parent is not None and parent.scalar:
                return True
        return False

    def find(self, path: Path_) -> Pos | None:
        """Where the value at ``path`` was written: in the innermost layer that wrote this very path, or
        replaced it (a list above it; the short form of its ``type``: ``stem: dep`` in a child is the
        child's ``stem.type``, though the parent wrote ``stem: {type: classic}``), at the deepest field
        of that layer on the way; else the deepest field above it that any layer wrote."""
        for layer in self.layers:
            if path in layer:
                return layer[path]
            if any(_replaces(layer.get(path[:k]), path[k:]) for k in range(1, len(path))):
                return next(layer[path[:k]] for k in range(len(path) - 1, 0, -1) if path[:k] in layer)
        for k in range(len(path), -1, -1):
            for layer in self.layers:
                pos = layer.get(path[:k])
                if pos is not None:
                    return pos
        return None


def _replaces(pos: Pos | None, below: Path_) -> bool:
    """Whether what was written at ``pos`` replaced the path ``below`` it, whatever lay beneath."""
    return pos is not None and (pos.whole or (pos.scalar and below == ("type",)))


def _mark_pos(display: str, mark: Any, scalar: bool = False, whole: bool = False) -> Pos:
    if mark is None:
        return Pos(display, None, None, scalar, whole)
    return Pos(display, mark.line + 1, mark.column + 1, scalar, whole)


def _fail(display: str, mark: Any, message: str, fieldname: str = "") -> SpecError:
    pos = _mark_pos(display, mark)
    return SpecError(Problem(pos.file, pos.line, pos.column, fieldname, message))


def read_yaml(path: Path, display: str) -> tuple[Any, dict[Path_, Pos]]:
    """Parse one YAML file into plain data plus the position of every path."""
    try:
        # A FIFO or device would block open() or read() forever: only regular files are read.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise SpecError(Problem(display, None, None, "", "not a regular file"))
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(Problem(display, None, None, "", f"cannot read file: {reason}")) from None
    if len(raw) > MAX_BYTES:
        raise SpecError(
            Problem(display, None, None, "", f"file is larger than {MAX_BYTES} bytes; a spec is a few dozen lines")
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        raise SpecError(Problem(display, line, column, "", message)) from None
    return parse_yaml(text, display)


def _line_of(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class _Checker:
    """Refuses, event by event, what must never be composed: aliases, tags, deep nesting.

    It sees every event as the composer takes it, before the node is built, so an alias bomb or a
    100,000-deep flow list costs a few events, not memory or recursion. It follows the field path
    of every node so that the refusal names the field.
    """

    def __init__(self, display: str) -> None:
        self.display = display
        self.frames: list[list[Any]] = []  # per open collection: [is_mapping, reading_a_key, key, index]

    def field_path(self) -> str:
        frames = self.frames
        parts = [f[2] if f[0] else f[3] for f in frames[:-1]]
        if frames and not frames[-1][0]:
            parts.append(frames[-1][3])
        elif frames and not frames[-1][1]:
            parts.append(frames[-1][2])
        return ".".join(map(str, parts))

    def ended(self, value: Any) -> None:  # a node is complete: move its parent on
        frames = self.frames
        if frames and frames[-1][0]:
            if frames[-1][1]:
                frames[-1][2] = value
            frames[-1][1] = not frames[-1][1]
        elif frames:
            frames[-1][3] += 1

    def see(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.NodeEvent):
            if isinstance(event, yaml.AliasEvent) or event.anchor:
                raise _fail(
                    self.display,
                    event.start_mark,
                    "YAML anchors and aliases are not allowed; use 'extends'",
                    self.field_path(),
                )
            tag = getattr(event, "tag", None)
            if tag is not None:
                raise _fail(
                    self.display, event.start_mark, f"YAML tags are not allowed (found '{tag}')", self.field_path()
                )
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self.frames) >= MAX_DEPTH:
                raise _fail(
                    self.display, event.start_mark, f"nesting deeper than {MAX_DEPTH} levels", self.field_path()
                )
            self.frames.append([isinstance(event, yaml.MappingStartEvent), True, None, 0])
        elif isinstance(event, yaml.CollectionEndEvent):
            self.frames.pop()
            self.ended("?")
        elif isinstance(event, yaml.ScalarEvent):
            self.ended(event.value)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer, one pass: every event is checked (``_Checker``) as it is taken.

    One pass of PyYAML's pure-Python parser costs about 10 seconds a megabyte of short keys on a
    slow machine, so the check does not parse the text a second time."""

    def __init__(self, text: str, display: str) -> None:
        super().__init__(text)
        self.checker = _Checker(display)

    def get_event(self) -> Any:
        event = super().get_event()  # type: ignore[no-untyped-call]  # untyped in PyYAML's stubs
        self.checker.see(event)
        return event


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    if "'\\t'" in (exc.problem or ""):
        return "tab character: YAML indentation must use spaces"
    message = ", ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    if "<block end>" in message:
        message += " (check the indentation)"
    start, end = exc.context_mark, exc.problem_mark
    if start is not None and end is not None and start.line != end.line:
        message += f"; it started at line {start.line + 1}"
    return message


def parse_yaml(text: str, display: str) -> tuple[Any, dict[Path_, Pos]]:
    loader = None
    try:
        loader = _Loader(text, display)  # refuses a control character at once
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _fail(display, mark, f"YAML syntax error: {_syntax_message(exc)}") from None
    except yaml.reader.ReaderError as exc:  # a control character (NUL, BEL, ...): located by offset
        line, column = _line_of(text, exc.position)
        message = f"control character #x{exc.character:04x} is not allowed in YAML"
        raise SpecError(Problem(display, line, column, "", message)) from None
    except yaml.YAMLError as exc:
        raise SpecError(Problem(display, None, None, "", f"YAML error: {' '.join(str(exc).split())}")) from None
    except RecursionError:  # unreachable with _Checker's depth limit; kept so no input can give a traceback
        raise SpecError(Problem(display, None, None, "", "nesting is too deep")) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise SpecError(Problem(display, 1, 1, "", "the file is empty; a spec is a YAML mapping"))
    positions: dict[Path_, Pos] = {}
    data = _build(node, (), display, positions, 0)
    if not isinstance(data, dict):
        found = {type(None): "null", str: "a string", list: "a list", int: "a number", float: "a number"}
        kind = found.get(type(data), type(data).__name__)
        raise _fail(display, node.start_mark, f"a spec is a YAML mapping of fields, got {kind}")
    return data, positions


_constructor = yaml.SafeLoader("")
# PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent, and a leading dot only
# unsigned: a plain `1e-5`, `-2E3`, `1.0e5` or `-.5` would be the string '1e-5'. YAML 1.2 (and every
# YAML editor) reads them as numbers, and so does archgen.
_FLOAT_12 = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?")
# What YAML 1.2's core schema reads as an integer or a boolean; PyYAML's YAML 1.1 also reads octal
# (010), binary (0b101), hexadecimal (0x1F), base-60 (1:30), '_' separators (1_000), yes/no/on/off.
_INT_12 = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")  # 08, 09: text to YAML 1.1, 8 and 9 to YAML 1.2
_OCTAL_12 = re.compile(r"[-+]?0o[0-7]+")  # YAML 1.2's octal, text to YAML 1.1
_BOOL_12 = {"true", "True", "TRUE", "false", "False", "FALSE"}
_INT, _FLOAT, _BOOL, _STR = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "str"))


def _decimal(text: str) -> str | None:
    """A number as it should be written, if it is short enough to quote in a message."""
    return text if len(text) <= 24 else None


def _ambiguous(node: yaml.ScalarNode) -> str | None:
    """Why a plain scalar is refused, or None: a form that YAML 1.1 (PyYAML, this reader) and YAML 1.2
    (YAML editors, most other YAML libraries) read differently (``010``: 8 or 10; ``yes``: true or
    text), or an integer in a base other than 10 (``0x1F``). A spec's numbers are counts and sizes:
    one way to write them, and the same value to every reader."""
    if node.style is not None:  # quoted, or a block scalar: text to both
        return None
    text = node.value
    this = f"'{text}'" if len(text) <= 40 else f"'{text[:37]}...'"
    as_text = "which YAML 1.2 reads as text"
    if node.tag == _BOOL:
        if text in _BOOL_12:
            return None
        word = "true" if text.lower() in ("yes", "on") else "false"
        return f"{this} is a YAML 1.1 boolean ({word}), {as_text}: write {word}, or quote it for text"
    if node.tag == _STR:
        if _LEADING_ZERO.fullmatch(text):
            value = _decimal(str(int(text))) if len(text) <= 24 else None
            return (
                f"{this} has a leading zero, which makes it text to YAML 1.1 and {value or 'a number'} to YAML 1.2: "
                f"write {value or 'it without the leading zero'}, or quote it for text"
            )
        if _OCTAL_12.fullmatch(text):
            value = _decimal(str(int(text.replace("0o", "", 1), 8)))
            shown = f" ({value})" if value else ""
            return f"{this} is a YAML 1.2 octal number{shown}, which YAML 1.1 reads as text: write it in decimal"
        return None
    if node.tag == _INT:
        if _INT_12.fullmatch(text):
            return None
    elif node.tag != _FLOAT or not ("_" in text or ":" in text):
        return None
    try:
        value = _decimal(str(_constructor.construct_object(node, deep=True)))
    except (ValueError, OverflowError, yaml.YAMLError):  # over 4300 digits: no value to suggest
        value = None
    shown = f" ({value})" if value else ""
    write = f"write {value}" if value else "write it in decimal"
    digits = text.lstrip("+-")
    if ":" in text:
        return f"{this} is a YAML 1.1 base-60 number{shown}, {as_text}: {write}, or quote it for text"
    if digits.startswith("0b"):
        return f"{this} is a YAML 1.1 binary number{shown}, {as_text}: {write}"
    if digits.startswith("0x"):
        return f"{this} is a hexadecimal number{shown}: write it in decimal" + (f", {value}" if value else "")
    if node.tag == _INT and digits.startswith("0"):
        if "_" in text:
            return f"{this} is a YAML 1.1 octal number{shown}, {as_text}: {write}"
        decimal = str(int(text)) if len(text) <= 24 else None  # YAML 1.2 reads the digits in base 10
        choices = f"write {value} or {decimal}" if value and decimal and value != decimal else write
        return f"{this} is a YAML 1.1 octal number{shown}, which YAML 1.2 reads as {decimal or 'a decimal'}: {choices}"
    if "_" not in text:  # unreachable: every other form of PyYAML's int and float has '_' or ':'
        return None
    write = f"write {value}" if value else "write it without '_'"
    return f"{this} is a YAML 1.1 number with '_' separators{shown}, {as_text}: {write}"


def _scalar(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:null"


def _whole(node: yaml.Node) -> bool:
    """A value that replaces what is beneath it, all of it: a list."""
    return isinstance(node, yaml.SequenceNode)


def _build(node: yaml.Node, path: Path_, display: str, positions: dict[Path_, Pos], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _fail(display, node.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
    positions.setdefault(path, _mark_pos(display, node.start_mark, _scalar(node), _whole(node)))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _fail(
                    display,
                    key_node.start_mark,
                    "YAML merge keys ('<<') are not allowed; use 'extends'",
                    ".".join(map(str, (*path, "<<"))),
                )
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = (*path, key_node.value) if isinstance(key_node, yaml.ScalarNode) else path
                raise _fail(display, key_node.start_mark, "keys must be plain strings", ".".join(map(str, shown)))
            key = key_node.value
            if key in out:
                raise _fail(
                    display,
                    key_node.start_mark,
                    f"duplicate key '{key}'",
                    ".".join(map(str, (*path, key))),
                )
            positions[(*path, key)] = _mark_pos(display, key_node.start_mark, _scalar(value_node), _whole(value_node))
            out[key] = _build(value_node, (*path, key), display, positions, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), display, positions, depth + 1) for i, item in enumerate(node.value)]
    node = cast(yaml.ScalarNode, node)  # a composed node is a mapping, a sequence or a scalar
    refusal = _ambiguous(node)
    if refusal is not None:
        raise _fail(display, node.start_mark, refusal, ".".join(map(str, path)))
    if node.tag == _STR:  # most scalars: what SafeConstructor would build, without its bookkeeping
        value: Any = node.value
        if node.style is None and _FLOAT_12.fullmatch(value):
            return float(value)  # a plain 1e-5 is a number, as YAML 1.2 reads it
        return value
    try:
        value = _constructor.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:  # an integer of over 4300 digits, a 30 February
        too_long = node.tag == "tag:yaml.org,2002:int"
        message = f"a number of {len(str(node.value))} digits is too large" if too_long else f"bad value: {exc}"
        raise _fail(display, node.start_mark, message, ".".join(map(str, path))) from None
    except yaml.YAMLError as exc:
        message = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
        raise _fail(display, node.start_mark, f"bad value: {message}", ".".join(map(str, path))) from None
    return value


def yaml_text(value: Any) -> str:
    """A value as a YAML flow scalar or collection shows it, for messages: ``true``, ``null``, ``.inf``,
    ``'text'``, ``[224, true]``, ``{ratio: 2}`` (Python's ``True``, ``None`` and ``inf`` are not YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not value == value:  # NaN
        return ".nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    if isinstance(value, Mapping):
        items = (f"{k if isinstance(k, str) else yaml_text(k)}: {yaml_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return repr(value)


def reads_back(text: str) -> bool:
    """Whether ``text`` written as a plain (unquoted) scalar is read back as this very string: not as a
    number (``08``, ``1e5``), a boolean, null, nor refused (``0o17``). A writer of specs quotes the
    strings for which it is not (PyYAML's dumper only knows YAML 1.1's own readings)."""
    try:
        data, _ = parse_yaml(f"v: {text}", "<text>")
    except SpecError:
        return False
    return bool(data == {"v": text})


def plain_data(value: Any, display: str, path: Path_ = ()) -> tuple[Any, dict[Path_, Pos]]:
    """Python data given in place of YAML (``load_spec(dict)``, an override's value), copied the way
    YAML would have built it: string keys only, tuples as lists, at most MAX_DEPTH levels (which also
    ends a mapping that contains itself). Every path is located at ``display``, without a line."""
    positions: dict[Path_, Pos] = {}

    def copy(item: Any, at: Path_) -> Any:
        if len(at) - len(path) > MAX_DEPTH:
            raise SpecError(
                Problem(display, None, None, ".".join(map(str, at)), f"nesting deeper than {MAX_DEPTH} levels")
            )
        scalar = item is not None and not isinstance(item, Mapping | list | tuple)
        positions[at] = Pos(display, None, None, scalar, isinstance(item, list | tuple))
        if isinstance(item, Mapping):
            out: dict[str, Any] = {}
            for key, sub in item.items():
                if not isinstance(key, str):
                    shown = ".".join(map(str, (*at, key)))
                    raise SpecError(Problem(display, None, None, shown, f"keys must be strings; received {key!r}"))
                out[key] = copy(sub, (*at, key))
            return out
        if isinstance(item, list | tuple):
            return [copy(sub, (*at, i)) for i, sub in enumerate(item)]
        return item

    return copy(value, path), positions
