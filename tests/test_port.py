"""archgen port and archgen compare: checkpoints of torchvision and timm models (random init, every
weight random) moved into Keras and back, checked against the reference models' own outputs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from archgen.backends.keras import BACKEND as KERAS
from archgen.backends.torch.randomize import randomize_
from click.testing import Result
from helpers import invoke as run_cli
from helpers import spec_path
from safetensors.torch import load_file, save_file

import archgen

pytestmark = [pytest.mark.torch, pytest.mark.keras]

SIZE = 64  # the stages end at 2x2: small enough to be quick, large enough for every stride


def invoke(args: list[object], code: int = 0) -> Result:
    """helpers.invoke (the exit code), and no traceback in the output."""
    result = run_cli(args, code)
    assert "Traceback" not in result.output
    return result


def random_reference(model: torch.nn.Module) -> torch.nn.Module:
    """A reference model with every weight random and calibrated statistics (no weight can be downloaded)."""
    return randomize_(model, (3, SIZE, SIZE), seed=0, batches=2, batch_size=8, gamma=(0.05, 0.15)).eval()


def keras_logits(spec: str, weights: Path, x: np.ndarray) -> np.ndarray:
    """The spec's Keras model with a ported weights file loaded the way a user would."""
    _, network = archgen.compile_spec(spec_path(spec), input_size=SIZE)
    model = KERAS.build(network)
    model.load_weights(str(weights))
    return np.asarray(model(x.transpose(0, 2, 3, 1), training=False))


def relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = random_reference(torchvision.models.resnet18())
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_torchvision_checkpoint_to_keras_computes_what_torchvision_does(tmp_path: Path, resnet18) -> None:
    model, ckpt = resnet18
    out = tmp_path / "resnet18.weights.h5"
    text = invoke(["port", ckpt, "--spec", spec_path("resnet18"), "--to", "keras", "-o", out]).output
    assert f"wrote {out}: 102 tensors of 41 layers (11,689,512 params, 9,600 norm statistics)" in text
    assert "verified: worst relative difference" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.weights.h5"]  # no temporary left
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype("float32")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert relative(keras_logits("resnet18", out, x), want) <= 1e-4


def test_keras_weights_back_to_torch_are_the_same_numbers(tmp_path: Path, resnet18) -> None:
    model, ckpt = resnet18
    spec = spec_path("resnet18")
    keras_file, pth, st = tmp_path / "r18.weights.h5", tmp_path / "back.pth", tmp_path / "back.safetensors"
    invoke(["port", ckpt, "--spec", spec, "--to", "keras", "-o", keras_file, "--no-verify"])
    invoke(["port", keras_file, "--spec", spec, "--to", "torch", "-o", pth])
    invoke(["port", keras_file, "--spec", spec, "--to", "torch", "-o", st, "--no-verify"])
    umask = os.umask(0)
    os.umask(umask)
    for written in (keras_file, pth, st):  # the mode an ordinary write gives, not a temporary file's 0600
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written
    original = model.state_dict()
    for back in (torch.load(pth, weights_only=True), load_file(st)):
        fresh = torchvision.models.resnet18()
        fresh.load_state_dict(back, strict=True)  # every key, shape and the step counters
        for key, value in original.items():
            if not key.endswith("num_batches_tracked"):
                assert torch.equal(back[key], value), key  # float32 both ways: an exact copy


def test_timm_safetensors_checkpoint_with_a_wrapper_and_prefix(tmp_path: Path) -> None:
    """timm's ResNet-50-D saved as safetensors, and as a DataParallel-style wrapped .pth."""
    model = random_reference(timm.create_model("resnet50d", pretrained=False))
    st, wrapped = tmp_path / "r50d.safetensors", tmp_path / "r50d_ddp.pth"
    save_file(model.state_dict(), st)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, wrapped)
    x = np.random.default_rng(2).standard_normal((2, 3, SIZE, SIZE)).astype("float32")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for i, ckpt in enumerate((st, wrapped)):
        out = tmp_path / f"r50d_{i}.weights.h5"
        invoke(["port", ckpt, "--spec", spec_path("resnet50d"), "--to", "keras", "-o", out])
        assert relative(keras_logits("resnet50d", out, x), want) <= 1e-4


# (what is done to a resnet18 state_dict, the field named, a piece of the message)
BROKEN = [
    ("shape", "layer2.0.conv1.weight", "shape (64, 64, 3, 3) in the checkpoint, the spec needs (128, 64, 3, 3)"),
    ("missing", "layer3.1.bn2.running_var", "missing from the checkpoint (the spec needs shape (256,))"),
    ("extra", "layer3.1.bn2.runing_var", "not in the spec 'resnet18' (did you mean 'layer3.1.bn2.running_var'?)"),
]


@pytest.mark.parametrize(("damage", "field", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_mismatching_checkpoint_is_named_and_nothing_written(
    tmp_path: Path, resnet18, damage: str, field: str, message: str
) -> None:
    state = dict(resnet18[0].state_dict())
    if damage == "shape":
        state[field] = state["layer1.0.conv1.weight"]
    elif damage == "missing":
        del state[field]
    else:
        state[field] = state["layer3.1.bn2.running_var"]
    ckpt, out = tmp_path / "broken.pth", tmp_path / "out.weights.h5"
    torch.save(state, ckpt)
    out.write_bytes(b"an earlier port")
    text = invoke(["port", ckpt, "--spec", spec_path("resnet18"), "--to", "keras", "-o", out], code=2).output
    assert text.splitlines()[0] == f"error: {ckpt}: {field}: {message}"
    assert out.read_bytes() == b"an earlier port"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pth", "out.weights.h5"]
    with pytest.raises(archgen.CheckpointError) as info:  # the API's error carries the same
        from archgen.runtime.weights import read_state_dict

        _, network = archgen.compile_spec(spec_path("resnet18"))
        read_state_dict(ckpt, network)
    assert isinstance(info.value, archgen.SpecError)
    assert (info.value.file, info.value.line, info.value.field) == (str(ckpt), None, field)
    assert message in info.value.message


def test_unreadable_inputs_and_wrong_names_exit_2(tmp_path: Path, resnet18) -> None:
    spec = spec_path("resnet18")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    text = invoke(["port", garbage, "--spec", spec, "--to", "keras", "-o", tmp_path / "a.weights.h5"], code=2).output
    assert f"error: {garbage}: cannot read as a PyTorch state_dict" in text
    whole = tmp_path / "whole_model.pth"
    torch.save(torchvision.models.resnet18(), whole)  # a pickled module is refused, never unpickled
    text = invoke(["port", whole, "--spec", spec, "--to", "keras", "-o", tmp_path / "b.weights.h5"], code=2).output
    assert "weights_only" in text
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    text = invoke(["port", bad_st, "--spec", spec, "--to", "keras", "-o", tmp_path / "c.weights.h5"], code=2).output
    assert f"error: {bad_st}: cannot read as safetensors" in text
    ckpt = resnet18[1]
    text = invoke(["port", ckpt, "--spec", spec, "--to", "keras", "-o", tmp_path / "out.h5"], code=2).output
    assert "must end with .weights.h5" in text
    text = invoke(["port", ckpt, "--spec", spec, "--to", "torch", "-o", tmp_path / "o.pth"], code=2).output
    assert "--to torch reads a .weights.h5 file" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "garbage.pth", "whole_model.pth"]


def test_a_keras_file_of_another_spec_is_refused(tmp_path: Path) -> None:
    _, network = archgen.compile_spec(spec_path("resnet34"))
    other = tmp_path / "resnet34.weights.h5"
    KERAS.build(network).save_weights(str(other))
    out = tmp_path / "r18.pth"
    text = invoke(["port", other, "--spec", spec_path("resnet18"), "--to", "torch", "-o", out], code=2).output
    # Keras files hold arrays by position; resnet34's 6th conv is a third layer1 block where
    # resnet18 has its first layer2 conv (64 -> 128 channels)
    assert text.splitlines()[0] == (
        f"error: {other}: layer2.0.conv1: 'layers/conv2d_5/vars/0' has shape (3, 3, 64, 64) in the file, "
        "the spec needs (3, 3, 64, 128)"
    )
    assert not out.exists()


def test_a_port_that_computes_something_else_is_not_written(
    tmp_path: Path, resnet18, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--verify reads the file back and compares stage by stage before it appears."""
    real = KERAS.set_weights

    def broken(model, network, weights):  # a layout bug in one layer of layer3
        if "layer3.0.conv2" in weights:
            weights = {"layer3.0.conv2": {"weight": weights["layer3.0.conv2"]["weight"].swapaxes(2, 3).copy()}}
        real(model, network, weights)

    monkeypatch.setattr(type(KERAS), "set_weights", lambda self, m, n, w: broken(m, n, w))
    out = tmp_path / "r18.weights.h5"
    text = invoke(["port", resnet18[1], "--spec", spec_path("resnet18"), "--to", "keras", "-o", out], code=1).output
    assert "DIVERGES at layer3" in text and "nothing was written" in text
    assert list(tmp_path.iterdir()) == []


def test_compare_prints_every_boundary(tmp_path: Path, resnet18) -> None:
    text = invoke(["compare", spec_path("resnet18"), "--input-size", SIZE]).output
    for point in ("stem", "layer1", "layer2", "layer3", "layer4", "head"):
        assert f"| {point}" in text  # piped: ASCII rules
    assert "ok: worst relative difference" in text
    args = ["compare", spec_path("resnet18"), "--input-size", SIZE, "--weights", resnet18[1], "--json"]
    data = json.loads(invoke(args).output)
    assert data["ok"] is True and data["tolerance"] == 1e-4 and data["first_divergence"] is None
    assert [p["name"] for p in data["points"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert data["points"][-1]["shape"] == [1000] and data["worst"] > 0


def test_compare_exits_1_beyond_the_tolerance() -> None:
    text = invoke(["compare", spec_path("resnet18"), "--input-size", 32, "--tolerance", "0"], code=1).output
    assert "DIVERGES at stem" in text  # float32 rounding is never exactly zero after a 7x7 conv


def test_port_reports_progress_over_every_layer(tmp_path: Path, resnet18) -> None:
    """The CLI shows a progress bar through this hook; it must cover every weighted layer once."""
    from archgen.runtime.port import port

    _, network = archgen.compile_spec(spec_path("resnet18"))
    weighted = [x.name for x in network.layers() if x.params or x.stats]
    seen: list[tuple[str, int, list[object]]] = []

    def progress(items, description: str, total: int):
        items = list(items)
        seen.append((description, total, items))
        return items

    out = tmp_path / "r18.weights.h5"
    port(resnet18[1], network, "keras", out, progress=progress)
    port(out, network, "torch", tmp_path / "r18.pth", progress=progress)
    (d1, n1, items1), (d2, n2, items2) = seen
    assert (d1, n1, [name for name, _ in items1]) == ("setting Keras weights", 41, weighted)
    assert (d2, n2, [x.name for x in items2]) == ("reading Keras weights", 41, weighted)
