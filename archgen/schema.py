"""The JSON Schema of the spec language, from the pydantic models.

The models describe a spec after loading; the schema describes what may be
written in a file, so it also admits the shorthands the loader expands: a
depth preset for ``stages``, a bare type name for ``stem``/``block``/``head``,
a stage ``block`` that only lists the fields it changes, and a missing ``name``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .spec import DEPTH_PRESETS, Spec

SCHEMA_ID = "https://archgen.dev/schema/archgen-spec.schema.json"


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    defs = schema["$defs"]
    props = schema["properties"]
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]
    props["stages"] = {
        "description": "A list of stages, or a depth preset expanding to the standard four stages.",
        "anyOf": [{"type": "integer", "enum": sorted(DEPTH_PRESETS)}, props["stages"]],
    }
    for name, kinds in (("stem", ("ClassicStem", "DeepStem", "NoStem")), ("block", _BLOCKS), ("head", _HEADS)):
        names = [defs[k]["properties"]["type"]["const"] for k in kinds]
        props[name] = {"anyOf": [{"type": "string", "enum": names}, *({"$ref": f"#/$defs/{k}"} for k in kinds)]}
    partial: list[dict[str, Any]] = [{"type": "string", "enum": ["basic", "bottleneck", "plain"]}]
    for kind in _BLOCKS:
        loose = copy.deepcopy(defs[kind])
        loose.pop("required", None)
        defs[f"{kind}Override"] = loose
        partial.append({"$ref": f"#/$defs/{kind}Override"})
    defs["StageSpec"]["properties"]["block"] = {
        "description": "Fields merged over the top-level block for this stage.",
        "anyOf": [*partial, {"type": "null"}],
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


_BLOCKS = ("BasicBlock", "BottleneckBlock", "PlainBlock")
_HEADS = ("ClassifierHead", "FeaturesHead")


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
