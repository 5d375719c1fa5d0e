"""The inference form (``archgen.build(..., fuse=True)``, ``emit --fuse``, ``export --fuse``), building
around a checkpoint (``weights=``) and the single initialisation pass.

The fused model is held to the model it was folded from at every boundary (1e-9 in float64: the same
function; 1e-4 in float32) on every block design, and to torchvision's and timm's own models given
the same random checkpoint: the references' outputs are computed by the references.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch
import torchvision
from archgen.backends.torch.randomize import randomize_
from helpers import import_file, invoke, spec_path
from hypothesis import HealthCheck, given, reject, settings
from spec_strategies import DrawnSpec, valid_specs

import archgen
from archgen.compiler.fuse import fuse
from archgen.errors import SpecError
from archgen.ir import Conv, Norm
from archgen.registry import get as backend
from archgen.runtime.compare import compare_fused
from archgen.runtime.weights import read_state_dict

SIZE = 32
TORCH = backend("torch")
# One spec per block design, shortcut, stem and tweak: basic/bottleneck/plain blocks, pre-activation,
# SE, grouped convs, conv/avgpool shortcuts, the deep and ResNet-RS stems, a Keras-style stride, timm's
# resnetv2 naming (named shortcut parts, a numbered deep stem, a 1x1-conv classifier).
DESIGNS = [
    "resnet18",
    "resnet50d",
    "resnet50v2",
    "resnetv2_50d",
    "seresnet50",
    "resnetrs50",
    "resnext50_32x4d",
    "xresnet18",
    "imagenette_cnn",
    "keras_resnet50",
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny inputs: OpenMP barriers cost more than the work on 2 busy cores
    yield
    torch.set_num_threads(saved)


def network(name: str, **kwargs: Any) -> archgen.Network:
    return archgen.compile_spec(spec_path(name), input_size=kwargs.pop("input_size", SIZE), **kwargs)[1]


# -- the IR pass --------------------------------------------------------------------------------------------


def test_fused_ir_drops_every_norm_after_a_conv_and_biases_the_conv() -> None:
    net = network("resnet50d")
    fused = fuse(net)
    norms = [x for x in net.layers() if isinstance(x, Norm)]
    assert not [x for x in fused.layers() if isinstance(x, Norm)]  # post-activation: every norm folds
    assert len(fused.folds) == len(norms) == 55  # timm's resnet50d: 3 stem + 48 block + 4 shortcut norms
    folded_channels = sum(x.channels for x in norms)
    # each norm's 2C params go; its conv gains a C bias
    assert fused.params == net.params - folded_channels
    assert fused.stats == 0
    assert fused.flops == net.flops - sum(x.flops for x in norms)
    assert fuse(fused) is fused


def test_pre_activation_keeps_the_norms_that_do_not_follow_a_conv() -> None:
    net = network("resnet50v2")
    fused = fuse(net)
    kept = [x.name for x in fused.layers() if isinstance(x, Norm)]
    # each block's bn1 (it also feeds the shortcut) and the final post_bn (after an addition)
    assert kept == [f"{s.name}.{i}.bn1" for s in net.stages for i in range(s.depth)] + ["post_bn"]


def test_a_norm_that_leaves_a_sequential_renumbers_it() -> None:
    fused = fuse(network("resnetrs50"))
    assert [x.name for x in fused.stem] == [
        "conv1.0",
        "conv1.1",
        "conv1.2",
        "conv1.3",
        "conv1.4",
        "act1",
        "maxpool.0",
        "maxpool.1",
    ]
    assert ("conv1.2", "conv1.3", "conv1.4") in {(f.conv, f.source_conv, f.norm) for f in fused.folds}


def test_a_weighted_layer_renumbered_in_the_stem_keeps_its_weights(tmp_path: Path) -> None:
    # A deep stem (tweak C) without its final norm: its last conv, conv1.6, becomes conv1.4 (found by the
    # fuzzer below: the fold must rename its tensors, not only its layer).
    path = tmp_path / "stem.yaml"
    path.write_text(
        "stem: {norm_act: false}\nblock: {type: basic}\nstages: [{depth: 1, width: 8}]\n"
        "input: {size: [16, 16], channels: 1}\ntweaks: [C]\nhead: classifier\n"
    )
    net = archgen.compile_spec(path)[1]
    assert fuse(net).renames == (("conv1.6", "conv1.4"),)
    result = compare_fused(net, dtype="float64")
    assert result.ok, result.text()


# -- the fused model against the unfused one ----------------------------------------------------------------


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_model_computes_the_unfused_models_function(name: str, dtype: str, device: str) -> None:
    # compare's default norm scales: larger ones grow the activations tenfold over 50 layers, and float32
    # rounding with them (1.2e-4 at resnet50d's layer4 with scales in [0.5, 1.5], measured)
    result = compare_fused(network(name), dtype=dtype, device=device)
    assert result.ok, result.text()
    assert [p.name for p in result.points] == list(network(name).boundaries())[:-1]


def test_fused_features_model_with_dilation(device: str) -> None:
    net = archgen.build(spec_path("resnet50d"), features_only=True, output_stride=8, input_size=SIZE).archgen_network
    result = compare_fused(net, dtype="float64", device=device)
    assert result.ok, result.text()
    assert {p.name for p in result.points} >= {"output.0", "output.4"}


def test_fused_model_is_an_eval_channels_last_model_with_the_fused_counts() -> None:
    model = archgen.build(spec_path("seresnet50"), fuse=True, input_size=SIZE)
    fused = model.archgen_network
    assert fused.fused and not model.training
    assert not [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert sum(p.numel() for p in model.parameters()) == fused.params
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


FUZZ = settings(  # a fixed seed, as test_fuzz.py's CI profile: the same examples every run
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@FUZZ
@given(drawn=valid_specs())
def test_random_specs_fuse_to_the_same_function(drawn: DrawnSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz_spec.yaml"
        path.write_text(drawn.text, encoding="utf-8")
        try:
            _, net = archgen.compile_spec(path)
        except SpecError:
            reject()  # what the language refuses is test_fuzz.py's
        if net.norm.kind != "batch" or any(isinstance(x, Conv) and x.std_eps for x in net.layers()):
            reject()  # no norm folds, or a folded scale would be standardised away: fuse refuses it
        result = compare_fused(net, dtype="float64", gamma=(0.5, 1.5))
        assert result.ok, result.text() + drawn.text
        model = archgen.build_network(net, fuse=True)
        assert sum(p.numel() for p in model.parameters()) == fuse(net).params


# -- against the references' own models ---------------------------------------------------------------------


def _random_reference(model: torch.nn.Module, tmp_path: Path, seed: int = 0) -> Path:
    """Every weight and norm statistic of a reference model random; its state_dict saved."""
    randomize_(model, (3, SIZE, SIZE), seed=seed, batches=2, batch_size=4, gamma=(0.5, 1.5))
    path = tmp_path / "reference.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("spec", "make"),
    [
        ("resnet50", lambda: torchvision.models.resnet50()),
        ("resnet50d", lambda: timm.create_model("resnet50d")),
        ("resnetrs50", lambda: timm.create_model("resnetrs50")),
    ],
)
def test_fused_model_of_a_reference_checkpoint_computes_the_reference(spec: str, make: Any, tmp_path: Path) -> None:
    reference = make()
    path = _random_reference(reference, tmp_path)
    reference = reference.double().eval()
    net = network(spec)
    weights = read_state_dict(path, net)
    ours = TORCH.build(net, dtype="float64", weights=weights, fuse=True)  # folded in float64
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)))
    with torch.no_grad():
        want, got = reference(x), ours(x)
    assert (got - want).abs().max().item() <= 1e-9 * max(1.0, want.abs().max().item())


def test_emitted_fused_file_folds_a_torchvision_checkpoint(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18()
    path = _random_reference(reference, tmp_path)
    target = tmp_path / "resnet18_fused.py"
    invoke(["emit", spec_path("resnet18"), "--fuse", "-o", target])
    text = target.read_text(encoding="utf-8")
    imported = {name.split(".")[0] for name in re.findall(r"^(?:import|from) (\S+)", text, re.M)}
    assert imported == {"threading", "collections", "concurrent", "typing", "torch"}  # torch and the stdlib
    from ruff.__main__ import find_ruff_bin

    rules = ["--no-cache", "--isolated", "--select", "E,F,W,I,B,UP", "--line-length", "100"]  # test_emit.py's
    lint = subprocess.run([find_ruff_bin(), "check", *rules, str(target)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    module = import_file(target, "resnet18_fused")
    model = module.build_model()
    model.load_state_dict(module.fold_state_dict(torch.load(path, weights_only=True)), strict=True)
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max().item())
    assert not [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


# -- building: one initialisation pass, none around a checkpoint --------------------------------------------


def test_build_initialises_every_tensor_once_as_the_spec_says() -> None:
    torch.manual_seed(0)
    model = archgen.build(spec_path("resnet50"), input_size=SIZE)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # to_empty leaves garbage: every statistic is set
            assert torch.equal(m.weight, torch.ones_like(m.weight))  # (the spec has no zero_init_last)
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var))
            assert m.num_batches_tracked.item() == 0
    conv = model.layer3[0].conv2  # kaiming normal, fan_out: std sqrt(2 / (256 * 9))
    assert abs(conv.weight.std().item() / (2 / (256 * 9)) ** 0.5 - 1) < 0.02
    bound = 1 / 2048**0.5  # the classifier: PyTorch's default, uniform within 1/sqrt(fan_in)
    assert model.fc.weight.abs().max().item() <= bound
    assert model.fc.weight.abs().max().item() > 0.99 * bound
    torch.manual_seed(0)
    again = archgen.build(spec_path("resnet50"), input_size=SIZE)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))


def test_build_around_a_checkpoint_initialises_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = torchvision.models.resnet50()
    path = _random_reference(reference, tmp_path)
    state = torch.load(path, weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "half.pth")

    def refuse(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not tensor.is_meta:  # the structure is built on the meta device, where nothing is made
            raise AssertionError("a weight was initialised")
        return tensor

    for fn in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "ones_", "zeros_"):
        monkeypatch.setattr(torch.nn.init, fn, refuse)
    model = archgen.build(spec_path("resnet50"), weights=path, input_size=SIZE)
    half = archgen.build(spec_path("resnet50"), weights=tmp_path / "half.pth", input_size=SIZE)
    monkeypatch.undo()
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):  # step counters start at 0, as `port` writes them
            assert torch.equal(value, state[key]), key
    params = list(model.parameters())
    assert all(p.requires_grad and p.dtype == torch.float32 and p.device.type == "cpu" for p in params)
    assert all(p.dtype == torch.float32 for p in half.parameters())  # the model's precision, not the file's
    reference.eval()
    model.eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_emitted_build_model_on_the_meta_device_holds_no_memory() -> None:
    module = import_file(Path(__file__).resolve().parent.parent / "generated" / "resnet18_torch.py", "r18_meta")
    model = module.build_model(device="meta")
    assert all(p.is_meta for p in model.parameters())
    assert {b.device.type for b in model.buffers()} == {"meta"}


# -- the command line ---------------------------------------------------------------------------------------


def test_cli_build_fuse_checks_the_fused_ir_and_the_unfused_model() -> None:
    result = invoke(["build", "resnet50d", "--fuse", "--input-size", SIZE])
    assert "ok: torch model matches the fused IR (25,549,640 params, 0 norm statistics" in result.output
    assert "fused vs unfused model: ok: worst relative difference" in result.output


def test_cli_build_weights_loads_and_checks(tmp_path: Path) -> None:
    path = _random_reference(torchvision.models.resnet18(), tmp_path)
    result = invoke(["build", "resnet18", "--weights", path, "--input-size", SIZE])
    assert "ok: torch model matches the IR (11,689,512 params" in result.output
    wrong = invoke(["build", "resnet34", "--weights", path], code=2)
    assert "missing from the checkpoint" in wrong.output and "Traceback" not in wrong.output


def test_cli_fuse_is_refused_where_there_is_no_inference_form(tmp_path: Path) -> None:
    result = invoke(["build", "resnet18", "--fuse", "--backend", "keras"], code=2)
    assert "no inference form" in result.output and "Traceback" not in result.output
    result = invoke(["emit", "resnet18", "--fuse", "--backend", "keras", "-o", tmp_path / "x.py"], code=2)
    assert "only the torch backend" in result.output
    assert not (tmp_path / "x.py").exists()


def test_cli_emit_fuse_default_path(tmp_path: Path) -> None:
    invoke(["emit", "resnet18", "--fuse", "--out", tmp_path])
    assert [p.name for p in tmp_path.iterdir()] == ["resnet18_torch_fused.py"]


def test_cli_export_fuse_holds_the_file_to_the_unfused_model(tmp_path: Path) -> None:
    out = tmp_path / "r18.pt"
    result = invoke(["export", "resnet18", "--format", "torchscript", "--fuse", "-o", out, "--input-size", SIZE])
    assert "(torchscript, fused," in result.output
    loaded = torch.jit.load(out)
    names = {n for n, _ in loaded.named_modules()}
    assert "bn1" not in names and "layer1.0.bn1" not in names
