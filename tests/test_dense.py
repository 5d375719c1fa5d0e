"""Dense prediction: ``output_stride`` (dilation) and features models (``out_indices``, the
``features_only`` build option), against timm's and torchvision's own dilated and features_only
models, built with random init and every weight randomised."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from archgen.backends.torch.randomize import randomize_
from helpers import invoke
from torch.utils.flop_counter import FlopCounterMode

import archgen

pytestmark = pytest.mark.torch

SIZE = 64  # odd-free but small: at output_stride 8 the last maps are 8x8


def _tv_dilated(name: str, output_stride: int) -> torch.nn.Module:
    return getattr(torchvision.models, name)(replace_stride_with_dilation=[False, output_stride == 8, True])


# (library, reference, spec, output_stride): each block kind and shortcut timm/torchvision dilate.
DILATED = [
    ("torchvision", "resnet50", "resnet50", 8),
    ("torchvision", "resnet50", "resnet50", 16),
    ("timm", "resnet18", "resnet18", 8),  # basic blocks (torchvision's refuse dilation)
    ("timm", "resnet50d", "resnet50d", 8),  # the 2x2 stride-1 average-pool shortcut
    ("timm", "seresnet50", "seresnet50", 16),
    ("timm", "resnetrs50", "resnetrs50", 8),
]


def reference(library: str, name: str, output_stride: int, **kwargs: object) -> torch.nn.Module:
    if library == "torchvision":
        return _tv_dilated(name, output_stride)
    return timm.create_model(name, pretrained=False, output_stride=output_stride, **kwargs)


def batch() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def assert_close(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.shape == expected.shape
    assert expected.std().item() > 1e-3  # signal, not a degenerate map
    scale = expected.abs().max().item()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * scale), (got - expected).abs().max().item()


@pytest.mark.parametrize(
    ("library", "name", "spec", "output_stride"), DILATED, ids=[f"{d[2]}-os{d[3]}" for d in DILATED]
)
def test_dilated_models_load_the_references_weights_and_give_their_outputs(
    library: str, name: str, spec: str, output_stride: int, device: str
) -> None:
    ref = reference(library, name, output_stride)
    randomize_(ref, (3, SIZE, SIZE), seed=1)
    ours = archgen.build(spec, input_size=SIZE, output_stride=output_stride)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.to(device).eval()
    ours.to(device).eval()
    x = batch().to(device)
    with torch.no_grad():
        assert_close(ours(x), ref(x))
        maps = ours.forward_features(x)
    assert maps.shape[-1] == SIZE // output_stride
    if library == "timm":
        assert ours.feature_info == ref.feature_info


@pytest.mark.parametrize(
    ("library", "name", "spec", "output_stride"), DILATED, ids=[f"{d[2]}-os{d[3]}" for d in DILATED]
)
def test_dilated_flops_match_the_references_counted_by_torch(
    library: str, name: str, spec: str, output_stride: int
) -> None:
    _, network = archgen.compile_spec(spec, {"output_stride": output_stride}, input_size=SIZE)
    with torch.device("meta"):
        model = reference(library, name, output_stride).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, SIZE, SIZE))
    assert network.flops * 2 == counter.get_total_flops()


FEATURES = [("resnet50d", None), ("resnet18", (1, 2)), ("resnetrs50", (0, 3)), ("resnet50", (-2, -1))]


@pytest.mark.parametrize(("spec", "indices"), FEATURES, ids=[f"{s}-{i}" for s, i in FEATURES])
def test_features_only_models_are_timms_features_only_models(spec: str, indices: tuple[int, ...] | None) -> None:
    ref = timm.create_model(spec, pretrained=False, features_only=True, **({"out_indices": indices} if indices else {}))
    randomize_(ref, (3, SIZE, SIZE), seed=2, batch_size=2)
    ours = archgen.build(spec, input_size=SIZE, features_only=True, out_indices=indices)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()
    ours.eval()
    x = batch()
    with torch.no_grad():
        got, expected = ours(x), ref(x)
    assert isinstance(got, list) and len(got) == len(expected) == len(ref.feature_info.out_indices)
    taken = [ours.feature_info[i] for i in ref.feature_info.out_indices]
    assert [f["num_chs"] for f in taken] == ref.feature_info.channels()
    assert [f["reduction"] for f in taken] == ref.feature_info.reduction()
    for g, e in zip(got, expected, strict=True):
        assert_close(g, e)


def test_a_dilated_features_model_scripts_traces_and_exports() -> None:
    model = archgen.build("resnet50d", input_size=SIZE, output_stride=8, features_only=True, out_indices=(1, 3, 4))
    randomize_(model, (3, SIZE, SIZE), seed=0, batches=1, batch_size=2)
    model.eval()
    x = batch()
    with torch.no_grad():
        expected = model(x)
        assert [tuple(m.shape[1:]) for m in expected] == [(256, 16, 16), (1024, 8, 8), (2048, 8, 8)]
        scripted = torch.jit.script(model)
        traced = torch.fx.symbolic_trace(model)
        exported = torch.export.export(model, (x,))
        for other in (scripted(x), traced(x), torch.jit.script(traced)(x), exported.module()(x)):
            assert len(other) == 3
            for g, e in zip(other, expected, strict=True):
                assert_close(g, e)
    # gradient checkpointing through the features forward gives the same gradients
    model.train()
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        torch.manual_seed(0)
        sum(m.square().mean() for m in model(x)).backward()
        grads.append(model.layer3[1].conv2.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_an_emitted_dilated_features_file_is_the_live_model(tmp_path: Path) -> None:
    out = tmp_path / "dense_torch.py"
    invoke(
        [
            "emit",
            "resnet50v2",
            "-b",
            "torch",
            "-o",
            str(out),
            "--set",
            "output_stride=8",
            "--set",
            "head={type: features, out_indices: [2, 3]}",
        ]
    )
    source = out.read_text()
    assert "dilation=first_dilation" in source and "OUT_INDICES = (2, 3)" in source
    spec = importlib.util.spec_from_file_location("dense_torch", out)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dense_torch"] = module
    try:
        spec.loader.exec_module(module)
        emitted = module.build_model().eval()
    finally:
        del sys.modules["dense_torch"]
    live = archgen.build(
        "resnet50v2", output_stride=8, head={"type": "features", "out_indices": [2, 3]}, input_size=SIZE
    )
    randomize_(live, (3, SIZE, SIZE), seed=4, batches=1, batch_size=2)
    emitted.load_state_dict(live.state_dict(), strict=True)
    live.eval()
    x = batch()
    with torch.no_grad():
        for g, e in zip(emitted(x), live(x), strict=True):
            assert_close(g, e)


def test_build_options_for_features_say_what_is_wrong() -> None:
    with pytest.raises(TypeError, match="features_only=True"):
        archgen.build("resnet18", out_indices=(1, 2))
    with pytest.raises(archgen.SpecError) as info:
        archgen.build("resnet18", features_only=True, out_indices=(1, 7))
    assert info.value.field == "head.out_indices"
    assert "indices from -5 to 4" in info.value.message
    with pytest.raises(archgen.SpecError) as info:
        archgen.build("resnet18", features_only=True, out_indices=[])
    assert info.value.field == "head.out_indices"


def test_the_cli_builds_and_checks_a_dilated_features_model() -> None:
    result = invoke(
        [
            "build",
            "resnet50d",
            "--input-size",
            str(SIZE),
            "--set",
            "output_stride=8",
            "--set",
            "head={type: features, out_indices: [1, 2, 3, 4]}",
            "--json",
        ]
    )
    report = json.loads(result.output)
    assert report["ok"] is True
    shapes = {c["check"]: c["model"] for c in report["checks"]}
    assert shapes["shape output.0"] == "256x16x16"
    assert shapes["shape output.3"] == "2048x8x8"
