"""The JSON Schema of the spec language, from the pydantic models.

The models describe a spec after loading; the schema describes what may be
written in a file, so it also admits the shorthands the loader expands: a
depth preset for ``stages``, a bare type name for ``stem``/``block``/``head``,
a stage ``block`` that only lists the fields it changes, and a missing ``name``.
Every property carries the description and examples of its model field (spec.py),
which YAML editors show while completing.
"""

from __future__ import annotations

import json
from typing import Any

from .spec import DEPTH_PRESETS, UNIONS, Spec, variants

SCHEMA_ID = "https://archgen.dev/schema/archgen-spec.schema.json"


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    defs = schema["$defs"]
    props = schema["properties"]
    # Any file may extend another, so it may leave out any field (a variant's
    # ``type`` included: it is inherited, or the default variant); a file that
    # extends nothing must still give the block and the stages. A stage is the
    # exception: a ``stages`` list replaces the parent's whole, so each of its
    # stages gives its depth and width.
    for name, definition in defs.items():
        if name != "StageSpec":
            definition.pop("required", None)
    schema.pop("required", None)
    schema["if"] = {"required": ["extends"]}
    schema["else"] = {"required": ["block", "stages"]}
    stages = props["stages"]
    props["stages"] = {
        **_docs(stages),
        "anyOf": [{"type": "integer", "enum": sorted(DEPTH_PRESETS)}, stages],
    }
    kinds_of_shortcut = defs["ShortcutSpec"]["properties"]["type"]["enum"]
    residual = [m.__name__ for m in variants(UNIONS["block"]) if "shortcut" in m.model_fields]
    for kind in residual:
        shortcut = defs[kind]["properties"]["shortcut"]
        defs[kind]["properties"]["shortcut"] = {
            **_docs(shortcut),
            "anyOf": [{"type": "string", "enum": kinds_of_shortcut}, {"$ref": "#/$defs/ShortcutSpec"}],
        }
    # The optional unions inside a variant (a block's attn, a stem's or block's anti_alias): a bare type
    # name, a mapping of one of the variants, or null.
    for field in ("attn", "anti_alias"):
        for definition in defs.values():
            inner = definition.get("properties", {}).get(field)
            if inner is not None:
                definition["properties"][field] = {
                    **_docs(inner),
                    "anyOf": [*_variants(defs, _names(field))["anyOf"], {"type": "null"}],
                    "default": None,
                }
    for name in ("stem", "block", "head", "norm"):
        props[name] = {**_docs(props[name]), **_variants(defs, _names(name))}
    stage_block = defs["StageSpec"]["properties"]["block"]
    defs["StageSpec"]["properties"]["block"] = {
        **_docs(stage_block),
        "anyOf": [*_variants(defs, _names("block"))["anyOf"], {"type": "null"}],
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _docs(prop: dict[str, Any]) -> dict[str, Any]:
    """The documentation of a property (from the model's Field), taken off it to put on the schema that
    replaces it: what an editor shows while completing."""
    return {key: prop.pop(key) for key in ("description", "examples") if key in prop}


def _variants(defs: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """A variant by its bare type name, or as a mapping of one of the variants."""
    names = [defs[k]["properties"]["type"]["const"] for k in kinds]
    return {"anyOf": [{"type": "string", "enum": names}, *({"$ref": f"#/$defs/{k}"} for k in kinds)]}


def _names(field: str) -> tuple[str, ...]:
    """The model names of the variants of one of the language's unions (spec.UNIONS)."""
    return tuple(m.__name__ for m in variants(UNIONS[field]))


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
