"""archgen export from Keras: a torchvision checkpoint exported as a TensorFlow SavedModel and a LiteRT
file (Keras' own model.export), each loaded back here (tf.saved_model.load, the LiteRT interpreter)
and run against torchvision's own model with the same weights; the refusals and the folder handling
of a SavedModel (an existing one replaced whole, anything else left alone)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import invoke, random_resnet18_checkpoint

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

SIZE = 32
SMALL = ["--set", "head.classes=10", "--input-size", SIZE]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    return random_resnet18_checkpoint(tmp_path_factory.mktemp("ckpt"), SIZE)


def batch(n: int = 3) -> np.ndarray:
    return np.random.default_rng(9).standard_normal((n, 3, SIZE, SIZE)).astype("float32")


def relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def expected(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy().astype(np.float64)


def test_a_saved_model_runs_as_the_torchvision_model(reference: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    import tensorflow as tf

    model, ckpt = reference
    out = tmp_path / "r18_savedmodel"
    result = invoke(["export", "resnet18", "--format", "saved_model", "--weights", ckpt, "-o", out, *SMALL])
    assert re.search(r"ok: wrote .*r18_savedmodel \(saved_model, [\d,]+ bytes\)", result.output), result.output
    assert "loaded with tf.saved_model.load" in result.output
    assert (out / "saved_model.pb").is_file()
    x = batch(3)  # another batch size than the command's check: the batch dimension is dynamic
    loaded = tf.saved_model.load(str(out))  # kept: its functions need the object alive
    got = loaded.serve(x.transpose(0, 2, 3, 1)).numpy()
    assert relative(got, expected(model, x)) < 1e-4
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left beside it

    # Exported again over it: the folder is replaced whole (a stray file of the old one is gone).
    (out / "stray.txt").write_text("old")
    invoke(["export", "resnet18", "--format", "saved_model", "--weights", ckpt, "-o", out, *SMALL])
    assert not (out / "stray.txt").exists() and (out / "saved_model.pb").is_file()


def test_a_litert_file_runs_as_the_torchvision_model(reference: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    model, ckpt = reference
    out = tmp_path / "r18.tflite"
    result = invoke(["export", "resnet18", "--format", "litert", "--weights", ckpt, "-o", out, *SMALL])
    assert "loaded with the LiteRT interpreter" in result.output
    runner = Interpreter(model_path=str(out)).get_signature_runner()
    (name,) = runner.get_input_details()
    x = batch(3)
    (got,) = runner(**{name: x.transpose(0, 2, 3, 1)}).values()
    assert relative(got, expected(model, x)) < 1e-4


def test_a_features_model_exports_every_map(tmp_path: Path) -> None:
    out = tmp_path / "features.tflite"
    result = invoke(
        [
            "export",
            "resnet18",
            "--format",
            "litert",
            "-o",
            out,
            "--input-size",
            SIZE,
            "--set",
            "head={type: features, out_indices: [1, 2, 3]}",
        ]
    )
    assert "random weights" in result.output and "of 3)" in result.output
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("file", "writes a folder, and"),
        ("folder", "is a folder that holds no SavedModel; it would be replaced whole"),
    ],
)
def test_a_saved_model_never_replaces_what_is_not_one(tmp_path: Path, setup: str, message: str) -> None:
    out = tmp_path / "target"
    if setup == "file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    result = invoke(["export", "resnet18", "--format", "saved_model", "-o", out, *SMALL], code=2)
    assert message in result.output and "Traceback" not in result.output
    assert (out.read_text() if setup == "file" else (out / "notes.txt").read_text()) == "mine"


def test_a_litert_file_must_end_with_tflite(tmp_path: Path) -> None:
    result = invoke(["export", "resnet18", "--format", "litert", "-o", tmp_path / "r18.onnx", *SMALL], code=2)
    assert "--format litert: the output must end with .tflite, not 'r18.onnx'" in result.output


def test_a_saved_model_that_disagrees_is_not_written(
    reference: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check refuses (here every difference, the tolerance below zero): exit 1, the SavedModel
    already there is left as it was, and nothing of the new one remains."""
    from archgen.runtime import export as exporting

    _, ckpt = reference
    out = tmp_path / "kept"
    out.mkdir()
    (out / "saved_model.pb").write_bytes(b"an earlier export")
    monkeypatch.setattr(exporting, "TOLERANCE", -1.0)
    result = invoke(["export", "resnet18", "--format", "saved_model", "--weights", ckpt, "-o", out, *SMALL], code=1)
    assert "differs from the live model" in result.output and f"nothing was written to {out}" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["saved_model.pb"]
    assert (out / "saved_model.pb").read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
