"""The JSON Schema of the spec language, from the pydantic models.

The models describe a spec after loading; the schema describes what may be
written in a file, so it also admits the shorthands the loader expands: a
depth preset for ``stages``, a bare type name for ``stem``/``block``/``head``,
a stage ``block`` that only lists the fields it changes, and a missing ``name``.
"""

from __future__ import annotations

import json
from typing import Any

from .spec import DEPTH_PRESETS, Spec

SCHEMA_ID = "https://archgen.dev/schema/archgen-spec.schema.json"


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    defs = schema["$defs"]
    props = schema["properties"]
    # Any file may extend another, so it may leave out any field (a variant's
    # ``type`` included: it is inherited, or the default variant); a file that
    # extends nothing must still give the block and the stages.
    for definition in defs.values():
        definition.pop("required", None)
    schema.pop("required", None)
    schema["if"] = {"required": ["extends"]}
    schema["else"] = {"required": ["block", "stages"]}
    props["stages"] = {
        "description": "A list of stages, or a depth preset expanding to the standard four stages.",
        "anyOf": [{"type": "integer", "enum": sorted(DEPTH_PRESETS)}, props["stages"]],
    }
    kinds_of_shortcut = defs["ShortcutSpec"]["properties"]["type"]["enum"]
    for kind in ("BasicBlock", "BottleneckBlock"):
        defs[kind]["properties"]["shortcut"] = {
            "anyOf": [{"type": "string", "enum": kinds_of_shortcut}, {"$ref": "#/$defs/ShortcutSpec"}]
        }
    for name, kinds in (("stem", _STEMS), ("block", _BLOCKS), ("head", _HEADS)):
        props[name] = _variants(defs, kinds)
    defs["StageSpec"]["properties"]["block"] = {
        "description": "Fields merged over the top-level block for this stage.",
        "anyOf": [*_variants(defs, _BLOCKS)["anyOf"], {"type": "null"}],
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _variants(defs: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """A variant by its bare type name, or as a mapping of one of the variants."""
    names = [defs[k]["properties"]["type"]["const"] for k in kinds]
    return {"anyOf": [{"type": "string", "enum": names}, *({"$ref": f"#/$defs/{k}"} for k in kinds)]}


_STEMS = ("ClassicStem", "DeepStem", "NoStem")
_BLOCKS = ("BasicBlock", "BottleneckBlock", "PlainBlock")
_HEADS = ("ClassifierHead", "FeaturesHead")


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
