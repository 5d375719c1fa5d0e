"""``archgen new``: a spec file that extends a parent with overrides, checked before it is written.

The file is the schema line, ``extends`` (a shipped parent by its name, any other by its path relative
to the new file, which the loader requires to lie in the new file's folder or below), ``name`` and
what the overrides change, as nested mappings. It is written so that the loader's merge
(``merge.py``) of it over the parent gives exactly the data that ``--set`` gives the parent: a mapping
an override replaces whole writes ``null`` for the parent's keys it drops, and a list it reaches into
(``stages.2.depth``) is written whole, as a child file replaces lists. Before the file appears it is
loaded and resolved as ``archgen validate`` does, and must resolve to the parent's network with the
overrides; it is then renamed into place (``atomic.py``). An existing file is never replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from .. import atomic
from ..compiler.resolve import resolve
from ..errors import OptionError, Problem, SpecError
from ..ir import Network
from ..language import catalog
from ..language.extends import load_data
from ..language.merge import replaces
from ..language.messages import validate
from ..language.overrides import apply_overrides, override_path, parse_override
from ..language.spec import Identifier
from ..language.tweaks import normalize
from ..language.yamlsource import Path_, parse_yaml, reads_back
from .diff import same_network

SCHEMA_FILE = "archgen-spec.schema.json"
# Set by NAME and --from.
_NOT_OVERRIDABLE = {
    "name": "the new spec's name is NAME",
    "extends": "the new spec's parent is --from BASE",
}


@dataclass(frozen=True)
class NewSpec:
    """A spec file ready to be written: its text, and the network it must resolve to."""

    path: Path
    name: str
    extends: str  # as written in the file
    schema: str  # the schema line's path, relative to the file
    schema_found: bool  # whether that file exists (else the line names it beside the spec)
    data: dict[str, Any]  # what the file holds
    text: str
    network: Network


def check_name(name: str) -> None:
    """A spec name is an identifier (``spec.Identifier``); raises SpecError naming the field."""
    try:
        TypeAdapter(Identifier).validate_python(name)
    except ValidationError:
        message = "expected an identifier (ASCII letters, digits and '_', not starting with a digit, at most 64)"
        raise SpecError(Problem(f"NAME {name}", None, None, "name", f"{message}; received {name!r}")) from None


def extends_ref(base: Path, output: Path) -> str:
    """How the new file names its parent: a file beside it by its file name (as the shipped specs
    extend each other), a shipped spec by its name (``archgen:NAME`` where a file beside the new one
    has that name), any other by its path relative to the new file, inside its project root (the
    nearest folder above holding ``.archgen``, ``.git`` or ``pyproject.toml``, else its own folder)."""
    folder, parent = output.parent.resolve(), base.resolve()
    if parent.parent == folder:
        ref = parent.name
    elif catalog.is_shipped(parent):
        beside = folder / f"{parent.stem}{catalog.SUFFIX}"
        if os.path.lexists(beside) or beside == output.resolve():
            return f"{catalog.SHIPPED_PREFIX}{parent.stem}"  # the bare name would mean that file
        return parent.stem
    else:
        root, marker = catalog.project_root(folder)
        if not parent.is_relative_to(root):
            where = f"project root {root} (it holds {marker})" if marker else f"new spec's folder {folder}"
            hint = (
                ""
                if marker
                else f"; an empty {catalog.MARKER} file (or a .git or pyproject.toml) in a folder above both "
                "makes that folder the project root"
            )
            raise OptionError(
                f"the parent {base} lies outside the {where}, and 'extends' may only name a spec inside it "
                f"(or a shipped spec by name): write the new spec beside its parent or in a folder above it{hint}"
            )
        ref = Path(os.path.relpath(parent, folder)).as_posix()
    return f"./{ref}" if catalog.is_name(ref) else ref  # a bare word would mean NAME.yaml or a shipped spec


def schema_ref(folder: Path) -> tuple[str, bool]:
    """The schema line's path from ``folder``: a schema file beside the spec, else the checkout's
    ``schema/`` when the spec is inside the checkout (``../schema/...`` from ``specs/``), else the name
    of a schema file beside the spec that is not there yet (``archgen schema -o`` writes it); and
    whether that file exists."""
    if (folder / SCHEMA_FILE).is_file():
        return SCHEMA_FILE, True
    checkout = catalog.shipped_dir().parent
    committed = checkout / "schema" / SCHEMA_FILE
    inside = folder.resolve().is_relative_to(checkout.resolve())
    if inside and committed.is_file() and (checkout / "pyproject.toml").is_file():
        return Path(os.path.relpath(committed.resolve(), folder.resolve())).as_posix(), True
    return SCHEMA_FILE, False


def override_layer(parent: Any, target: Any, paths: list[Path_]) -> Any:
    """What a child file writes over ``parent`` so that ``merge(parent, it) == target``, with every
    override path in ``paths`` written out even where it changes nothing (a mapping an override
    replaced, ``()`` in ``paths``, with all of its keys)."""
    if not isinstance(parent, dict) or not isinstance(target, dict) or replaces(parent, target):
        return target  # a scalar, a list, or a mapping of another type: the child's value replaces it
    whole = () in paths
    out: dict[str, Any] = {}
    for key, value in target.items():
        below: list[Path_] = [()] if whole else [p[1:] for p in paths if p[:1] == (key,)]
        if key not in parent:
            out[key] = value
        elif parent[key] != value or below:
            out[key] = override_layer(parent[key], value, below)
    out.update({key: None for key in parent if key not in target})  # null: the key is removed
    return out


def _path(raw: str) -> Path_:
    key, _ = parse_override(raw)
    return override_path(key, f"--set {raw}")


class _Dumper(yaml.SafeDumper):
    """Plain YAML as the shipped specs are written: list items indented, no anchors (which the loader
    refuses) where the data holds one object twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


class _TopLevel(dict[str, Any]):
    """The file's mapping: in block style, one field a line, whatever its values (nested mappings and
    lists of scalars only are written in flow style, ``head: {classes: 10}``)."""


def _top_level(dumper: yaml.SafeDumper, data: _TopLevel) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=False)


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    """A string quoted where it would not read back as itself (``08``, ``1e5``: PyYAML's dumper knows
    only YAML 1.1's readings)."""
    node = dumper.represent_str(data)
    if not reads_back(data):
        node.style = "'"
    return node


_Dumper.add_representer(_TopLevel, _top_level)
_Dumper.add_representer(str, _text)


def render(schema: str, data: dict[str, Any]) -> str:
    body = yaml.dump(
        _TopLevel(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
    )
    return f"# yaml-language-server: $schema={schema}\n{body}"


def plan(name: str, base: Path, overrides: list[str] | tuple[str, ...], output: Path) -> NewSpec:
    """Check NAME, BASE, the overrides and OUTPUT, and make the file's text; nothing is written.

    Raises SpecError (a name, an override or the parent is invalid) or OptionError (the output)."""
    check_name(name)
    for raw in overrides:
        key, _ = parse_override(raw)
        head = key.split(".")[0]
        if head in _NOT_OVERRIDABLE:
            raise SpecError(Problem(f"--set {raw}", None, None, key, f"not in a new spec: {_NOT_OVERRIDABLE[head]}"))
    if os.path.lexists(output):
        raise OptionError(f"{output} exists: archgen new never replaces a file (remove it, or give another -o)")
    if output.suffix != catalog.SUFFIX:
        raise OptionError(f"expected an output file ending in {catalog.SUFFIX} (as specs are found); received {output}")
    if not output.parent.resolve().is_dir():
        raise OptionError(f"folder '{output.parent}' does not exist")
    data, positions = load_data(base)  # the parent's merged data, before any override
    target, target_positions = apply_overrides(data, positions, list(overrides))
    network = resolve(validate(target, target_positions), target_positions)
    own = override_layer(normalize(data), normalize(target), [_path(raw) for raw in overrides])
    own = {k: v for k, v in own.items() if k not in _NOT_OVERRIDABLE}
    ref = extends_ref(base, output)
    schema, found = schema_ref(output.parent)
    written = {"extends": ref, "name": name, **own}
    return NewSpec(output, name, ref, schema, found, written, render(schema, written), network)


def _relocated(exc: SpecError, tmp: Path, output: Path) -> SpecError:
    """The problems of the file checked under its temporary name, named as the file to be written."""
    return SpecError(
        [Problem(p.file.replace(str(tmp), str(output)), p.line, p.column, p.field, p.message) for p in exc.problems]
    )


def check_written(new: NewSpec, written: Path) -> Network:
    """Load and resolve the file at ``written`` as ``archgen validate`` does; it must give the planned
    network and the same resolved data, its name aside. Raises SpecError."""
    parsed, _ = parse_yaml(written.read_text(encoding="utf-8"), str(new.path))
    if parsed != new.data:
        raise SpecError(Problem(str(new.path), None, None, "", "the YAML written does not read back as written"))
    from ..compiler.pipeline import compile_spec

    try:
        _, network = compile_spec(written)
    except SpecError as exc:
        raise _relocated(exc, written, new.path) from None
    ours, theirs = dict(network.resolved, name=""), dict(new.network.resolved, name="")
    if ours != theirs or not same_network(network, new.network):
        fields = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)) or ["layers"]
        message = "the file would not resolve to the parent with the overrides; nothing was written"
        raise SpecError(Problem(str(new.path), None, None, ", ".join(fields), message))
    return network


def write(new: NewSpec) -> None:
    """Write the file atomically, checked first (``check_written``); never over an existing file."""

    def put(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(new.text)

    def check(tmp: Path) -> None:
        check_written(new, tmp)

    # Staged beside its name, so that a relative 'extends' reads as it will; linked to its name, which
    # fails if a file appeared there meanwhile (never replaced).
    atomic.replace_atomic(put, new.path, suffix=catalog.SUFFIX, check=check, beside=True, replace=False)
