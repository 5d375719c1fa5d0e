"""archgen diff: what differs between the networks two specs resolve to, its exit codes and its JSON.

The snapshot tests compare the command's whole output with a file in tests/snapshots/ (the command,
its output, its exit code). Those files are not the code's output taken on trust: each was read line
by line against the specs it compares (specs/*.yaml and the README's spec language) and its figures
against the reference counts of the README/BRIEF (resnet50 25,557,032, resnet50d 25,576,264, resnet101
44,549,160, seresnet50 28,088,024, resnetrs50 35,691,912, resnet50v2 25,613,800 with its norm
statistics, resnet18 11,689,512) before it was committed. After a deliberate change of the output,
regenerate them with

    ARCHGEN_UPDATE_SNAPSHOTS=1 pytest tests/test_diff.py

and review `git diff tests/snapshots/` the same way before committing. The other tests assert facts
that do not depend on the snapshots: figures from `archgen summary --json` and the reference counts,
the lines a change must produce, the exit codes.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import DEEPENED, SPEC_DIR, invoke, spec_path

import archgen
from archgen.cli import main
from archgen.language import catalog
from archgen.tools.diff import diff

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("ARCHGEN_UPDATE_SNAPSHOTS") == "1"

# Spec files the tests write (in a scratch working folder, so their paths in the output are stable).
FILES = {
    # The same network as resnet50: a child that overrides a field with the value it has.
    "r50_copy.yaml": "extends: resnet50\nhead: {classes: 1000}\n",
    # resnet50 as a backbone: every stage's map, no classifier.
    "r50_features.yaml": "extends: resnet50\nhead: {type: features, out_indices: [1, 2, 3, 4]}\n",
    # resnet50 written out without a parent, a preset or a shorthand.
    "r50_explicit.yaml": (
        "name: r50_explicit\n"
        "stem: {type: classic, width: 64, kernel: 7, stride: 2, pool: max}\n"
        "block: {type: bottleneck, expansion: 4, groups: 1, base_width: 64, stride_at: 3x3, shortcut: conv}\n"
        "stages:\n"
        "  - {depth: 3, width: 64, stride: 1}\n"
        "  - {depth: 4, width: 128}\n"
        "  - {depth: 6, width: 256}\n"
        "  - {depth: 3, width: 512, stride: 2}\n"
        "head: {type: classifier, classes: 1000, pool: avg}\n"
    ),
    "r50_se3.yaml": (
        "extends: resnet50\n"
        "stages:\n"
        "  - {depth: 3, width: 64}\n"
        "  - {depth: 4, width: 128}\n"
        "  - {depth: 6, width: 256, block: {se: {ratio: 0.25}}}\n"
        "  - {depth: 3, width: 512}\n"
    ),
    "r50_os8.yaml": "extends: resnet50\noutput_stride: 8\n",
    "r50_dp.yaml": "extends: resnet50\ndrop_path: {rate: 0.2}\nhead: {classes: 10}\n",
    "bad.yaml": "extends: resnet50\nhead: {clases: 10}\n",
    "bad2.yaml": "extends: resnet50\nact: swish\n",
}

SNAPSHOT_PAIRS = [
    ("resnet50", "resnet50d"),
    ("resnet50", "seresnet50"),
    ("resnet50", "resnet101"),
    ("resnet50", "resnetrs50"),
    ("resnet50", "resnet50v2"),
    ("resnet18", "resnet18"),
    ("resnet50", "r50_copy.yaml"),
    ("resnet50", "r50_features.yaml"),
]


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding FILES, with output that does not depend on the terminal."""
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["diff", *args])


def summary(spec: str) -> dict:
    return json.loads(invoke(["summary", spec, "--json"]).stdout)


def diff_json(a: str, b: str, code: int = 1) -> dict:
    result = run(a, b, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("a", "b"), SNAPSHOT_PAIRS, ids=[f"{a}-{b.removesuffix('.yaml')}" for a, b in SNAPSHOT_PAIRS])
def test_the_output_is_the_reviewed_snapshot(scratch: Path, a: str, b: str) -> None:
    result = run(a, b)
    assert result.exit_code in (0, 1), result.output
    text = f"$ archgen diff {a} {b}\n{result.stdout}[exit {result.exit_code}]\n"
    path = SNAPSHOTS / f"diff_{a}_{b.removesuffix('.yaml')}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no snapshot {path}: ARCHGEN_UPDATE_SNAPSHOTS=1 pytest {__file__}, then review it"
    assert text == path.read_text(encoding="utf-8"), f"differs from {path.name} (see this file's docstring)"


def test_resnet101_is_resnet50_with_a_deeper_layer3(scratch: Path) -> None:
    data = diff_json("resnet50", "resnet101")
    assert [c["text"] for c in data["changes"]] == ["layer3: depth 6 -> 23"]
    r50, r101 = summary("resnet50"), summary("resnet101")
    assert data["delta"]["params"] == r101["params"] - r50["params"] == 44_549_160 - 25_557_032
    assert data["delta"]["flops"] == r101["flops"] - r50["flops"]
    assert data["delta"]["stats"] == r101["stats"] - r50["stats"]
    rows_a = {s["name"]: s for s in r50["sections"]}
    rows_b = {s["name"]: s for s in r101["sections"]}
    for row in data["sections"]:
        name = row["name"]
        assert row["delta"]["params"] == rows_b[name]["params"] - rows_a[name]["params"], name
        assert row["delta"]["flops"] == rows_b[name]["flops"] - rows_a[name]["flops"], name
        assert row["b"]["output"] == rows_b[name]["output"], name
        assert (row["delta"]["params"] != 0) == (name == "layer3"), name
    assert data["a"]["params"] == 25_557_032 and data["b"]["params"] == 44_549_160
    assert data["a"]["source"] == "specs/resnet50.yaml" and data["identical"] is False
    text = run("resnet50", "resnet101").stdout
    assert "  layer3: depth 6 -> 23\n" in text
    assert "+18.99 M params (25,557,032 -> 44,549,160)" in text  # 18,992,128 more


def test_totals_agree_with_the_summaries_and_the_reference_counts(scratch: Path) -> None:
    references = {"resnet50d": 25_576_264, "seresnet50": 28_088_024, "resnetrs50": 35_691_912}
    for name, params in references.items():
        data = diff_json("resnet50", name)
        assert data["b"]["params"] == params == summary(name)["params"]
        assert data["delta"]["params"] == params - 25_557_032
        assert sum(row["delta"]["params"] for row in data["sections"]) == data["delta"]["params"]
    v2 = diff_json("resnet50", "resnet50v2")["b"]
    assert v2["params"] + v2["stats"] == 25_613_800  # keras.applications ResNet50V2's count_params


def test_a_change_every_block_makes_is_said_once(scratch: Path) -> None:
    lines = [c["text"] for c in diff_json("resnet50", "seresnet50")["changes"]]
    assert [x for x in lines if "SE" in x] == ["SE added to every block (ratio 0.0625)"]
    lines = [c["text"] for c in diff_json("resnet50", "resnet50d")["changes"]]
    assert [x for x in lines if "shortcut" in x] == ["every stage: shortcut conv -> avgpool (ResNet-D)"]
    assert "stem: classic -> deep (32-32-64)" in lines


def test_a_change_in_one_stage_names_that_stage(scratch: Path) -> None:
    lines = [c["text"] for c in diff_json("resnet50", "r50_se3.yaml")["changes"]]
    assert lines == ["layer3: SE added (ratio 0.25)"]


def test_dilation_drop_path_and_classes(scratch: Path) -> None:
    data = diff_json("resnet50", "r50_os8.yaml")
    lines = [c["text"] for c in data["changes"]]
    assert "output stride: 32 -> 8" in lines
    assert "layer3: stride 2 -> 1 (dilation 2)" in lines and "layer4: stride 2 -> 1 (dilation 4)" in lines
    assert data["delta"]["params"] == 0  # dilation adds no weight (README, "Dilation")
    rows = {r["name"]: r for r in data["sections"]}
    assert rows["layer4"]["b"]["output"] == [2048, 28, 28] == summary("r50_os8.yaml")["sections"][4]["output"]
    lines = [c["text"] for c in diff_json("resnet50", "r50_dp.yaml")["changes"]]
    assert lines == ["head: classes 1000 -> 10", "drop path: none -> 0.0-0.2 linear"]


def test_a_features_head_loses_the_classifier(scratch: Path) -> None:
    data = diff_json("resnet50", "r50_features.yaml")
    assert [c["text"] for c in data["changes"]] == [
        "head: classifier (1000 classes) -> features (out_indices [1, 2, 3, 4])"
    ]
    head = next(r for r in data["sections"] if r["name"] == "head")
    assert head["b"] is None and head["delta"]["params"] == -(2048 * 1000 + 1000)


def test_specs_written_differently_that_mean_one_network_are_identical(scratch: Path) -> None:
    for a, b in (("resnet50", "r50_copy.yaml"), ("resnet50", "r50_explicit.yaml"), ("resnet50d", "xresnet50")):
        result = run(a, b)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("identical: ") and result.stdout.count("\n") == 1
        assert diff_json(a, b, code=0)["changes"] == []


def test_the_input_size_applies_to_both(scratch: Path) -> None:
    data = diff_json("resnet50", "resnetrs50")
    assert "input: 3x224x224 -> 3x160x160" in [c["text"] for c in data["changes"]]
    result = run("resnet50", "resnetrs50", "--input-size", "128", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["a"]["input"] == data["b"]["input"] == [3, 128, 128]
    assert not [c for c in data["changes"] if c["aspect"] == "input"]
    assert run("resnet18", "resnet18", "--input-size", "64").exit_code == 0


def test_invalid_input_exits_2_with_every_problem_located(scratch: Path) -> None:
    result = run("bad.yaml", "bad2.yaml")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: bad.yaml:2:8: head.clases: unknown field 'clases'; did you mean 'classes'?"
    assert lines[1].startswith("error: bad2.yaml:2:1: act: expected 'relu', ") and lines[1].endswith("received 'swish'")
    assert "Traceback" not in result.output
    result = run("resnet50", "resnet5")
    assert result.exit_code == 2 and "did you mean 'resnet50'" in result.stderr
    assert run("resnet50").exit_code == 2  # B is missing
    assert run("resnet50", "resnet50", "--input-size", "0").exit_code == 2  # no pixels


def test_the_json_has_the_documented_keys(scratch: Path) -> None:
    data = diff_json("resnet50", "resnetrs50")
    assert set(data) == {"identical", "a", "b", "changes", "sections", "delta"}
    assert set(data["a"]) == {"source", "name", "digest", "input", "output", "params", "stats", "flops"}
    assert all(set(c) == {"where", "aspect", "before", "after", "text"} for c in data["changes"])
    assert all(set(r) == {"name", "a", "b", "delta"} for r in data["sections"])
    assert set(data["delta"]) == {"params", "stats", "flops"}
    text = run("resnet50", "resnetrs50").stdout.splitlines()
    assert [f"  {c['text']}" for c in data["changes"]] == text[1 : 1 + len(data["changes"])]


def test_every_pair_of_shipped_specs_is_told_apart_by_named_aspects() -> None:
    """No pair of shipped specs differs in a way the aspects miss (which would fall back to naming the
    first layer that differs); a spec is identical to itself."""
    named = {
        "input", "activation", "norm", "norm eps", "norm momentum", "conv bias", "conv init", "zero-init last",
        "drop path", "drop path schedule", "output stride", "module names", "weight standardisation", "freeze",
    }  # fmt: skip
    networks = {p.stem: archgen.compile_spec(p)[1] for p in sorted(SPEC_DIR.glob("*.yaml"))}
    assert len(networks) == len(catalog.shipped_names())
    for name, network in networks.items():
        assert diff(network, network).identical, name
    for (x, a), (y, b) in itertools.combinations(networks.items(), 2):
        result = diff(a, b)
        if result.identical:
            # timm's ResNet-D networks are fastai's xresnets (tests/helpers.py's TORCH_REFS holds both to them)
            assert {x, y} in [{f"resnet{d}d", f"xresnet{d}"} for d in (18, 34, 50, 101, 152)], (x, y)
            continue
        assert result.changes, (x, y)
        unnamed = [c.text() for c in result.changes if c.where == "network" and c.aspect not in named]
        assert not unnamed, (x, y, unnamed)


@pytest.mark.parametrize("name", sorted(DEEPENED))
def test_the_deepened_specs_differ_from_their_base_in_depths_and_input_only(name: str) -> None:
    """Why the every-spec function tests may leave these to ARCHGEN_EXPENSIVE=1 (tests/helpers.py)."""
    _, base = archgen.compile_spec(spec_path(DEEPENED[name]))
    _, deep = archgen.compile_spec(spec_path(name))
    changes = diff(base, deep).changes
    assert changes and {c.aspect for c in changes} <= {"depth", "input"}, changes
    assert any(c.aspect == "depth" for c in changes)
