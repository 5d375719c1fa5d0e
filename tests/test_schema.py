"""The JSON Schema: current, named by every spec, and agreeing with the loader."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import ROOT, SPEC_FILES

from archgen.language.schema import schema_text

SCHEMA_FILE = ROOT / "schema" / "archgen-spec.schema.json"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), "run: archgen schema -o schema/archgen-spec.schema.json"


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_spec_names_the_schema_and_satisfies_it(path) -> None:
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/archgen-spec.schema.json"
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize(
    "bad",
    [
        {"block": "bottleneck", "stages": 50, "head": {"type": "classifier", "clases": 10}},
        {"block": "bottleneck", "stages": 51},
        {"block": "hourglass", "stages": 50},
        {"stages": 50},
    ],
)
def test_schema_rejects_what_the_loader_rejects(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA_FILE.read_text()))


# -- editor support: every property documented, with examples that hold ------------------------------------------
def _properties(node: object, pointer: str = "#") -> list[tuple[str, dict]]:
    """Every property schema of the schema, by JSON pointer: through $defs, anyOf/oneOf/allOf, items, if/else."""
    found: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                for name, prop in value.items():
                    found.append((f"{pointer}/properties/{name}", prop))
                    found += _properties(prop, f"{pointer}/properties/{name}")
            else:
                found += _properties(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _properties(value, f"{pointer}/{i}")
    return found


SCHEMA = json.loads(SCHEMA_FILE.read_text())
PROPERTIES = _properties(SCHEMA)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(SCHEMA) is jsonschema.Draft202012Validator
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_property_has_a_description_and_an_example() -> None:
    # Every field of every model: the top level, the variants (stem, block, head members, their type
    # tags included), the options of enum-like fields.
    assert len(PROPERTIES) >= 70
    for name in ("ClassicStem", "DeepStem", "NoStem", "BasicBlock", "BottleneckBlock", "PlainBlock", "FeaturesHead"):
        assert f"#/$defs/{name}/properties/type" in dict(PROPERTIES)
    undocumented = [p for p, s in PROPERTIES if not str(s.get("description", "")).strip()]
    without_examples = [p for p, s in PROPERTIES if not s.get("examples")]
    assert not undocumented and not without_examples, (undocumented, without_examples)
    for name, definition in SCHEMA["$defs"].items():  # and every model (its docstring)
        assert definition.get("description", "").strip(), name


@pytest.mark.parametrize("pointer", [p for p, _ in PROPERTIES], ids=[p.removeprefix("#/") for p, _ in PROPERTIES])
def test_every_example_satisfies_its_own_property(pointer: str) -> None:
    from referencing import Registry, Resource

    registry = Registry().with_resource(SCHEMA["$id"], Resource.from_contents(SCHEMA))
    validator = jsonschema.Draft202012Validator({"$ref": SCHEMA["$id"] + pointer}, registry=registry)
    for example in dict(PROPERTIES)[pointer]["examples"]:
        errors = [e.message for e in validator.iter_errors(example)]
        assert not errors, (example, errors)


# Where each model of the language sits in a spec, and the mapping it is written as there.
PLACES = {
    "InputSpec": ("input", {}),
    "BatchNormSpec": ("norm", {"type": "batch"}),
    "GroupNormSpec": ("norm", {"type": "group"}),
    "FilterResponseNormSpec": ("norm", {"type": "frn"}),
    "EvoNormS0Spec": ("norm", {"type": "evonorm_s0"}),
    "WeightStdSpec": ("weight_std", {}),
    "FreezeSpec": ("freeze", {}),
    "ClassicStem": ("stem", {"type": "classic"}),
    "DeepStem": ("stem", {"type": "deep"}),
    "NoStem": ("stem", {"type": "none"}),
    "BasicBlock": ("block", {"type": "basic"}),
    "BottleneckBlock": ("block", {"type": "bottleneck"}),
    "PlainBlock": ("block", {"type": "plain"}),
    "SESpec": ("block.se", {}),
    "SEAttention": ("block.attn", {"type": "se"}),
    "EcaAttention": ("block.attn", {"type": "eca"}),
    "ShortcutSpec": ("block.shortcut", {}),
    "AvgAntiAlias": ("block.anti_alias", {"type": "avg"}),
    "BlurAntiAlias": ("block.anti_alias", {"type": "blur"}),
    "StageSpec": ("stages.0", {"depth": 1, "width": 64}),
    "DropPathSpec": ("drop_path", {}),
    "ClassifierHead": ("head", {"type": "classifier"}),
    "FeaturesHead": ("head", {"type": "features"}),
    "InitSpec": ("init", {}),
}


def test_every_example_written_into_a_spec_loads() -> None:
    """The examples are real values: each, written where its field sits in a valid spec, loads."""
    from archgen import SpecError, load_spec

    assert set(PLACES) == set(SCHEMA["$defs"])
    for pointer, prop in PROPERTIES:
        parts = pointer.split("/")
        if parts[1:2] == ["properties"] and len(parts) == 3:  # a top-level field
            owner, field, where, mapping = "", parts[2], "", None
        elif parts[1:2] == ["$defs"] and parts[3:4] == ["properties"] and len(parts) == 5:
            owner, field = parts[2], parts[4]
            where, mapping = PLACES[owner]
        else:
            raise AssertionError(f"a property in an unexpected place: {pointer}")
        for example in prop["examples"]:
            if field == "extends" and str(example).endswith(".yaml"):
                continue  # a path relative to a spec file; a mapping has none
            data: dict = {"name": "example", "block": {"type": "bottleneck"}, "stages": [{"depth": 1, "width": 64}] * 4}
            if mapping is None:
                data[field] = example
            else:
                node = {**mapping, field: example}
                keys = where.split(".")
                target: Any = data
                for key in keys[:-1]:
                    target = target[int(key)] if key.isdigit() else target[key]
                if keys[-1].isdigit():
                    target[int(keys[-1])] = node
                else:
                    target[keys[-1]] = node
            try:
                load_spec(data)
            except SpecError as exc:
                raise AssertionError(f"{pointer}: {example!r}: {exc}") from None


HOSTILE = ROOT / "tests" / "hostile"
# Hostile specs the loader refuses for what the schema says too: an unknown key, a wrong type, a value
# out of bounds, a missing required field, a name that is no identifier. (Not picked: what only the
# loader or the resolver can see (YAML syntax and tags, extends chains, sizes of the network), and
# two the schema cannot express as the loader does: 64.0 for an integer, which JSON Schema calls an
# integer, and a block mapping without 'type', which the schema lets through because a file that
# extends another may leave out any field, the type too.)
SCHEMA_LEVEL = [
    *("unknown_head_clases", "unknown_top_activation", "unknown_se_ration", "unknown_stage_widht"),
    *("unknown_block_type", "unknown_groups_on_plain", "missing_block", "missing_stages"),
    *("type_depth_string", "type_depth_bool", "type_preact_string", "type_eps_bool", "type_eps_string"),
    *("type_rate_string", "type_stages_string", "type_block_list", "type_size_triple", "type_description_date"),
    *("type_top_level_list", "type_act_value", "type_stage_block_zero", "parent_not_a_path"),
    *("zero_depth", "negative_width", "zero_stage_stride", "negative_stem_stride", "zero_stem_width"),
    *("zero_width_multiplier", "negative_input_side", "zero_classes", "groups_zero", "groups_negative"),
    *("groups_fractional", "groups_enormous", "absurd_depth", "absurd_width", "absurd_input", "absurd_classes"),
    *("inject_name_triple_quote", "inject_name_newline", "inject_name_dunder_import", "inject_name_homoglyph"),
    *("inject_name_jinja_expression", "inject_name_jinja_statement", "inject_name_fullwidth"),
    "missing_stage_width",  # a stages list replaces the parent's whole: every stage has depth and width
]


@functools.cache
def _hostile_cases() -> dict[str, dict]:
    """The corpus' expected problems (tests/hostile/expected.yaml), by file."""
    return {c["file"]: c for c in yaml.safe_load((HOSTILE / "expected.yaml").read_text())["cases"]}


@pytest.mark.parametrize("case", SCHEMA_LEVEL)
def test_hostile_specs_the_loader_refuses_the_schema_refuses_at_the_same_field(case: str) -> None:
    from jsonschema.exceptions import best_match

    from archgen import SpecError, load_spec

    path = HOSTILE / f"{case}.yaml"
    expected = _hostile_cases()[path.name]
    with pytest.raises(SpecError) as refused:
        load_spec(path)
    assert refused.value.problems[0].field == expected["field"]
    error = best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(path.read_text())))
    assert error is not None, case
    # The schema's error lies on the loader's field's path (at it, above it, or inside it).
    at, field = [str(p) for p in error.absolute_path], expected["field"].split(".") if expected["field"] else []
    common = min(len(at), len(field))
    assert at[:common] == field[:common], (at, field, error.message)
