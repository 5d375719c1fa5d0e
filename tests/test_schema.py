"""The JSON Schema: current, named by every spec, and agreeing with the loader."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from helpers import ROOT, SPEC_FILES

from archgen.schema import schema_text

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
