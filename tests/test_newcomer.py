"""What a new user meets in the first hour: the command line's error format, several specs validated at
once, the Python API's errors and timm's keywords, emitted files that run on every Python their
framework supports and read the same from any working folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, invoke

import archgen
from archgen.errors import OptionError, SpecError

GENERATED = ROOT / "generated"


def test_validate_checks_every_spec_even_past_a_missing_one(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("extends: resnet18\nname: typo\nhead: {clases: 3}\n")
    zero = tmp_path / "zero.yaml"
    zero.write_text("extends: resnet18\nname: zero\nstages: [{width: 64, depth: 0}]\n")
    result = invoke(["validate", typo, tmp_path / "missing.yaml", zero, "resnet18"], 2)
    lines = result.output.splitlines()
    assert any("typo.yaml:3" in x and "clases" in x for x in lines), result.output
    assert any("missing.yaml" in x and "does not exist" in x for x in lines), result.output
    assert any("zero.yaml" in x and x.startswith("error: ") for x in lines), result.output
    assert any(x.startswith("ok: ") and "resnet18" in x for x in lines), result.output


@pytest.mark.parametrize(
    "args", [["build", "resnet5"], ["frobnicate"], ["summary", "resnet50", "--input-size", "0"], ["emit", "-x"]]
)
def test_usage_errors_are_one_error_line(args: list[str]) -> None:
    result = invoke(args, 2)
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    assert "Usage:" not in result.output and "--help')" in result.output


def test_unknown_backend_is_an_option_error_naming_the_choices() -> None:
    with pytest.raises(OptionError, match="unknown backend 'jax'; expected one of: keras, torch"):
        archgen.build("resnet18", backend="jax")
    with pytest.raises(KeyError):  # still a lookup error for code that caught KeyError before
        archgen.build("resnet18", backend="jax")


def test_timm_keywords_mean_what_they_mean_in_timm() -> None:
    import timm

    model = archgen.build("resnet18", num_classes=10, in_chans=1, drop_rate=0.25, input_size=32)
    reference = timm.create_model("resnet18", num_classes=10, in_chans=1, drop_rate=0.25)
    assert model.fc.out_features == reference.fc.out_features == 10
    assert model.conv1.in_channels == reference.conv1.in_channels == 1
    counts = [sum(p.numel() for p in m.parameters()) for m in (model, reference)]
    assert counts[0] == counts[1]
    with pytest.raises(SpecError, match="classes"):
        archgen.build("resnet18", num_classes=-1)


def test_emitted_files_run_on_python_3_10() -> None:
    """torch and Keras 3 support Python 3.10: no emitted file may need a newer one (typing.Self, ...)."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("vermin")), "--no-tips", "--violations", "-t=3.10-", str(GENERATED)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_emitted_header_does_not_depend_on_the_working_folder(tmp_path: Path) -> None:
    specs = tmp_path / "project" / "specs"
    specs.mkdir(parents=True)
    (specs / "mine.yaml").write_text("extends: resnet18\nname: mine\n")
    out = tmp_path / "project" / "out" / "mine_torch.py"
    texts = []
    for cwd in (tmp_path, specs, tmp_path / "project"):
        subprocess.run(
            [sys.executable, "-m", "archgen.cli", "emit", str(specs / "mine.yaml"), "-o", str(out)],
            check=True,
            cwd=cwd,
            capture_output=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        texts.append(out.read_text())
    assert texts[0] == texts[1] == texts[2]
    assert "from ../specs/mine.yaml;" in texts[0].splitlines()[0]


def test_list_and_validate_speak_json(tmp_path: Path) -> None:
    import json

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "a.yaml").write_text("extends: resnet18\nname: a\n")
    (specs / "b.yml").write_text("extends: resnet18\nname: b\nhead: {clases: 3}\n")  # .yml counts too
    result = invoke(["list", "--specs", specs, "--json"], 2)
    rows = json.loads(result.stdout)
    assert [r["spec"] for r in rows] == ["a.yaml", "b.yml"]
    assert rows[0]["ok"] and rows[0]["params"] == 11_689_512 and rows[0]["input"] == [3, 224, 224]
    assert not rows[1]["ok"] and rows[1]["problems"][0]["field"] == "head.clases"
    assert rows[1]["problems"][0]["line"] == 3
    result = invoke(["validate", specs / "a.yaml", "missing", "--json"], 2)
    found = json.loads(result.stdout)
    assert [r["ok"] for r in found] == [True, False] and "missing" in found[1]["problems"][0]["message"]


def test_piped_tables_are_plain_text() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "archgen.cli", "summary", "resnet18"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert all(line == line.rstrip() for line in lines), "trailing spaces"
    assert done.stdout.isascii() and "\x1b" not in done.stdout
    assert any(line.startswith("| layer1 ") for line in lines)


def test_no_color_drops_every_style_on_a_terminal() -> None:
    import os
    import pty

    def run(env: dict[str, str]) -> bytes:
        pid, fd = pty.fork()
        if pid == 0:  # the child: archgen on a terminal
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "archgen.cli", "summary", "resnet18"], env)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        return out

    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "120"}
    assert b"\x1b[" in run(base), "on a terminal rich styles the table"
    assert b"\x1b[" not in run({**base, "NO_COLOR": "1"})


def test_features_diagram_labels_outputs_with_their_indices(tmp_path: Path) -> None:
    out = tmp_path / "f.dot"
    invoke(["graph", "resnet50", "-o", out, "--set", "head={type: features, out_indices: [1, 2, 3, 4]}"])
    text = out.read_text()
    assert "output 0 (out_indices: 1)" in text and "output 3 (out_indices: 4)" in text


def test_a_checkpoint_of_another_class_count_says_what_to_do(tmp_path: Path) -> None:
    from helpers import random_resnet18_checkpoint

    _, checkpoint = random_resnet18_checkpoint(tmp_path, 32, classes=1000)
    result = invoke(["build", "resnet18", "--weights", checkpoint, "--set", "head.classes=10", "--input-size", "32"], 2)
    assert "fc.weight: shape (1000, 512) in the checkpoint" in result.output
    assert "--set head.classes=1000" in result.output and "reset_classifier(10)" in result.output
    invoke(["build", "resnet18", "--weights", checkpoint, "--input-size", "32"])  # the advice works


@pytest.mark.parametrize("device", ["mps", "xpu"])
def test_a_device_this_machine_lacks_is_one_short_line(device: str) -> None:
    import torch

    if device == "mps" and torch.backends.mps.is_available():  # a Mac: the build runs there
        invoke(["build", "resnet18", "--device", device, "--input-size", "32"])
        return
    result = invoke(["build", "resnet18", "--device", device, "--input-size", "32"], 3)
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: --device '{device}'") and len(line) < 200, line


@pytest.mark.parametrize("text", ["08", "1e5", "yes", "0x1F"])
def test_new_quotes_strings_that_would_not_read_back(tmp_path: Path, text: str) -> None:
    out = tmp_path / "n.yaml"
    invoke(["new", "n", "--from", "resnet18", "--set", f"description='{text}'", "-o", out])
    assert f"description: '{text}'" in out.read_text()
    spec, _ = archgen.compile_spec(out)
    assert spec.description == text
