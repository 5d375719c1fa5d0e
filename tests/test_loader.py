"""Loading: extends, tweaks, overrides, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import spec_path

import archgen
from archgen import SpecError, load_spec


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def error_of(path: Path, overrides=None) -> SpecError:
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(path, overrides)
    return info.value


def test_extends_chain_and_name_from_file() -> None:
    spec = load_spec(spec_path("resnet101d"))
    assert spec.name == "resnet101d"
    assert spec.stem.type == "deep" and spec.stem.widths == [32, 32, 64]
    assert spec.block.shortcut.type == "avgpool"
    assert [s.depth for s in spec.stages] == [3, 4, 23, 3]
    assert spec.tweaks == ["B", "C", "D"]


def test_child_overrides_a_parents_tweak(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "block: bottleneck\nstages: 50\ntweaks: [D]\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nblock: {shortcut: conv}\n")
    assert load_spec(child).block.shortcut.type == "conv"


def test_tweak_contradicting_the_same_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "tweaks: [D]\nblock:\n  type: bottleneck\n  shortcut: {type: conv}\nstages: 50\n")
    err = error_of(path)
    assert err.file == str(path) and err.line == 4 and err.field == "block.shortcut.type"
    assert "tweak D" in err.message


def test_tweak_c_replaces_a_classic_stem_but_keeps_its_pool(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "block: basic\nstages: 18\nstem: {type: classic, kernel: 5, pool: none}\n")
    child = write(tmp_path, "c.yaml", "extends: base.yaml\ntweaks: [C]\n")
    spec = load_spec(child)
    assert spec.stem.type == "deep" and spec.stem.pool == "none"


def test_type_change_replaces_and_null_resets(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "block: {type: bottleneck, groups: 4, se: {ratio: 0.25}}\nstages: 50\n")
    child = write(tmp_path, "c.yaml", "extends: base.yaml\nblock: {se: null}\n")
    spec = load_spec(child)
    assert spec.block.se is None and spec.block.groups == 4
    other = write(tmp_path, "d.yaml", "extends: base.yaml\nblock: {type: basic}\n")
    assert load_spec(other).block.type == "basic"  # groups (bottleneck-only) did not leak


def test_stage_block_overrides_merge_over_the_top_level_block(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        "block: {type: bottleneck, se: {ratio: 0.25}}\n"
        "stages:\n  - {depth: 1, width: 16}\n  - {depth: 1, width: 32, block: {se: null, groups: 2}}\n",
    )
    spec = load_spec(path)
    assert spec.stage_block(0).se is not None and spec.stage_block(0).groups == 1
    assert spec.stage_block(1).se is None and spec.stage_block(1).groups == 2


def test_overrides() -> None:
    spec = load_spec(spec_path("resnet50"), ["stages.2.depth=36", "head.classes=10", "block.se={ratio: 0.25}"])
    assert [s.depth for s in spec.stages] == [3, 4, 36, 3]
    assert spec.head.classes == 10 and spec.block.se.ratio == 0.25
    assert load_spec(spec_path("resnet50"), {"norm.eps": 1e-3}).norm.eps == 1e-3


@pytest.mark.parametrize(
    ("override", "field", "needle"),
    [
        ("stages.7.depth=3", "stages.7.depth", "out of range"),
        ("head.clases=10", "head.clases", "did you mean 'classes'"),
        ("stages.0.depth=0", "stages.0.depth", "greater than 0"),
        ("nonsense", "nonsense", "FIELD=VALUE"),
    ],
)
def test_bad_overrides_name_the_field(override: str, field: str, needle: str) -> None:
    err = error_of(spec_path("resnet50"), [override])
    assert err.field == field and needle in err.message and err.file.startswith("--set")


BAD_SPECS = [
    # (file text, line, field, message fragment)
    ("block: bottleneck\nstages: 50\nhead: {clases: 10}\n", 3, "head.clases", "did you mean 'classes'"),
    ("block: bottleneck\nstages: 50\nact: swish\n", 3, "act", "received 'swish'"),
    ("block: bottleneck\nstages: 51\n", 2, "stages", "unknown depth preset 51"),
    ("stages: 50\n", None, "block", "required field is missing"),
    ("block: bottleneck\nstages:\n  - {depth: 2, width: -4}\n", 3, "stages.0.width", "greater than 0"),
    ("block: bottleneck\nstages: 50\nblock: basic\n", 3, "block", "duplicate key 'block'"),
    ("block: bottleneck\nstages: 50\ninput:\n\tsize: 3\n", 4, "", "tab character"),
    ("base: &a {x: 1}\nblock: bottleneck\nstages: 50\n", 1, "", "anchors and aliases"),
    ("block: bottleneck\nstages: [\n", 3, "", "YAML syntax error"),
    ("", 1, "", "empty"),
    ("- 1\n- 2\n", 1, "", "a spec is a YAML mapping"),
    ("block: bottleneck\nstages: 50\ninput: {size: 16}\n", 3, "input.size", "spatial size reaches zero"),
    ("block: {type: basic, shortcut: identity}\nstages: 18\n", None, "shortcut.type", "identity shortcut"),
]


@pytest.mark.parametrize(("text", "line", "field", "needle"), BAD_SPECS, ids=[b[3] for b in BAD_SPECS])
def test_bad_specs(tmp_path: Path, text: str, line: int | None, field: str, needle: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    err = error_of(path)
    assert err.file == str(path)
    if line is not None:
        assert err.line == line
    assert field in err.field
    assert needle in err.message, err.message


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path, "bad.yaml", "block: bottleneck\nstages: 50\nact: swish\nhead: {clases: 3}\nnorm: {eps: -1}\n"
    )
    err = error_of(path)
    assert {p.field for p in err.problems} == {"act", "head.clases", "norm.eps"}
    assert sorted(p.line for p in err.problems) == [3, 4, 5]


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"block: bottleneck\nstages: 50\ndescription: caf\xe9\n")
    err = error_of(path)
    assert err.line == 3 and "UTF-8" in err.message


def test_extends_cycle_missing_parent_and_escape(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\nblock: basic\nstages: 18\n")
    b = write(tmp_path, "b.yaml", "extends: a.yaml\n")
    assert "cycle" in error_of(b).message
    missing = write(tmp_path, "m.yaml", "extends: nowhere.yaml\n")
    err = error_of(missing)
    assert err.field == "extends" and err.line == 1 and "not found" in err.message
    inner = tmp_path / "inner"
    inner.mkdir()
    escape = write(inner, "e.yaml", "extends: ../a.yaml\n")
    assert "outside the spec folder" in error_of(escape).message


def test_error_in_parent_names_the_parent_file(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "block: bottleneck\nstages: 50\nnorm: {eps: 0}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\n")
    err = error_of(child)
    assert err.file.endswith("base.yaml") and err.line == 3 and err.field == "norm.eps"


def test_override_inside_a_stages_value_that_is_no_preset(tmp_path: Path) -> None:
    """--set stages.0.depth on 'stages: 7' is a clean error, not a crash (found by tests/test_fuzz.py)."""
    path = tmp_path / "bad.yaml"
    path.write_text("block: basic\nstages: 7\n")
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(path, ["stages.0.depth=2"])
    assert (info.value.file, info.value.line, info.value.field) == ("--set", None, "stages.0.depth")
    assert "unknown depth preset 7" in info.value.message
