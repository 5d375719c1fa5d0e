"""docs/spec-language.md is generated from the spec models (archgen/language/specdoc.py), and current.

As for generated/ and the JSON Schema, CI fails while the committed file differs from what
`python -m archgen.language.specdoc` writes now. The generator is held to its promises: every model and
every field of the language is documented, with the description and examples of its Field; the
text is the same in every process; each example, as the document writes it, reads back through
archgen's own YAML reader as the value it stands for; and it imports no framework.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, hide_modules

from archgen.language import spec as language
from archgen.language import specdoc
from archgen.language.schema import json_schema
from archgen.language.yamlsource import parse_yaml

DOC = ROOT / "docs" / "spec-language.md"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archgen.language.specdoc", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_committed_document_is_current() -> None:
    assert specdoc.DOC == DOC
    assert DOC.read_text(encoding="utf-8") == specdoc.render(), "stale: run python -m archgen.language.specdoc"


def test_check_exits_1_on_a_stale_file_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "spec-language.md"
    out.write_text("old\n", encoding="utf-8")
    result = _run("--check", "-o", str(out))
    assert result.returncode == 1 and "is stale: run 'python -m archgen.language.specdoc'" in result.stderr
    assert out.read_text(encoding="utf-8") == "old\n"
    assert _run("--check", "-o", str(tmp_path / "missing.md")).returncode == 1
    assert _run("-o", str(out)).returncode == 0
    assert _run("--check", "-o", str(out)).returncode == 0
    mtime = out.stat().st_mtime_ns
    assert _run("-o", str(out)).returncode == 0 and out.stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_byte_identical_in_every_process_and_without_any_framework(tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path / "hidden", ["torch", "torchvision", "timm", "tensorflow", "keras", "jax", "numpy"])
    texts = []
    for seed in ("0", "1"):
        out = tmp_path / f"doc{seed}.md"
        result = _run("-o", str(out), env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(hidden)})
        assert result.returncode == 0, result.stderr
        texts.append(out.read_bytes())
    assert texts[0] == texts[1] == DOC.read_bytes()


def _models() -> list[type]:
    return [m for section in specdoc.plan() for m in section.models]


def test_every_model_and_field_of_the_language_is_documented() -> None:
    documented = {m.__name__ for m in _models()}
    assert set(json_schema()["$defs"]) | {"Spec"} == documented
    text = specdoc.render()
    for model in _models():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert field.examples, f"{model.__name__}.{name} has no examples"
            row = f"| `{name}` | "
            rows = [line for line in text.splitlines() if line.startswith(row) and field.description[:40] in line]
            assert rows, f"{model.__name__}.{name}: no row with its description"
            cells = [f"`{specdoc.yaml_flow(example)}`" for example in field.examples]
            assert any(all(c in row for c in cells) for row in rows), (model.__name__, name, field.examples)
    for heading in ("## `act`", "## `output_stride`", "## `drop_path`", "## `init`", "## `tweaks`", "## `norm`"):
        assert heading in text
    for depth, depths in language.DEPTH_PRESETS.items():
        assert f"| `{depth}` | {'-'.join(map(str, depths))} |" in text


def test_every_example_reads_back_as_written() -> None:
    """Each example as the document writes it, read by archgen's own YAML reader, is the example."""
    for model in _models():
        for name, field in model.model_fields.items():
            for example in field.examples or []:
                data, _ = parse_yaml(f"value: {specdoc.yaml_flow(example)}\n", "<doc>")
                assert data["value"] == example, (model.__name__, name, example)


def test_links_and_types_come_from_the_schema() -> None:
    text = specdoc.render()
    assert "| `stem` | `classic` \\| `deep` \\| `none` or a mapping ([`stem`](#stem)) | `classic` |" in text
    assert "| `se` | a mapping ([`block.se`](#blockse)) or `null` | `null` |" in text
    assert "| `groups` | an integer (1 to 65536) | `1` |" in text
    assert "| `width_multiplier` | a number (0 < x <= 16) | `1.0` |" in text
    assert "| `depth` | an integer (1 to 1000) | required |" in text
    assert "required unless the file `extends` another" in text
