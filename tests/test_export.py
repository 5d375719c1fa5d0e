"""archgen export: a torchvision checkpoint exported as ONNX, TorchScript and a torch.export program, each
file loaded back here (onnxruntime, torch.jit.load, torch.export.load) and run against torchvision's
own model with the same weights; the refusals (exit 1 with nothing written, exit 2 for bad options and
checkpoints) and the written files' modes."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import Result
from helpers import hide_modules, random_resnet18_checkpoint, run_archgen
from helpers import invoke as run_cli

import archgen
from archgen import registry
from archgen.runtime import export as exporting

pytestmark = pytest.mark.torch

SIZE = 32
SMALL = ["--set", "head.classes=10", "--input-size", SIZE]  # resnet18 with 10 classes at 32 px
FEATURES = ["--set", "head={type: features, out_indices: [1, 2, 3]}", "--input-size", SIZE]


def invoke(args: list[object], code: int = 0) -> Result:
    """helpers.invoke (the exit code), and no traceback in the output."""
    result = run_cli(args, code)
    assert "Traceback" not in result.output, result.output
    return result


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def reported(text: str) -> float:
    """The difference the ok line (or the refusal) reports."""
    found = re.search(r"(?:within|by) (\S+) (?:\(output \d+ of \d+\) )?\(max \|diff\| / max \|live output\|", text)
    assert found, text
    return float(found.group(1))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    return random_resnet18_checkpoint(tmp_path_factory.mktemp("ckpt"), SIZE)


def batch(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype("float32")


def reference_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy().astype(np.float64)


def test_onnx_file_computes_what_the_checkpoint_does(tmp_path: Path, reference) -> None:
    model, ckpt = reference
    out = tmp_path / "r18.onnx"
    text = invoke(["export", "resnet18", "--format", "onnx", "--weights", ckpt, "-o", out, *SMALL]).stdout
    size = out.stat().st_size
    assert text.startswith(f"ok: wrote {out} (onnx, {size:,} bytes): resnet18 with the weights of {ckpt}; ")
    assert "loaded with onnxruntime it gives the live model's outputs on a batch of 2x3x32x32 within" in text
    assert len(text.splitlines()) == 1 and reported(text) <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.onnx"]  # one file, no temporary, no .data
    assert mode(out) == 0o666 & ~umask()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.name == "input" and isinstance(given.shape[0], str) and given.shape[1:] == [3, SIZE, SIZE]
    for n in (1, 5):  # the batch is dynamic: neither the traced batch nor the checked one
        x = batch(n)
        (logits,) = session.run(None, {"input": x})
        assert logits.shape == (n, 10)
        assert relative(logits, reference_logits(model, x)) <= 1e-4


def test_torchscript_file_and_the_modes_of_new_and_replaced_files(tmp_path: Path, reference) -> None:
    model, ckpt = reference
    out = tmp_path / "r18.pt"
    text = invoke(["export", "resnet18", "--format", "torchscript", "--weights", ckpt, "-o", out, *SMALL]).stdout
    assert f"(torchscript, {out.stat().st_size:,} bytes)" in text and "loaded with torch.jit.load" in text
    assert mode(out) == 0o666 & ~umask()  # what an ordinary write gives, not a temporary file's 0600
    x = batch(3)
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        assert relative(loaded(torch.from_numpy(x)).numpy(), reference_logits(model, x)) <= 1e-4
    os.chmod(out, 0o640)
    before = out.stat().st_ino
    invoke(["export", "resnet18", "--format", "torchscript", "--weights", ckpt, "-o", out, *SMALL])
    assert out.stat().st_ino != before and mode(out) == 0o640  # replaced, keeping the old file's mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.pt"]


def test_exported_program_computes_what_the_checkpoint_does(tmp_path: Path, reference) -> None:
    model, ckpt = reference
    out = tmp_path / "r18.pt2"
    text = invoke(["export", "resnet18", "--format", "exported-program", "--weights", ckpt, "-o", out, *SMALL]).stdout
    assert f"(exported-program, {out.stat().st_size:,} bytes)" in text and "loaded with torch.export.load" in text
    program = torch.export.load(str(out)).module()
    for n in (1, 3):
        x = batch(n)
        with torch.no_grad():
            assert relative(program(torch.from_numpy(x)).numpy(), reference_logits(model, x)) <= 1e-4


@pytest.mark.parametrize(("fmt", "name"), [("torchscript", "feat.pt"), ("exported-program", "feat.pt2")])
def test_a_features_model_is_checked_output_by_output(tmp_path: Path, reference, fmt: str, name: str) -> None:
    """A forward returning a list of stage maps: every map is compared (torchvision's layer1..3 here)."""
    model, _ = reference
    _, network = archgen.compile_spec("resnet18", [FEATURES[1]], SIZE)
    keys = set(registry.get("torch").build(network).state_dict())
    ckpt = tmp_path / "features.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k in keys}, str(ckpt))
    out = tmp_path / name
    text = invoke(["export", "resnet18", "--format", fmt, "--weights", ckpt, "-o", out, *FEATURES]).stdout
    assert reported(text) <= 1e-4
    loaded = torch.jit.load(str(out)) if fmt == "torchscript" else torch.export.load(str(out)).module()
    x = torch.from_numpy(batch(3))
    with torch.no_grad():
        maps = loaded(x)
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        want = []
        for layer in (model.layer1, model.layer2, model.layer3):
            h = layer(h)
            want.append(h.numpy().astype(np.float64))
    assert [tuple(m.shape) for m in maps] == [(3, 64, 8, 8), (3, 128, 4, 4), (3, 256, 2, 2)]
    for got, expected in zip(maps, want, strict=True):
        assert relative(got.numpy(), expected) <= 1e-4


def test_without_weights_the_weights_are_random_and_it_says_so(tmp_path: Path) -> None:
    out = tmp_path / "random.ts"  # .ts is a TorchScript file too
    text = invoke(["export", "resnet18", "--format", "torchscript", "-o", out, *SMALL]).stdout
    assert "resnet18 with random weights (no --weights given)" in text
    state = torch.jit.load(str(out)).state_dict()
    assert float(state["layer1.0.bn2.weight"].std()) > 0  # not a fresh model's constant norm scales


def test_the_python_api_returns_the_measured_difference(tmp_path: Path) -> None:
    _, network = archgen.compile_spec("resnet18", ["head.classes=10"], SIZE)
    result = exporting.export(network, "torchscript", tmp_path / "api.ts")
    assert (result.fmt, result.path, result.random_weights, result.loader) == (
        "torchscript",
        tmp_path / "api.ts",
        True,
        "torch.jit.load",
    )
    assert result.size == (tmp_path / "api.ts").stat().st_size and result.input_shape == (2, 3, SIZE, SIZE)
    assert result.verification.ok and result.verification.worst <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api.ts"]


def test_a_file_that_computes_something_else_is_refused_and_nothing_written(
    tmp_path: Path, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file as torch.jit.load gives it is what is checked: a changed bias is measured and refused."""
    real = torch.jit.load

    def changed(*args, **kwargs):
        loaded = real(*args, **kwargs)
        with torch.no_grad():
            loaded.fc.bias.add_(0.05)
        return loaded

    monkeypatch.setattr(torch.jit, "load", changed)
    out = tmp_path / "r18.pt"
    out.write_bytes(b"an earlier export")
    os.chmod(out, 0o600)
    args = ["export", "resnet18", "--format", "torchscript", "--weights", reference[1], "-o", out, *SMALL]
    result = invoke(args, code=1)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {out}: loaded with torch.jit.load, it differs from the live model by ")
    assert lines[0].endswith("(max |diff| / max |live output|; tolerance 1e-04)")
    assert reported(lines[0]) > 1e-4
    assert lines[1:] == [f"nothing was written to {out}"]
    assert out.read_bytes() == b"an earlier export" and mode(out) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.pt"]  # no temporary left


def test_compare_outputs_takes_tensors_and_lists() -> None:
    a = torch.ones(2, 3)
    assert exporting.compare_outputs(a, a.clone()).worst == 0
    assert exporting.compare_outputs(np.ones((2, 3)), a).ok
    small = exporting.compare_outputs([a, 2 * a], (a, 2 * a + 1e-5))
    assert small.ok and len(small.outputs) == 2 and small.worst == pytest.approx(5e-6, rel=0.01)
    big = exporting.compare_outputs([a, 2 * a], [a, 2.1 * a])
    assert not big.ok and big.worst == pytest.approx(0.1 / 2.1, rel=1e-5)
    assert "(output 1 of 2)" in big.describe()
    count = exporting.compare_outputs([a], [a, a])
    assert not count.ok and count.describe() == "the exported file gives 1 outputs, the live model 2"
    shape = exporting.compare_outputs(torch.ones(2, 4), a)
    assert not shape.ok and shape.describe() == "its output has shape (2, 4), the live model's (2, 3)"
    zeros = torch.zeros(2, 3)
    assert exporting.compare_outputs(zeros, zeros).ok
    assert not exporting.compare_outputs(a, zeros).ok
    assert not exporting.compare_outputs(torch.full((2, 3), float("nan")), a).ok


def test_the_tolerance_is_read_when_comparing(monkeypatch: pytest.MonkeyPatch) -> None:
    a = torch.ones(2, 3)
    assert exporting.compare_outputs(a, a + 1e-5).ok
    monkeypatch.setattr(exporting, "TOLERANCE", 1e-6)
    refused = exporting.compare_outputs(a, a + 1e-5)
    assert not refused.ok and refused.describe().endswith("(max |diff| / max |live output|; tolerance 1e-06)")


def bad_option_cases(tmp_path: Path, ckpt: Path) -> list[tuple[list[object], str]]:
    model_pt = tmp_path / "model.pt"
    model_pt.write_bytes(b"")
    return [
        (["--format", "tflite", "-o", tmp_path / "r.tflite"], "Invalid value for '--format': 'tflite' is not one of"),
        (["--format", "onnx"], "Missing option '-o' / '--output'"),
        (["--format", "torchscript", "-o", tmp_path / "r.pth"], "--format torchscript: the output must end with"),
        (["--format", "exported-program", "-o", tmp_path / "r.onnx"], "must end with .pt2, not 'r.onnx'"),
        (["--format", "onnx", "-o", tmp_path / "r.pt2"], "--format onnx: the output must end with .onnx, not 'r.pt2'"),
        (["--format", "onnx", "-o", tmp_path / "missing" / "r.onnx"], f"the output's folder '{tmp_path / 'missing'}'"),
        (["--format", "torchscript", "--weights", model_pt, "-o", model_pt], "would overwrite the checkpoint"),
        (["--format", "onnx", "--weights", tmp_path / "none.pth", "-o", tmp_path / "r.onnx"], "does not exist"),
        (["--format", "onnx", "-o", tmp_path], "--format onnx writes a file, and"),
        (["--format", "onnx", "-o", tmp_path / "r.onnx", "--input-size", "0"], "Invalid value for '--input-size'"),
    ]


def test_bad_options_exit_2_and_write_nothing(tmp_path: Path, reference) -> None:
    for args, message in bad_option_cases(tmp_path, reference[1]):
        result = invoke(["export", "resnet18", *args], code=2)
        assert message in result.stderr, (args, result.stderr)
    h5 = tmp_path / "r18.weights.h5"
    h5.write_bytes(b"")
    result = invoke(["export", "resnet18", "--format", "onnx", "--weights", h5, "-o", tmp_path / "r.onnx"], code=2)
    assert "Invalid value for '--weights': reads a PyTorch state_dict (.pth / .pt / .bin / .safetensors)" in (
        result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "r18.weights.h5"]


def test_a_spec_that_is_too_large_for_one_onnx_file_is_refused_before_it_is_built(tmp_path: Path) -> None:
    out = tmp_path / "big.onnx"
    args = ["export", "resnet18", "--format", "onnx", "-o", out, "--set", "width_multiplier=8", *SMALL]
    result = invoke(args, code=2)
    assert re.fullmatch(
        r"error: --format onnx: resnet18's [\d,]+ params are \d+\.\d GiB of float32, over the 2 GiB one ONNX file "
        r"holds; use --format exported-program or torchscript\n",
        result.stderr,
    ), result.stderr
    assert not out.exists()


def test_bad_checkpoints_are_named_by_file_and_field(tmp_path: Path, reference) -> None:
    model, ckpt = reference
    out = tmp_path / "r.pt"
    out.write_bytes(b"an earlier export")
    # the checkpoint of a 10-class resnet18 for the spec's 1000-class one
    result = invoke(["export", "resnet18", "--format", "torchscript", "--weights", ckpt, "-o", out], code=2)
    assert result.stderr.splitlines() == [
        f"error: {ckpt}: fc.weight: shape (10, 512) in the checkpoint, the spec needs (1000, 512)",
        f"error: {ckpt}: fc.bias: shape (10,) in the checkpoint, the spec needs (1000,)",
        f"error: {ckpt}: fc: the checkpoint's classifier has 10 classes, the spec 1000: load it with "
        "--set head.classes=10 and then replace the classifier (model.reset_classifier(1000)), or remove fc.* "
        "from the checkpoint",
    ]
    result = invoke(["export", "resnet34", "--format", "torchscript", "--weights", ckpt, "-o", out, *SMALL], code=2)
    assert f"error: {ckpt}: layer1.2.conv1.weight: missing from the checkpoint" in result.stderr
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    result = invoke(["export", "resnet18", "--format", "torchscript", "--weights", garbage, "-o", out], code=2)
    assert result.stderr.startswith(f"error: {garbage}: cannot read as a PyTorch state_dict")
    whole = tmp_path / "whole.pth"
    torch.save(model, whole)  # a pickled module is refused, never unpickled
    result = invoke(["export", "resnet18", "--format", "torchscript", "--weights", whole, "-o", out], code=2)
    assert "weights_only" in result.stderr
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pth", "r.pt", "whole.pth"]


@pytest.mark.parametrize(
    ("hidden", "fmt", "message"),
    [
        (
            ("onnxruntime",),
            "onnx",
            "--format onnx needs onnxruntime, which is not installed: pip install 'archgen[export]'",
        ),
        (
            ("onnx", "onnxscript"),
            "onnx",
            "--format onnx needs onnx and onnxscript, which are not installed: pip install 'archgen[export]'",
        ),
        (
            ("torch",),
            "torchscript",
            "the torch backend needs torch, which is not installed: pip install 'archgen[torch]'",
        ),
        (
            ("ai_edge_litert",),
            "litert",
            "--format litert needs ai-edge-litert, which is not installed: pip install 'archgen[export]'",
        ),
        (
            ("tensorflow", "keras"),
            "saved_model",
            "the keras backend needs keras, which is not installed: pip install 'archgen[keras]'",
        ),
    ],
    ids=["onnxruntime", "onnx", "torch", "litert", "keras"],
)
def test_a_missing_package_is_named_with_what_to_install(
    tmp_path: Path, hidden: tuple[str, ...], fmt: str, message: str
) -> None:
    folder = hide_modules(tmp_path / "hidden", hidden)
    out = tmp_path / {"onnx": "r.onnx", "litert": "r.tflite", "saved_model": "r_savedmodel"}.get(fmt, "r.pt")
    result = run_archgen(["export", "resnet18", "--format", fmt, "-o", out, *SMALL], hidden=folder)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()
    if hidden == ("torch",):  # the command's help needs no framework
        shown = run_archgen(["export", "--help"], hidden=hide_modules(tmp_path / "hidden", ("numpy",)))
        assert (
            shown.returncode == 0 and "--format [onnx|torchscript|exported-program|saved_model|litert]" in shown.stdout
        )
