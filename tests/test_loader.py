"""Loading: extends, tweaks, overrides, and errors that name file, line and field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, spec_path

import archgen
from archgen import SpecError, load_spec
from archgen.language import catalog, yamlsource
from archgen.tools.diff import diff


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
        ("stages.7.depth=3", "stages.7.depth", "expected stages.N.depth with N from 0 to 3; received 7"),
        ("head.clases=10", "head.clases", "did you mean 'classes'"),
        ("stages.0.depth=0", "stages.0.depth", "greater than 0"),
        ("nonsense", "nonsense", "FIELD=VALUE"),
    ],
)
def test_bad_overrides_name_the_field(override: str, field: str, needle: str) -> None:
    err = error_of(spec_path("resnet50"), [override])
    assert err.field == field and needle in err.message and err.file == f"--set {override}"


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
    assert (info.value.file, info.value.line, info.value.field) == ("--set stages.0.depth=2", None, "stages.0.depth")
    assert "unknown depth preset 7" in info.value.message


# -- the command line: exit 2 and one exact `error: FILE:LINE:COL: FIELD: MESSAGE` line ----------------


def cli_error(args: list[object]) -> str:
    """The first error line of an archgen command that must refuse its input (exit 2)."""
    result = invoke(args, code=2)
    assert "Traceback" not in result.output and result.stdout == ""
    return next(line for line in result.stderr.splitlines() if line.startswith("error: "))


# -- numbers: strict, and a plain 1e-5 is one ----------------------------------------------------------

QUOTED_NUMBERS = [
    ("drop_path: {rate: '0.1'}", "drop_path.rate", "'0.1'"),
    ("head: {dropout: '0.2'}", "head.dropout", "'0.2'"),
    ("width_multiplier: '0.5'", "width_multiplier", "'0.5'"),
    ('norm: {eps: "1e-5"}', "norm.eps", "'1e-5'"),
    ("block: {type: bottleneck, width_factor: '2'}", "block.width_factor", "'2'"),
    ("block: {type: bottleneck, se: {ratio: '0.25'}}", "block.se.ratio", "'0.25'"),
    ("norm: {momentum: true}", "norm.momentum", "true"),
]


@pytest.mark.parametrize(("line", "field", "shown"), QUOTED_NUMBERS, ids=[q[1] for q in QUOTED_NUMBERS])
def test_a_quoted_number_is_refused_as_integers_are(tmp_path: Path, line: str, field: str, shown: str) -> None:
    block = "" if line.startswith("block:") else "block: bottleneck\n"
    path = write(tmp_path, "s.yaml", f"stages: 50\n{line}\n{block}")
    err = error_of(path)
    assert (err.line, err.field, err.message) == (2, field, f"expected a number; received {shown}")


def test_a_quoted_number_through_the_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "block: basic\nstages: 18\nhead: {dropout: '0.2'}\n")
    assert cli_error(["validate", path]) == f"error: {path}:3:8: head.dropout: expected a number; received '0.2'"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-5", 1e-5), ("-2E3", -2000.0), ("+5e+2", 500.0), ("1.0e5", 1e5), ("1.001e-5", 1.001e-5), (".5E-1", 0.05)],
)
def test_a_plain_exponent_is_a_number_as_in_yaml_1_2(text: str, value: float) -> None:
    data, _ = yamlsource.parse_yaml(f"a: {text}\nb: [{text}]\nc: '{text}'\nd: \"{text}\"\n", "x.yaml")
    assert data == {"a": value, "b": [value], "c": text, "d": text}  # quoted, it stays text
    assert isinstance(data["a"], float)


def test_plain_exponents_in_files_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "block: basic\nstages: 18\nnorm: {eps: 1e-5, momentum: 1e-1}\n")
    assert load_spec(path).norm.eps == 1e-5 and load_spec(path).norm.momentum == 0.1
    assert load_spec(spec_path("keras_resnet50")).norm.eps == 1.001e-5
    assert load_spec(spec_path("resnet50"), ["norm.eps=1e-3", "head.dropout=2e-1"]).norm.eps == 1e-3
    err = error_of(spec_path("resnet50"), ['norm.eps="1e-5"'])
    assert (err.file, err.field, err.message) == (
        '--set norm.eps="1e-5"',
        "norm.eps",
        "expected a number; received '1e-5'",
    )


def test_an_integer_number_stays_a_float() -> None:
    """width_multiplier: 2 is 2.0, so the resolved spec (and its sha256) does not depend on how it was written."""
    spec = load_spec({"name": "n", "block": "basic", "stages": 18, "width_multiplier": 2, "norm": {"momentum": 1}})
    assert type(spec.width_multiplier) is float and type(spec.norm.momentum) is float


# -- messages in archgen's voice ----------------------------------------------------------------------

MESSAGES = [
    ("stages:\n  - {depth: '3', width: 8}\n", 2, "stages.0.depth", "expected an integer; received '3'"),
    ("stages:\n  - {depth: 2, width: 8.0}\n", 2, "stages.0.width", "expected an integer; received 8.0"),
    ("stages:\n  - {depth: -1, width: 8}\n", 2, "stages.0.depth", "expected a number greater than 0; received -1"),
    ("stages: 18\nblock: {type: basic, preact: 'yes'}\n", 2, "block.preact", "expected true or false; received 'yes'"),
    ("stages: fifty\n", 1, "stages", "expected a list; received 'fifty'"),
    ("stages: {depth: 3}\n", 1, "stages", "expected a list; received a mapping"),
    ("stages: []\n", 1, "stages", "expected a list of at least 1 item; received 0"),
    ("stages: 18\nstem: null\n", 2, "stem", "expected a mapping; received null"),
    ("stages: 18\nnorm: 3\n", 2, "norm", "expected a mapping; received 3"),
    ("stages: 18\ndrop_path: [0.1]\n", 2, "drop_path", "expected a mapping; received a list"),
    ("stages:\n  - {depth: 1, width: 8, block: 0}\n", 2, "stages.0.block", "expected a mapping; received 0"),
    (
        "stages: 18\nstem: {type: deep, widths: [32]}\n",
        2,
        "stem.widths",
        "expected a list of at least 2 items; received 1",
    ),
    ("stages: 18\nhead: {dropout: 1.0}\n", 2, "head.dropout", "expected a number less than 1; received 1.0"),
    (
        "stages: 18\nhead: {dropout: -0.5}\n",
        2,
        "head.dropout",
        "expected a number greater than or equal to 0; received -0.5",
    ),
    (
        "stages: 18\nwidth_multiplier: 17\n",
        2,
        "width_multiplier",
        "expected a number less than or equal to 16; received 17",
    ),
    ("stages: 18\nwidth_multiplier: 0\n", 2, "width_multiplier", "expected a number greater than 0; received 0"),
    ("stages: 18\ntweaks: [E]\n", 2, "tweaks.0", "expected 'B', 'C' or 'D'; received 'E'"),
    ("stages: 18\ntweaks: B\n", 2, "tweaks", "expected a list; received 'B'"),
    ("stages: 18\ndescription: 3\n", 2, "description", "expected a string; received 3"),
    (
        "stages: 18\ndescription: 2024-01-31\n",
        2,
        "description",
        "expected a string; received the date 2024-01-31 (quote it to make it text)",
    ),
    (
        "stages: 18\ndescription: " + "x" * 2001 + "\n",
        2,
        "description",
        "expected at most 2000 characters; received 2001",
    ),
    ("stages: 18\nname: " + "n" * 65 + "\n", 2, "name", "expected at most 64 characters; received 65"),
    (
        "stages: 18\nname: 3x\n",
        2,
        "name",
        "expected an identifier (ASCII letters, digits and '_', not starting with a digit); received '3x'",
    ),
    (
        "stages: 18\nact: [relu]\n",
        2,
        "act",
        "expected 'relu', 'relu6', 'silu', 'gelu', 'leaky_relu', 'elu', 'mish', 'hardswish' or 'tanh'; received a list",
    ),
    ("stages: 18\ninit: {zero_init_last: 1}\n", 2, "init.zero_init_last", "expected true or false; received 1"),
    ("stages: 18\nblock: {type: basic, shortcut: 3}\n", 2, "block.shortcut", "expected a mapping; received 3"),
    ("stages: 18\nblock: {type: basic, se: 'yes'}\n", 2, "block.se", "expected a mapping; received 'yes'"),
    ("stages: 18\ninput: big\n", 2, "input", "expected a mapping; received 'big'"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), MESSAGES, ids=[m[3][:50] for m in MESSAGES])
def test_messages_say_what_was_expected_and_received(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    own_block = any(line.startswith("block:") for line in text.splitlines())
    path = write(tmp_path, "s.yaml", text if own_block else f"{text}block: basic\n")
    err = error_of(path)
    assert (err.line, err.field, err.message) == (line, field, message)


def test_no_pydantic_wording_reaches_the_user() -> None:
    """Every field of the language, given values of the wrong kinds: archgen's words only."""
    wrong: list[Any] = [None, True, "text", "0.5", 1.5, -1, 0, 10**7, [], [1], {}, {"x": 1}]
    fields = ["name", "description", "extends", "tweaks", "input", "stem", "block", "stages", "width_multiplier"]
    fields += ["head", "norm", "act", "conv_bias", "drop_path", "init"]
    nested = ["input.channels", "input.size", "stem.widths", "stem.pool", "stem.norm_act", "block.preact", "block.se"]
    nested += ["block.shortcut", "block.groups", "block.width_factor", "block.stride_at", "block.se.ratio"]
    nested += ["block.se.bias", "head.dropout", "head.classes", "norm.eps", "drop_path.rate", "init.zero_init_last"]
    seen = 0
    for field in fields + nested:
        for value in wrong:
            data: dict[str, Any] = {"name": "n", "block": {"type": "bottleneck"}, "stages": 50}
            *parents, last = field.split(".")
            at = data
            for part in parents:
                at = at.setdefault(part, {})
            at[last] = value
            try:
                archgen.compile_spec(data)
            except SpecError as exc:
                for problem in exc.problems:
                    seen += 1
                    for leak in ("Input should", "valid dictionary", "Value error", "Field required", "String should"):
                        assert leak not in problem.message, f"{field}={value!r}: {problem}"
                    assert problem.file == "<dict>" and problem.line is None
    assert seen > 200


def test_messages_through_the_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "block: basic\nstages:\n  - {depth: '3', width: 8}\n")
    assert cli_error(["validate", path]) == f"error: {path}:3:6: stages.0.depth: expected an integer; received '3'"


def test_problems_come_in_reading_order_and_carry_a_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        "act: swish\nnorm: {momentum: 0, eps: -1}\nhead: {clases: 3}\nblock: bottleneck\nstages: 50\n",
    )
    err = error_of(path)
    assert [(p.line, p.column, p.field) for p in err.problems] == [
        (1, 1, "act"),
        (2, 8, "norm.momentum"),
        (2, 21, "norm.eps"),
        (3, 8, "head.clases"),
    ]
    assert (err.line, err.column) == (1, 1)
    result = invoke(["validate", path], code=2)
    assert [line.split(": ")[1] for line in result.stderr.splitlines()] == [
        f"{path}:1:1",
        f"{path}:2:8",
        f"{path}:2:21",
        f"{path}:3:8",
    ]


def test_problems_of_a_parent_and_an_override_keep_their_files_in_order(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "block: bottleneck\nstages: 50\nnorm: {eps: 0}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nhead: {dropout: 2}\nact: swish\n")
    err = error_of(child, ["stages.0.depth=0"])
    assert [(Path(p.file).name, p.line) for p in err.problems] == [
        ("child.yaml", 2),
        ("child.yaml", 3),
        ("base.yaml", 3),
        ("--set stages.0.depth=0", None),
    ]


# -- overrides: located at the override, and clear about lists ------------------------------------------

OVERRIDES = [
    (
        "stages.depth=3",
        "stages.depth",
        "'stages' is a list of 4 stages: expected stages.N.depth with N from 0 to 3; received 'depth'",
    ),
    (
        "stages.4.depth=3",
        "stages.4.depth",
        "'stages' is a list of 4 stages: expected stages.N.depth with N from 0 to 3; received 4",
    ),
    (
        "stages.-1.depth=3",
        "stages.-1.depth",
        "'stages' is a list of 4 stages: expected stages.N.depth with N from 0 to 3; received '-1'",
    ),
    ("stages.0.depth=0", "stages.0.depth", "expected a number greater than 0; received 0"),
    ("stages.0.depth=&a 3", "stages.0.depth", "YAML anchors and aliases are not allowed; use 'extends'"),
    ("head.classes.x=3", "head.classes.x", "'head.classes' is 10, not a mapping: it has no field 'x'"),
    ("head.0=3", "head.0", "'head' is not a list: expected a field name after 'head.'; received 0"),
    ("tweaks.0=B", "tweaks.0", "'tweaks' is not set, so it has no item 0: set all of it (--set 'tweaks=[...]')"),
    (
        "stem.widths.0=16",
        "stem.widths.0",
        "'stem.widths' is not set, so it has no item 0: set all of it (--set 'stem.widths=[...]')",
    ),
    ("stem.width.x=16", "stem.width.x", "'stem.width' is 64, not a mapping: it has no field 'x'"),
    ("stem.deep.widths=[8]", "stem.deep", "unknown field 'deep'"),
    ("block.se={ratio: 2}", "block.se.ratio", "expected a number less than or equal to 1; received 2"),
    (
        "stages..depth=3",
        "stages..depth",
        "expected a dotted field path such as stages.2.depth; received 'stages..depth'",
    ),
    ("head.classes=[1", "head.classes", "YAML syntax error"),
    ("nonsense", "nonsense", "expected FIELD=VALUE, e.g. stages.2.depth=36"),
]


@pytest.mark.parametrize(("override", "field", "message"), OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_every_problem_of_an_override_is_located_at_it(override: str, field: str, message: str) -> None:
    err = error_of(spec_path("resnet50"), ["head.classes=10", override])
    assert {(p.file, p.line, p.column) for p in err.problems} == {(f"--set {override}", None, None)}, str(err)
    assert err.field == field and message in err.message


def test_overrides_through_the_cli() -> None:
    line = cli_error(["summary", spec_path("resnet50"), "--set", "stages.depth=3"])
    assert line == (
        "error: --set stages.depth=3: stages.depth: 'stages' is a list of 4 stages: "
        "expected stages.N.depth with N from 0 to 3; received 'depth'"
    )


IDENTITY = (
    "layer1.0.downsample: an identity shortcut cannot change shape (64->256 channels, stride 1); "
    "use conv, avgpool or maxpool"
)


def test_a_shape_error_an_override_causes_names_the_override() -> None:
    """resolve.py blames a stage's block field on the stage when Positions.exact says the stage wrote it:
    the override wrote stages.0.block.shortcut (the shorthand of {type: identity})."""
    override = "stages.0.block.shortcut=identity"
    err = error_of(spec_path("resnet50"), [override])
    assert (err.file, err.line, err.field, err.message) == (
        f"--set {override}",
        None,
        "stages.0.block.shortcut.type",
        IDENTITY,
    )
    line = cli_error(["summary", spec_path("resnet50"), "--set", override])
    assert line == f"error: --set {override}: stages.0.block.shortcut.type: {IDENTITY}"
    for mapping in ("stages.0.block={shortcut: identity}", "stages.0.block.shortcut={type: identity}"):
        assert error_of(spec_path("resnet50"), [mapping]).file == f"--set {mapping}"
    top = "block.shortcut=identity"  # the top-level block: blamed on its override too
    assert error_of(spec_path("resnet50"), [top]).file == f"--set {top}"


def test_a_stage_shortcut_written_as_shorthand_in_a_file_is_blamed_on_the_stage(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.yaml", "block: bottleneck\nstages:\n  - {depth: 1, width: 64, block: {shortcut: identity}}\n"
    )
    err = error_of(path)
    assert (err.line, err.column, err.field, err.message) == (3, 35, "stages.0.block.shortcut.type", IDENTITY)


def test_positions_exact_counts_a_shorthand_parent_as_writing_its_type() -> None:
    _, layer = yamlsource.parse_yaml("a: {shortcut: identity, se: null, block: {type: basic}}\n", "x.yaml")
    positions = yamlsource.Positions([layer])
    assert positions.exact(("a", "shortcut", "type")) and positions.exact(("a", "block", "type"))
    assert not positions.exact(("a", "se", "type"))  # null removes the field: what is beneath is not from here
    assert not positions.exact(("a", "type")) and not positions.exact(("a", "shortcut", "kind"))


# -- a spec given as a mapping -------------------------------------------------------------------------


def test_a_mapping_is_loaded_like_a_files_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"name": "mine", "block": {"type": "bottleneck"}, "stages": 50, "input": {"size": (128, 160)}}
    spec, network = archgen.compile_spec(data, ["head.classes=10"])
    assert spec.name == "mine" and spec.input.hw == (128, 160) and spec.head.classes == 10
    assert network.params == archgen.compile_spec(spec_path("resnet50"), ["head.classes=10"])[1].params
    assert data == {"name": "mine", "block": {"type": "bottleneck"}, "stages": 50, "input": {"size": (128, 160)}}
    write(tmp_path, "base.yaml", "block: basic\nstages: 18\nhead: {classes: 10}\n")
    monkeypatch.chdir(tmp_path)  # extends is relative to the working folder
    assert load_spec({"name": "child", "extends": "base.yaml", "act": "silu"}).head.classes == 10
    assert load_spec({"name": "child", "extends": "base"}).block.type == "basic"
    # without a name, a mapping is named after its parent, as a file is after itself
    assert load_spec({"extends": "base.yaml"}).name == "base"
    spec = load_spec({"extends": "resnet50", "head": {"classes": 10}})  # the README's example
    assert (spec.name, spec.head.classes, spec.block.type) == ("resnet50", 10, "bottleneck")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"block": "basic", "stages": 18},
            "name",
            "required field is missing (a mapping has no file name to default to, nor a parent in 'extends')",
        ),
        ({"name": "n", "block": "basic", "stages": "18"}, "stages", "expected a list; received '18'"),
        ({"name": "n", "block": "basic", "stages": 18, 3: 4}, "3", "keys must be strings; received 3"),
        ({"name": "n", "extends": "../x.yaml"}, "extends", "'../x.yaml' lies outside the spec folder"),
        ({"name": "n", "extends": "nowhere.yaml"}, "extends", "parent spec 'nowhere.yaml' not found"),
        (
            {"name": "n", "block": "basic", "stages": [{"depth": 1, "width": 2**20}]},
            "stages.0.width",
            "less than or equal to 65536",
        ),
    ],
)
def test_problems_of_a_mapping_are_located_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict, field: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(data)
    err = info.value
    assert (err.file, err.line, err.column, err.field) == ("<dict>", None, None, field) and message in err.message


def test_a_mapping_that_contains_itself_is_refused() -> None:
    data: dict[str, Any] = {"name": "n", "block": "basic", "stages": 18}
    data["description"] = data
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert info.value.file == "<dict>" and "nesting deeper than 32 levels" in info.value.message


def test_a_shape_error_in_a_mapping_is_located_at_it() -> None:
    data = {"name": "n", "block": {"type": "bottleneck", "shortcut": "identity"}, "stages": 50}
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(data)
    assert (info.value.file, info.value.field) == ("<dict>", "block.shortcut.type")


# -- extends: did-you-mean, and shipped specs by name ---------------------------------------------------


def test_a_missing_parent_gets_a_did_you_mean(tmp_path: Path) -> None:
    write(tmp_path, "resnet50.yaml", "block: bottleneck\nstages: 50\n")
    child = write(tmp_path, "child.yaml", "head: {classes: 10}\nextends: resnet5.yaml\n")
    err = error_of(child)
    message = "parent spec 'resnet5.yaml' not found; did you mean 'resnet50.yaml'?"
    assert (err.file, err.line, err.column, err.field, err.message) == (str(child), 2, 1, "extends", message)
    assert cli_error(["validate", child]) == f"error: {child}:2:1: extends: {message}"
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "base.yaml", "block: basic\nstages: 18\n")
    nested = write(tmp_path, "nested.yaml", "extends: sub/bse.yaml\n")
    assert error_of(nested).message == "parent spec 'sub/bse.yaml' not found; did you mean 'sub/base.yaml'?"
    alone = write(tmp_path, "alone.yaml", "extends: zzz.yaml\n")  # nothing close: no guess
    assert error_of(alone).message == "parent spec 'zzz.yaml' not found"


RESNET50D_10_CLASSES = 25_576_264 - 2048 * 990 - 990  # timm resnet50d, with a 10-class instead of a 1000-class fc


def test_extends_a_shipped_spec_by_name_from_anywhere(tmp_path: Path) -> None:
    mine = write(tmp_path, "mine.yaml", "extends: resnet50d\nhead: {classes: 10}\n")
    spec, network = archgen.compile_spec(mine)
    assert network.params == RESNET50D_10_CLASSES == 23_547_754
    assert spec.name == "mine" and spec.tweaks == ["B", "C", "D"] and spec.stem.type == "deep"
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    again = write(deeper, "again.yaml", "extends: resnet50d\nhead: {classes: 10}\n")
    assert archgen.compile_spec(again)[1].params == RESNET50D_10_CLASSES
    result = invoke(["validate", mine])
    assert "23,547,754 params" in result.stdout, result.output


def test_fields_from_a_shipped_parent_are_located_in_its_file(tmp_path: Path) -> None:
    mine = write(tmp_path, "mine.yaml", "extends: resnet50d\nhead: {classes: 10}\n")
    _, positions = archgen.load_spec_with_positions(mine)
    inherited = positions.find(("block", "stride_at"))  # written by resnet50.yaml, which resnet50d extends
    shipped = catalog.shipped("resnet50")
    assert shipped is not None and inherited is not None and Path(inherited.file).resolve() == shipped
    assert "stride_at" in shipped.read_text().splitlines()[inherited.line - 1]
    assert positions.find(("head", "classes")) == yamlsource.Pos(str(mine), 2, 8)


def test_a_file_beside_the_spec_wins_over_the_shipped_one(tmp_path: Path) -> None:
    write(tmp_path, "resnet50d.yaml", "block: basic\nstages: 18\n")
    mine = write(tmp_path, "mine.yaml", "extends: resnet50d\n")
    spec = load_spec(mine)
    assert spec.block.type == "basic" and spec.tweaks == []
    write(tmp_path, "local.yaml", "extends: resnet18\n")  # a sibling may itself extend a shipped spec
    assert load_spec(tmp_path / "local.yaml").stages[0].depth == 2


def test_an_unknown_name_gets_the_catalogs_did_you_mean(tmp_path: Path) -> None:
    mine = write(tmp_path, "mine.yaml", "head: {classes: 10}\nextends: resnt50d\n")
    err = error_of(mine)
    message = catalog.unknown_name("resnt50d")
    assert (err.file, err.line, err.column, err.field, err.message) == (str(mine), 2, 1, "extends", message)
    assert "did you mean 'resnet50d'?" in message
    assert cli_error(["validate", mine]) == f"error: {mine}:2:1: extends: {message}"
    other = write(tmp_path, "other.yaml", "extends: resnet50e\n")
    assert error_of(other).message == catalog.unknown_name("resnet50e")


def test_path_escapes_stay_refused_by_path(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    write(tmp_path, "outside.yaml", "block: basic\nstages: 18\n")
    escape = write(tmp_path / "inner", "e.yaml", "extends: ../outside.yaml\n")
    assert "lies outside the spec folder" in error_of(escape).message
    shipped = write(
        tmp_path / "inner", "s.yaml", f"extends: {os.path.relpath(spec_path('resnet50'), tmp_path / 'inner')}\n"
    )
    assert "lies outside the spec folder" in error_of(shipped).message  # by path: as before; by name it works


def test_load_spec_takes_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, network = archgen.compile_spec("resnet50d")
    assert spec.name == "resnet50d" and network.params == 25_576_264
    monkeypatch.chdir(tmp_path)
    assert load_spec("resnet50d", ["head.classes=10"]).head.classes == 10
    write(tmp_path, "resnet50d", "name: here\nblock: basic\nstages: 18\n")  # a path that exists is a file
    assert load_spec("resnet50d").name == "here"
    with pytest.raises(SpecError) as info:
        load_spec("resnt50d")
    assert (info.value.file, info.value.line, info.value.message) == (
        "resnt50d",
        None,
        catalog.unknown_name("resnt50d"),
    )
    with pytest.raises(SpecError) as info:
        load_spec("nowhere.yaml")
    assert info.value.file == "nowhere.yaml" and "cannot read file" in info.value.message


def test_a_cycle_through_names_is_found(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b\n")
    b = write(tmp_path, "b.yaml", "extends: a\n")
    assert error_of(b).message == "'extends' cycle: b.yaml -> a.yaml -> b.yaml"


def test_an_override_of_tweaks_expands_the_tweaks_it_adds() -> None:
    """--set tweaks=[...] means what a file's tweaks mean (it once changed the list and no field)."""
    spec, tweaked = archgen.compile_spec(spec_path("resnet50"), ["tweaks=[C, D]"])
    _, spelled = archgen.compile_spec(spec_path("resnet50"), ["stem={type: deep}", "block.shortcut.type=avgpool"])
    _, plain = archgen.compile_spec(spec_path("resnet50"))
    assert (spec.tweaks, spec.stem.type, spec.block.shortcut.type) == (["C", "D"], "deep", "avgpool")
    assert diff(tweaked, spelled).identical and not diff(tweaked, plain).identical
    # The other overrides are set after the tweaks' fields, whatever their order on the command line.
    spec, _ = archgen.compile_spec(spec_path("resnet50"), ["block.shortcut.type=conv", "tweaks=[D]"])
    assert spec.block.shortcut.type == "conv"
    # A tweak the file already has is not expanded again over the other overrides.
    spec, _ = archgen.compile_spec(spec_path("resnet50d"), ["block.shortcut.type=conv", "tweaks=[B, C, D]"])
    assert spec.block.shortcut.type == "conv"


def test_an_override_cannot_take_a_tweak_back() -> None:
    err = error_of(spec_path("resnet50d"), ["tweaks=[C, D]"])
    assert [(p.file, p.field) for p in err.problems] == [("--set tweaks=[C, D]", "tweaks")]
    assert "tweak B cannot be taken back" in str(err) and "block.stride_at: 3x3" in str(err)
