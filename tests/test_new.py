"""archgen new: a spec that extends its parent with the overrides, checked before it is written.

The round trip is held to the IR: the file written, loaded as any spec, resolves to the network of
its parent with the same --set overrides (same layers, stages and figures, and the same resolved spec
but for its name, so the same digest once renamed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from helpers import ROOT, SPEC_DIR, invoke

import archgen
from archgen.cli import main
from archgen.compiler.resolve import spec_digest
from archgen.tools.new import extends_ref, schema_ref

PARENTS = {
    # seresnet50 with an SE that is not the default one: an override that replaces the SE mapping
    # must drop the divisor and rounding (--set replaces; a child file merges, so it writes nulls).
    "se_floor.yaml": "extends: seresnet50\nblock:\n  se: {ratio: 0.0625, divisor: 16, rounding: floor}\n",
    # a deep stem of other widths: --set stem=deep gives the default widths back.
    "deep24.yaml": "extends: resnet50\nstem: {type: deep, widths: [24, 32, 64]}\n",
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in PARENTS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def new(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, ["new", *args])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def keys(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [*data, *(k for v in data.values() for k in keys(v))]
    if isinstance(data, list):
        return [k for v in data for k in keys(v)]
    return []


def assert_resolves_like(written: Path, base: str | Path, overrides: list[str]) -> archgen.Network:
    """The file's network is BASE's with the overrides: the IR and the resolved spec, name aside."""
    _, got = archgen.compile_spec(written)
    _, want = archgen.compile_spec(base, overrides)
    assert (got.stem, got.stages, got.head) == (want.stem, want.stages, want.head)
    assert (got.input_shape, got.norm, got.drop_path, got.init, got.act) == (
        want.input_shape,
        want.norm,
        want.drop_path,
        want.init,
        want.act,
    )
    strip = ("name", "digest")
    assert {k: v for k, v in got.to_json().items() if k not in strip} == {
        k: v for k, v in want.to_json().items() if k not in strip
    }
    assert dict(got.resolved, name=None) == dict(want.resolved, name=None)
    assert spec_digest(dict(got.resolved, name=want.name)) == want.digest
    return got


ROUND_TRIPS = [
    ("resnet50d", ["block.se={ratio: 0.0625}", "head.classes=10"]),
    ("resnet101", ["stages.2.depth=36"]),
    ("resnet50", ["stem=deep", "drop_path.rate=0.1", "output_stride=16"]),
    ("resnet18", ["stages.1.block={type: bottleneck}", "head={type: features, out_indices: [1, 2]}"]),
    ("resnetrs50", ["stem.pool=null", "input.size=[128, 96]"]),
    ("keras_resnet50", ["conv_bias=never", "norm={eps: 1e-5}"]),
    ("resnet50", ["stages=101", "description=\"a deeper ResNet-50: 'quoted', é\""]),
    ("resnet50", ["head.classes=1000"]),  # changes nothing: still written
    ("resnet50", ["tweaks=[C, D]", "head.classes=10"]),  # tweaks an override adds are expanded
    ("se_floor.yaml", ["block.se={ratio: 0.25}"]),
    ("deep24.yaml", ["stem=deep"]),
]


@pytest.mark.parametrize(("base", "overrides"), ROUND_TRIPS, ids=[f"{b}-{'-'.join(o)[:30]}" for b, o in ROUND_TRIPS])
def test_the_new_spec_resolves_to_its_parent_with_the_overrides(folder: Path, base: str, overrides: list[str]) -> None:
    args = [x for o in overrides for x in ("--set", o)]
    out = new("variant", "--from", base, *args).stdout
    assert out.startswith("ok: wrote variant.yaml: variant extends ")
    written = folder / "variant.yaml"
    assert_resolves_like(written, base, overrides)
    assert invoke(["validate", "variant.yaml"]).stdout.startswith("ok: variant.yaml (variant, ")
    text = written.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=archgen-spec.schema.json"
    assert lines[1].startswith("extends: ") and lines[2] == "name: variant"
    data = yaml.safe_load(text)
    assert not [k for k in keys(data) if "." in str(k)]  # nested mappings, no dotted keys
    for override in overrides:  # every override is written, even one that changes nothing
        assert override.split("=")[0].split(".")[0] in data


def test_the_file_is_the_overrides_as_nested_mappings(folder: Path) -> None:
    new("r50d_se", "--from", "resnet50d", "--set", "block.se={ratio: 0.0625}", "--set", "head.classes=10")
    assert (folder / "r50d_se.yaml").read_text(encoding="utf-8") == (
        "# yaml-language-server: $schema=archgen-spec.schema.json\n"
        "extends: resnet50d\n"
        "name: r50d_se\n"
        "block:\n"
        "  se: {ratio: 0.0625}\n"
        "head: {classes: 10}\n"
    )
    _, network = archgen.compile_spec("r50d_se.yaml")
    assert network.stages[0].design.attn is not None and network.classes == 10
    # A list the override reaches into is written whole (a child file replaces lists).
    new("r101_deep3", "--from", "resnet101", "--set", "stages.2.depth=36")
    assert (folder / "r101_deep3.yaml").read_text(encoding="utf-8").splitlines()[3:] == [
        "stages:",
        "  - {depth: 3, width: 64, stride: 1}",
        "  - {depth: 4, width: 128, stride: 2}",
        "  - {depth: 36, width: 256, stride: 2}",
        "  - {depth: 3, width: 512, stride: 2}",
    ]


def test_a_replaced_mapping_drops_the_parents_keys(folder: Path) -> None:
    new("se4", "--from", "se_floor.yaml", "--set", "block.se={ratio: 0.25}")
    assert "  se: {ratio: 0.25, divisor: null, rounding: null}\n" in (folder / "se4.yaml").read_text()
    _, network = archgen.compile_spec("se4.yaml")
    se = network.stages[0].design.attn
    assert se is not None and (se.ratio, se.divisor, se.rounding) == (0.25, 8, "nearest")  # SESpec's defaults
    new("deep", "--from", "deep24.yaml", "--set", "stem=deep")
    _, network = archgen.compile_spec("deep.yaml")
    assert [x.out_ch for x in network.stem if x.name.startswith("conv1.") and hasattr(x, "out_ch")] == [32, 32, 64]


def test_diff_sees_exactly_the_overrides(folder: Path) -> None:
    new("r50_10", "--from", "resnet50", "--set", "head.classes=10")
    result = CliRunner().invoke(main, ["diff", "resnet50", "r50_10.yaml"])
    assert result.exit_code == 1 and result.stdout.splitlines()[1] == "  head: classes 1000 -> 10"
    new("r50_same", "--from", "resnet50", "--set", "head.classes=1000")
    result = CliRunner().invoke(main, ["diff", "resnet50", "r50_same.yaml"])
    assert result.exit_code == 0 and result.stdout.startswith("identical: ")


def test_extends_names_the_parent_as_the_loader_finds_it(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "sub" / "base.yaml").write_text("extends: resnet18\nhead: {classes: 5}\n", encoding="utf-8")
    new("a", "--from", "sub/base.yaml", "--set", "act=silu")
    assert "extends: sub/base.yaml\n" in (folder / "a.yaml").read_text()
    assert_resolves_like(folder / "a.yaml", "sub/base.yaml", ["act=silu"])
    new("b", "--from", "a.yaml", "-o", "b.yaml")
    assert "extends: a.yaml\n" in (folder / "b.yaml").read_text()
    # A shipped spec by its name, also when given by its path in the checkout.
    new("c", "--from", str(SPEC_DIR / "resnet50d.yaml"))
    assert "extends: resnet50d\n" in (folder / "c.yaml").read_text()
    # Beside its parent, by file name, as the shipped specs extend each other.
    assert extends_ref(SPEC_DIR / "resnet50d.yaml", SPEC_DIR / "mine.yaml") == "resnet50d.yaml"


def test_a_parent_the_new_file_cannot_reach_is_refused(folder: Path) -> None:
    (folder / "sub").mkdir()
    result = new("up", "--from", "se_floor.yaml", "-o", "sub/up.yaml", code=2)
    assert "lies outside the new spec's folder" in result.stderr or "lies outside the project root" in result.stderr
    assert not (folder / "sub" / "up.yaml").exists()
    # extends: resnet50 would name this resnet50.yaml, not the shipped spec.
    (folder / "resnet50.yaml").write_text("extends: resnet18\n", encoding="utf-8")
    new("clash", "--from", "resnet50")  # so the new file names the shipped one as archgen:resnet50
    assert "extends: archgen:resnet50\n" in (folder / "clash.yaml").read_text()


def test_the_schema_line(folder: Path) -> None:
    result = new("plain", "--from", "resnet18")
    assert "note: its schema line names archgen-spec.schema.json beside it: archgen schema -o " in result.stdout
    (folder / "sub").mkdir()
    invoke(["schema", "-o", folder / "sub" / "archgen-spec.schema.json"])
    result = new("withschema", "--from", "resnet18", "-o", "sub/withschema.yaml")
    assert "note:" not in result.stdout
    first = (folder / "sub" / "withschema.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=archgen-spec.schema.json"
    # Inside the checkout: the committed schema, as the shipped specs name it.
    assert schema_ref(SPEC_DIR) == ("../schema/archgen-spec.schema.json", True)
    assert schema_ref(ROOT) == ("schema/archgen-spec.schema.json", True)


def test_invalid_input_exits_2_and_writes_nothing(folder: Path) -> None:
    before = files(folder)
    result = new("bad-name", "--from", "resnet50", code=2)
    assert result.stderr.startswith("error: NAME bad-name: name: expected an identifier")
    assert new("9lives", "--from", "resnet50", code=2).stderr.startswith("error: NAME 9lives: name: ")
    assert "did you mean 'resnet50'" in new("x", "--from", "resnet5", code=2).stderr
    result = new("x", "--from", "resnet50", "--set", "head.clases=10", code=2)
    assert (
        result.stderr == "error: --set head.clases=10: head.clases: unknown field 'clases'; did you mean 'classes'?\n"
    )
    result = new("x", "--from", "resnet50", "--set", "stages.2.depth=0", code=2)
    assert result.stderr.startswith("error: --set stages.2.depth=0: stages.2.depth: expected a number greater than 0")
    too_small = new("x", "--from", "resnet50", "--set", "input.size=0", code=2)
    assert "expected an integer from 1 to 8192" in too_small.stderr
    for field in ("name=other", "extends=resnet18"):
        result = new("x", "--from", "resnet50", "--set", field, code=2)
        key = field.split("=")[0]
        assert result.stderr.startswith(f"error: --set {field}: {key}: not in a new spec: "), result.stderr
    assert "ending in .yaml" in new("x", "--from", "resnet50", "-o", "x.yml", code=2).stderr
    assert "does not exist" in new("x", "--from", "resnet50", "-o", "nowhere/x.yaml", code=2).stderr
    assert files(folder) == before  # no spec, no temporary file, no folder
    assert "Traceback" not in result.output


def test_an_existing_file_is_never_replaced(folder: Path) -> None:
    (folder / "mine.yaml").write_text("extends: resnet18\n", encoding="utf-8")
    result = new("mine", "--from", "resnet50", code=2)
    assert result.stderr == (
        "error: mine.yaml exists: archgen new never replaces a file (remove it, or give another -o)\n"
    )
    assert (folder / "mine.yaml").read_text() == "extends: resnet18\n"


def test_a_file_that_fails_its_check_is_not_written(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import archgen.tools.new

    def refuse(planned: archgen.tools.new.NewSpec, written: Path) -> archgen.Network:
        assert written.is_file() and written.read_text() == planned.text  # checked beside its final name
        raise archgen.SpecError(archgen.Problem(str(planned.path), None, None, "", "refused by the test"))

    monkeypatch.setattr(archgen.tools.new, "check_written", refuse)
    before = files(folder)
    assert new("r", "--from", "resnet18", code=2).stderr == "error: r.yaml: refused by the test\n"
    assert files(folder) == before


def test_the_default_output_and_the_help(folder: Path) -> None:
    new("r18_10", "--from", "resnet18", "--set", "head.classes=10")
    assert (folder / "r18_10.yaml").is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(folder / "r18_10.yaml").st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file
    text = new("--help").stdout
    for part in ("NAME", "--from", "--set FIELD=VALUE", "-o, --output", "Default: NAME.yaml", "never replaced"):
        assert part in text, part
