"""The spec-language reference, ``docs/spec-language.md``, generated from the spec models.

One source: a field's type, allowed values and bounds are read off the JSON Schema
(``schema.json_schema()``, what YAML editors check a file against, shorthands included), its
description and examples off its pydantic ``Field`` in ``spec.py`` (the same text the schema
carries), its default off the model, and a section's opening line off the model's docstring. The
sections follow the models: every model a ``Spec`` field holds gets one, variants (stem, block,
head) a part each, so a new field or model appears here without touching this file. ``NOTES``
adds, per section, what no single field says (how the fields act together, what the network does
with them); ``docs/authoring.md`` holds the rest of the hand-written prose (how files combine,
layer names), ``docs/refused.md`` every rule that refuses a spec.

    python -m archgen.language.specdoc            # write docs/spec-language.md (only when it changed)
    python -m archgen.language.specdoc --check    # exit 1 if it is stale (CI runs it through tests/test_specdoc.py)

The text is a pure function of the models: byte-identical on every run. Imports no framework.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from ..atomic import current_bytes, write_text
from . import spec as language
from .schema import json_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec-language.md"
COMMAND = "python -m archgen.language.specdoc"

# Defaults that the loader, not the model, supplies (the model requires the field; a file need not).
LOADER_DEFAULTS = {("Spec", "name"): "the file's name"}

INTRO = """\
Every field a spec file may hold: its type and allowed values, its default, what it does and
examples. [How a spec is written](authoring.md) (a variant that `extends` a shipped spec,
`archgen new`, how `extends`, `tweaks` and `--set` combine, the layer names a spec gives);
[every rule and limit that refuses a spec](refused.md), and the message each gives.

Shorthands: a bare type name stands for the mapping (`stem: deep` is `stem: {type: deep}`), and a
mapping without `type` is the default variant (`head: {classes: 10}` is a classifier). Unknown
keys are errors (with a did-you-mean). Integers and numbers are strict: `"3"`, `3.0` or `true`
is not an integer, and `"0.1"` is text, not a number. A file that `extends` another may leave out
any field, `block` and `stages` included; one that extends nothing must give both.
"""

# What no single field says, by section (the field path, as --set writes it).
NOTES: dict[str, str] = {
    "tweaks": """\
`tweaks: [B, C, D]` means what the Bag-of-Tricks paper means:

- **B**: the stride of a bottleneck sits on the 3x3 conv (`block.stride_at: 3x3`, the default);
- **C**: the stem is three 3x3 convs (`stem.type: deep`, widths 32-32-64), keeping the stem's pool settings;
- **D**: the downsampling shortcut is a 2x2 average pool then a 1x1 conv (`block.shortcut.type: avgpool`).

A tweak that contradicts a field written in the same file is an error (`tweaks: [D]` with
`shortcut: conv`); how tweaks meet a parent's fields and `--set`:
[authoring.md, "Tweaks"](authoring.md#tweaks).
""",
    "stem": """\
ResNet-RS's stem is `stem: {type: deep, pool: conv}` (or `tweaks: [C]` plus `stem: {pool: conv}`).
""",
    "block": """\
A bottleneck's inner width is `int(width * base_width / 64 * width_factor) * groups` (Wide
ResNet-50-2: `width_factor: 2`; ResNeXt 32x4d: `groups: 32, base_width: 4`); its output is
`width * expansion`. `stride_at: 1x1` puts the stride on the first 1x1 conv (the original ResNet
and keras.applications V1), `3x3` on the 3x3 (ResNet-B, torchvision's V1.5).

In a pre-activation block (`preact: true`, ResNet V2) every conv is preceded by norm + act and
nothing follows the addition; a network whose last block is pre-activated ends with `post_bn` +
`post_act` before the head. A projecting shortcut reads the normalised input, a pool or identity
shortcut the raw one, and the shortcut has no norm. A stage's own `block` is merged over this one
([`stages`](#stages)).
""",
    "block.se": """\
`se: {ratio: 0.25}` adds it with the other fields at their defaults; `se: null` removes a parent's.
""",
    "stages": """\
`stride` defaults to 1 for the first stage and 2 after. A stage's `block` is merged over the
top-level block for this stage only, by the rules of `extends` (mappings merge, a different `type`
replaces, `null` removes a field), so a stage can change one thing (`block: {se: null}`) or switch
type (`block: {type: basic}`):

```yaml
stages:
  - {depth: 3, width: 64}
  - {depth: 4, width: 128}
  - {depth: 6, width: 256, block: {se: {ratio: 0.25}}}
  - {depth: 3, width: 512, stride: 1}
```
""",
    "head": """\
With `out_indices`, the model returns the maps `feature_info` lists at those indices, in order,
as timm's `features_only` models do: 0 is the stem's map (before its pool) where there is a stem,
then one per stage; negative indices count from the end. The network ends at the last stage taken
(`[1, 2]` builds no `layer3`, `layer4` or head; a pre-activation net's final norm is not built), so
its parameters and outputs are those of timm's `create_model(name, features_only=True,
out_indices=...)`, whose state_dict loads strictly (tested). The same from Python, without editing
the spec: `archgen.build("resnet50d", features_only=True, out_indices=(1, 2, 3, 4))` (every map by
default); from the command line, `--set 'head={type: features, out_indices: [1, 2, 3, 4]}'`.
""",
    "norm": """\
Keras' momentum is `1 - momentum`: PyTorch's 0.1 is Keras' 0.9; keras.applications'
`norm: {eps: 1.001e-5, momentum: 0.01}` is Keras' eps 1.001e-5 and momentum 0.99.
""",
    "act": """\
`act` is every activation of the network but squeeze-excitation's (`block.se.act`; its gate is a
sigmoid). Both backends compute each as PyTorch does: `gelu` is the exact (erf) GELU, `leaky_relu`
has slope 0.01 (the Keras models use archgen's own two functions, registered for saving, as
Keras' compute them with float32 constants).
""",
    "output_stride": """\
For segmentation and detection heads that want finer maps: with `output_stride: 8` (or 16), a
stage that would take the network's total stride past it keeps its resolution and dilates its 3x3
convs by its stride instead (the convs up to where the stride would be keep the previous
dilation), as timm's `output_stride` and torchvision's `replace_stride_with_dilation` do; a
ResNet-D shortcut there averages 2x2 at stride 1 with a zero row and column appended, as timm's
does. Parameters are unchanged; shapes, FLOPs and `feature_info` reductions follow (resnet50 at
224 px: layer3 and layer4 stay 28x28). Both backends build it, and the PyTorch models load timm's
and torchvision's dilated models' weights and give their outputs (tested for resnet18, resnet50,
resnet50d, seresnet50, resnetrs50). A stem that alone reduces past `output_stride`, or stage
strides that cannot reach it, are refused. `--set output_stride=8` works on any spec.
""",
    "drop_path": """\
Stage `s` of `per_stage` is counted from 0, so the last stage gets `rate`. `drop_path: {rate: 0.1}`
is timm's `drop_path_rate=0.1` (`archgen.build(..., drop_path_rate=0.1)`); the emitted
`build_model(drop_path_rate=...)` takes it too.
""",
}


# -- what the models say --------------------------------------------------------------------------------------


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds, in the order the type names them (variants of a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        for model in _models(arg):
            if model not in found:
                found.append(model)
    return found


def _fields(model: type[BaseModel]) -> list[str]:
    """A model's fields as a reader wants them: ``type`` first, then its own, then those it inherits."""
    names = list(model.model_fields)
    inherited = {n for base in model.__mro__[1:] if isinstance(base, type) for n in getattr(base, "model_fields", {})}
    ordered = [n for n in names if n == "type"]
    ordered += [n for n in names if n != "type" and n not in inherited]
    ordered += [n for n in names if n != "type" and n in inherited]
    return ordered


def _docstring(model: type[BaseModel]) -> str:
    """A model's docstring as Markdown (RST's ``x`` as `x`), paragraphs kept."""
    text = inspect.cleandoc(model.__doc__ or "")
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def _default_model(field_name: str) -> type[BaseModel] | None:
    """The variant a Spec field takes when a file leaves it out (ClassicStem for stem), if any."""
    field = language.Spec.model_fields[field_name]
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True, validated_data={})
    return type(value) if isinstance(value, BaseModel) else None


# -- rendering values -----------------------------------------------------------------------------------------

# A string YAML reads back as that string when written bare (safe_load decides: `3x3` yes, `no` or `1e3` not).
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")


def yaml_flow(value: Any) -> str:
    """A value as YAML flow text, the way a spec writes it inline (``{type: deep, widths: [24, 32, 64]}``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value))  # 1e-05 as 1e-5
    if isinstance(value, str):
        return value if _PLAIN.match(value) and yaml.safe_load(value) == value else json.dumps(value)
    if isinstance(value, BaseModel):
        return yaml_flow(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    raise TypeError(f"no YAML form for {value!r}")


def _code(value: Any) -> str:
    return f"`{yaml_flow(value)}`"


def _cell(text: str) -> str:
    """Text fit for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


# -- the plan: one section per field that holds models (or has notes) ------------------------------------------


@dataclass(frozen=True)
class Section:
    path: str  # the field path, as --set writes it ("" for the top level)
    models: tuple[type[BaseModel], ...]
    level: int  # the heading level

    @property
    def title(self) -> str:
        return "Top level" if not self.path else f"`{self.path}`"


def plan() -> list[Section]:
    """Every section of the document, in the order of the Spec's fields (nested models after their owner)."""
    sections = [Section("", (language.Spec,), 2)]
    seen: set[type[BaseModel]] = {language.Spec}

    def visit(path: str, models: Sequence[type[BaseModel]], level: int) -> None:
        sections.append(Section(path, tuple(models), level))
        seen.update(models)
        for model in models:
            for name in _fields(model):
                inner = [m for m in _models(model.model_fields[name].annotation) if m not in seen]
                if inner:
                    visit(f"{path}.{name}", inner, level + 1)

    for name in language.Spec.model_fields:
        models = _models(language.Spec.model_fields[name].annotation)
        if models:
            visit(name, models, 2)
        elif name in NOTES:
            sections.append(Section(name, (), 2))
    return sections


def _variant_heading(section: Section, model: type[BaseModel]) -> str:
    kind = model.model_fields["type"].annotation
    (name,) = get_args(kind)
    top = section.path in language.Spec.model_fields
    default = " (the default)" if top and _default_model(section.path) is model else ""
    return f"`{section.path}: {name}`{default}"


def _links(sections: Sequence[Section]) -> dict[str, str]:
    """Each model's ($defs name's) link: the section that documents it (all the variants, for a union)."""
    return {model.__name__: f"[{s.title}](#{anchor(s.title)})" for s in sections for model in s.models}


# -- rendering types from the schema ----------------------------------------------------------------------------


def _number(value: float) -> str:
    return yaml_flow(int(value) if float(value).is_integer() else value)


def _bounds(prop: dict[str, Any], integer: bool) -> str:
    low, high = prop.get("minimum"), prop.get("maximum")
    low_open, high_open = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    if integer:  # integers: closed bounds read better (1 to 64, not > 0 and <= 64)
        low = low if low is not None else (low_open + 1 if low_open is not None else None)
        high = high if high is not None else (high_open - 1 if high_open is not None else None)
        if low is not None and high is not None:
            return f" ({low} to {high})"
        if low is not None:
            return f" ({low} or more)"
        return f" (at most {high})" if high is not None else ""
    left = right = ""
    if low is not None:
        left = f"{_number(low)} <= "
    elif low_open is not None:
        left = f"{_number(low_open)} < "
    if high is not None:
        right = f" <= {_number(high)}"
    elif high_open is not None:
        right = f" < {_number(high_open)}"
    return f" ({left}x{right})" if left or right else ""


def _count(prop: dict[str, Any]) -> str:
    low, high = prop.get("minItems"), prop.get("maxItems")
    if low is not None and high is not None:
        return f"{low}" if low == high else f"{low} to {high}"
    if low is not None:
        return f"{low} or more"
    return f"at most {high}" if high is not None else ""


def type_text(prop: dict[str, Any], links: dict[str, str]) -> str:
    """What a schema property admits, in words: `a` | `b`, an integer (1 to 64), a mapping (its section)."""
    if "$ref" in prop:
        return f"a mapping ({links[prop['$ref'].rsplit('/', 1)[1]]})"
    if "const" in prop:
        return _code(prop["const"])
    if "anyOf" in prop:
        options: list[dict[str, Any]] = prop["anyOf"]
        refs = [o for o in options if "$ref" in o]  # variants: one link, to the section of all of them
        return " or ".join(type_text(o, links) for o in options if o not in refs[1:])
    if "enum" in prop:
        return " | ".join(_code(v) for v in prop["enum"])
    kind = prop.get("type")
    if kind == "integer":
        return "an integer" + _bounds(prop, True)
    if kind == "number":
        return "a number" + _bounds(prop, False)
    if kind == "boolean":
        return "a boolean"
    if kind == "null":
        return "`null`"
    if kind == "string":
        limits = [f"matching `{prop['pattern']}`"] if "pattern" in prop else []
        limits += [f"at most {prop['maxLength']} characters"] if "maxLength" in prop else []
        return "a string" + (f" ({', '.join(limits)})" if limits else "")
    if kind == "array":
        count = _count(prop)
        size = f" of {count}" if count else ""
        if "prefixItems" in prop:
            items = [type_text(p, links) for p in prop["prefixItems"]]
            if all(i == items[0] for i in items):
                return f"a list{size}, each {items[0]}"
            return f"a list{size}: " + ", ".join(items)
        return f"a list{size}, each {type_text(prop['items'], links)}"
    raise ValueError(f"no words for the schema type {prop!r}")


# -- rendering sections -------------------------------------------------------------------------------------------


def _default_text(model: type[BaseModel], name: str, prop: dict[str, Any], required_in_file: Sequence[str]) -> str:
    field = model.model_fields[name]
    if (model.__name__, name) in LOADER_DEFAULTS:
        return LOADER_DEFAULTS[(model.__name__, name)]
    if field.is_required():
        if name == "type":
            return "—"
        if model is language.Spec:
            return "required unless the file `extends` another" if name in required_in_file else "—"
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    shorthand = any("enum" in option for option in prop.get("anyOf", []))  # a bare type name stands for it
    if isinstance(value, BaseModel) and shorthand and "type" in type(value).model_fields:
        return _code(value.type)  # type: ignore[attr-defined]
    return _code(value)


def _table(model: type[BaseModel], props: dict[str, Any], links: dict[str, str], required: Sequence[str]) -> str:
    rows = ["| field | type | default | description | examples |", "| --- | --- | --- | --- | --- |"]
    for name in _fields(model):
        field = model.model_fields[name]
        examples = ", ".join(_code(e) for e in (field.examples or []))
        cells = [
            f"`{name}`",
            type_text(props[name], links),
            _default_text(model, name, props[name], required),
            field.description or "",
            examples,
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def _presets() -> str:
    """The depth presets, as stages: expands them."""
    widths = {tuple(s["width"] for s in language.expand_stages(d)) for d in language.DEPTH_PRESETS}
    strides = {tuple(s["stride"] for s in language.expand_stages(d)) for d in language.DEPTH_PRESETS}
    (width,), (stride,) = widths, strides
    rows = [
        f"A depth preset (`stages: 50`) expands to four stages of widths {'-'.join(map(str, width))} "
        f"and strides {'-'.join(map(str, stride))}, with these depths (`--set stages.2.depth=36` works on a "
        "preset too):",
        "",
        "| preset | depths |",
        "| --- | --- |",
    ]
    rows += [f"| `{d}` | {'-'.join(map(str, depths))} |" for d, depths in language.DEPTH_PRESETS.items()]
    return "\n".join(rows)


def _section(section: Section, schema: dict[str, Any], links: dict[str, str]) -> Iterator[str]:
    hashes = "#" * section.level
    yield f"{hashes} {section.title}"
    defs = schema["$defs"]
    required: list[str] = schema["else"]["required"]
    if not section.models:  # a plain field with notes: its own row, then the notes
        yield _table_of_one(section.path, schema, links, required)
    elif len(section.models) == 1:
        (model,) = section.models
        props = schema["properties"] if model is language.Spec else defs[model.__name__]["properties"]
        yield _docstring(model)
        yield _table(model, props, links, required)
    else:  # variants: what they share first (the field, the notes), then one part each
        owner = language.Spec.model_fields.get(section.path)
        if owner is not None and owner.description:
            yield _cell(owner.description)
        if section.path in NOTES:
            yield NOTES[section.path].rstrip("\n")
        for model in section.models:
            yield f"{hashes}# {_variant_heading(section, model)}"
            yield _docstring(model)
            yield _table(model, defs[model.__name__]["properties"], links, required)
        return
    if section.path == "stages":
        yield _presets()
    if section.path in NOTES:
        yield NOTES[section.path].rstrip("\n")


def _table_of_one(name: str, schema: dict[str, Any], links: dict[str, str], required: Sequence[str]) -> str:
    """The top-level table's row of one field, under its own heading."""
    full = _table(language.Spec, schema["properties"], links, required).splitlines()
    row = next(line for line in full if line.startswith(f"| `{name}` |"))
    return "\n".join([*full[:2], row])


def render() -> str:
    """The whole document."""
    schema = json_schema()
    sections = plan()
    links = _links(sections)
    parts = [
        f"<!-- Generated by `{COMMAND}` from archgen/language/spec.py (and the notes in archgen/language/specdoc.py): "
        "edit those, then run it; CI fails when this file is stale. -->",
        "# The spec language",
        INTRO.rstrip("\n"),
        "Sections: " + ", ".join(f"[{s.title}](#{anchor(s.title)})" for s in sections) + ".",
    ]
    for section in sections:
        parts.extend(_section(section, schema, links))
    return "\n\n".join(p for p in parts if p) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Write docs/spec-language.md from the spec models.")
    parser.add_argument("-o", "--output", type=Path, default=DOC, help="the file to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render().encode("utf-8")
    if current_bytes(args.output) == text:
        return 0
    if args.check:
        print(f"{args.output} is stale: run '{COMMAND}'", file=sys.stderr)
        return 1
    write_text(args.output, text.decode("utf-8"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
