"""The command line: each command, its output, and its error paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, SPEC_FILES, SPEC_NAMES, invoke, spec_path

pytestmark = [pytest.mark.torch, pytest.mark.keras]


def test_build_prints_the_summary_and_checks() -> None:
    out = invoke(["build", spec_path("resnetrs152"), "--backend", "torch"]).output
    assert "86,621,576" in out and "151,680" in out
    for section in ("stem", "layer1", "layer4", "head", "total"):
        assert section in out
    assert "ok: torch model matches the IR" in out


def test_build_with_overrides_and_json() -> None:
    args = ["build", spec_path("resnet18"), "--set", "head.classes=10", "--input-size", "64", "--json"]
    data = json.loads(invoke(args).output)
    # resnet18 has 11,689,512 params; a 10-class head drops 512 * 990 + 990 of them.
    assert data["params"] == 11_181_642 and data["ok"] is True
    assert data["input"] == [3, 64, 64] and data["output"] == [10]
    assert {c["check"] for c in data["checks"]} >= {"trainable params", "norm statistics", "shape layer4"}


def test_summary_json_and_table() -> None:
    data = json.loads(invoke(["summary", spec_path("resnet50"), "--json"]).output)
    assert data["params"] == 25_557_032 and data["stats"] == 53_120
    assert [s["name"] for s in data["sections"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert data["sections"][4]["output"] == [2048, 7, 7]
    text = invoke(["summary", spec_path("resnet50"), "--set", "stages.2.depth=36"]).output
    # 30 more 1024-256-1024 bottlenecks: 30 * (1024*256 + 256*256*9 + 256*1024 + 2*(256+256+1024)) = 33,515,520
    assert f"{25_557_032 + 33_515_520:,}" in text


def test_validate_all_specs() -> None:
    out = invoke(["validate", *SPEC_FILES]).output
    assert out.count("ok: ") == len(SPEC_FILES)


def test_list_shows_every_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = invoke(["list"]).output
    for name in SPEC_NAMES:
        assert name in out
    assert "191,891,656" in out  # resnetrs420


def test_schema_command_matches_the_committed_file(tmp_path: Path) -> None:
    committed = (ROOT / "schema" / "archgen-spec.schema.json").read_text()
    assert invoke(["schema"]).output == committed
    target = tmp_path / "s.json"
    invoke(["schema", "-o", target])
    assert target.read_text() == committed
    invoke(["schema", "-o", target, "--check"])
    target.write_text("{}")
    invoke(["schema", "-o", target, "--check"], code=1)


@pytest.mark.parametrize("command", ["build", "summary", "validate"])
def test_invalid_spec_exits_2_without_traceback(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("block: bottleneck\nstages: 50\nhead: {clases: 10}\n")
    result = invoke([command, bad], code=2)
    assert f"{bad}:3:8: head.clases: unknown field 'clases'; did you mean 'classes'?" in result.output
    assert "Traceback" not in result.output


def test_bad_override_exits_2() -> None:
    result = invoke(["summary", spec_path("resnet50"), "--set", "stages.9.depth=3"], code=2)
    assert "error: --set stages.9.depth=3: stages.9.depth: 'stages' is a list of 4 stages" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["build", "does/not/exist.yaml"],
        ["build", "specs/resnet50.yaml", "--backend", "caffe"],
        ["summary", "specs/resnet50.yaml", "--input-size", "0"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = invoke(args, code=2)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help')" in lines[0], result.output


@pytest.mark.parametrize(
    "command", [[], ["build"], ["summary"], ["validate"], ["list"], ["schema"], ["emit"], ["compare"], ["port"]]
)
def test_help(command: list[str]) -> None:
    text = invoke([*command, "-h"]).output
    assert "Usage:" in text
    if not command:  # the group's help lists every command
        for name in ("build", "compare", "emit", "list", "port", "schema", "summary", "validate"):
            assert f"  {name} " in text, name


def test_validate_and_summary_import_no_framework() -> None:
    code = (
        "import sys\n"
        "from archgen.cli import main\n"
        "for args in (['validate', 'specs/resnetrs420.yaml'], ['summary', 'specs/resnet50v2.yaml'], ['list']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), e.code\n"
        "leaked = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_build_with_the_keras_backend() -> None:
    args = ["build", spec_path("resnet50v2"), "--backend", "keras", "--input-size", "64", "--json"]
    data = json.loads(invoke(args).output)
    assert data["ok"] is True and data["backend"] == "keras"
    assert data["params"] + data["stats"] == 25_613_800  # keras.applications ResNet50V2 count_params


def test_emit_one_spec_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--specs only matters to --all and list: emitting one spec works where no specs/ folder is."""
    monkeypatch.chdir(tmp_path)
    invoke(["emit", spec_path("resnet18"), "-o", "r18.py"])
    assert "def build_model(" in (tmp_path / "r18.py").read_text()
    assert "specs shipped with archgen" in invoke(["list"]).output  # the shipped ones, from any folder
    assert "'--specs': folder 'specs' does not exist" in invoke(["list", "--specs", "specs"], code=2).output


def test_list_prints_problems_as_text_under_the_table(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("block: basic\nstages: 18\n")
    (tmp_path / "bad.yaml").write_text("input: {size: [1, 2, 3]}\nblock: basic\nstages: 18\n")
    result = invoke(["list", "--specs", tmp_path], code=2)
    table, _, problems = result.output.partition("error: ")
    assert "good" in table and "bad" in table and "invalid" in table
    assert "an integer from 1 to 8192, or [height, width] of them" in problems  # no markup swallowed it
    assert "8192" not in table


def test_small_flops_keep_their_unit() -> None:
    from archgen.tools.summary import flops_text

    assert [flops_text(n) for n in (4_089_184_256, 12_845_056, 640_000, 640)] == ["4.089 G", "12.85 M", "640 K", "640"]
    out = invoke(["summary", spec_path("resnet18"), "--input-size", "32"]).output
    assert "0.000 G" not in out and " M " in out


def test_transfer_between_different_specs_names_what_differs() -> None:
    import archgen

    a = archgen.build(spec_path("resnet18"), head__classes=10, input_size=32)
    b = archgen.build(spec_path("resnet18"), head__classes=100, input_size=32)
    with pytest.raises(ValueError, match=r"head\.classes: 10 vs 100$"):
        archgen.transfer_weights(a, b)


def test_readme_compare_models_example_runs() -> None:
    import numpy as np
    from archgen.backends.keras import BACKEND as KERAS

    import archgen
    from archgen.runtime.compare import compare_models

    _, network = archgen.compile_spec(spec_path("resnet18"), input_size=32)
    torch_model = archgen.build(spec_path("resnet18"), input_size=32)
    keras_model = KERAS.build(network)
    archgen.transfer_weights(torch_model, keras_model)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
    result = compare_models(network, torch_model, keras_model, x, "float32")
    assert result.ok and [p.name for p in result.points] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert "verdict" in result.text()
