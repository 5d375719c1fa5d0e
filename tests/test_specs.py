"""Every spec in specs/: the built PyTorch model agrees with the IR."""

from __future__ import annotations

import pytest
import torch
from archgen.backends.torch import BACKEND
from helpers import FUNCTION_SPECS, spec_path

import archgen

pytestmark = [pytest.mark.torch]


@pytest.mark.parametrize("name", FUNCTION_SPECS)
def test_model_matches_ir(name: str, device: str) -> None:
    _, network = archgen.compile_spec(spec_path(name))
    model = BACKEND.build(network, device=device)
    assert BACKEND.counts(model) == (network.params, network.stats)
    # Every IR layer with weights is a module of the same path, and nothing else holds weights.
    owners = {n.rsplit(".", 1)[0] for n, _ in model.named_parameters()}
    assert owners == {x.name for x in network.layers() if x.params}
    for layer in network.layers():
        module = model.get_submodule(layer.name)
        assert sum(p.numel() for p in module.parameters()) == layer.params, layer.name
    # Shapes at the stem, every stage and the output, at a small input (the model is the same).
    _, small = archgen.compile_spec(spec_path(name), input_size=64)
    assert BACKEND.trace(model, small, device=device) == small.boundaries()


@pytest.mark.parametrize("name", ["imagenette_cnn", "imagenette_resnet18", "resnet50v2", "resnetrs50"])
def test_full_resolution_shapes(name: str) -> None:
    _, network = archgen.compile_spec(spec_path(name))
    model = BACKEND.build(network)
    assert BACKEND.trace(model, network) == network.boundaries()


def test_resnet50_stage_shapes_are_the_papers() -> None:
    _, network = archgen.compile_spec(spec_path("resnet50"))
    assert network.boundaries() == {
        "stem": (64, 56, 56),
        "layer1": (256, 56, 56),
        "layer2": (512, 28, 28),
        "layer3": (1024, 14, 14),
        "layer4": (2048, 7, 7),
        "head": (1000,),
        "output": (1000,),
    }


def test_drop_path_linear_schedule_and_eval_identity() -> None:
    model = archgen.build(spec_path("resnet50"), overrides=["drop_path.rate=0.15"], input_size=32)
    rates = [m.rate for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates == pytest.approx([0.15 * i / 15 for i in range(16)])
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model.forward_features(x)
    torch.manual_seed(1)
    b = model.forward_features(x)
    assert not torch.allclose(a, b)


def test_drop_path_per_stage_schedule() -> None:
    model = archgen.build(spec_path("resnetrs50"), drop_path__rate=0.2, drop_path__schedule="per_stage")
    for s, depth in enumerate((3, 4, 6, 3)):
        stage = getattr(model, f"layer{s + 1}")
        assert [b.drop_path.rate for b in stage] == pytest.approx([0.2 * (s + 2) / 5] * depth)


def test_drop_path_single_block_network_has_the_full_rate() -> None:
    model = archgen.build(
        spec_path("resnet18"), overrides={"stages": [{"depth": 1, "width": 8}], "drop_path.rate": 0.1}
    )
    assert [m.rate for m in model.modules() if type(m).__name__ == "DropPath"] == [0.1]


def test_zero_init_last() -> None:
    d = archgen.build(spec_path("resnet50d"))
    plain = archgen.build(spec_path("resnet50"))
    assert all(float(b.bn3.weight.abs().sum()) == 0.0 for b in d.layer2)
    assert all(float(b.bn3.weight.abs().sum()) > 0.0 for b in plain.layer2)
    v2 = archgen.build(spec_path("resnet50v2"), init__zero_init_last=True)
    assert float(v2.layer1[0].conv3.weight.abs().sum()) == 0.0


def test_kaiming_fan_out_init() -> None:
    model = archgen.build(spec_path("resnet50"))
    w = model.layer3[0].conv2.weight  # 256 -> 256, 3x3: fan_out = 256 * 9
    assert float(w.std()) == pytest.approx((2.0 / (256 * 9)) ** 0.5, rel=0.05)


def test_keras_v2_layout() -> None:
    """Pre-activation: stride in the last block, max-pool shortcut, biases only where no norm follows."""
    model = archgen.build(spec_path("resnet50v2"))
    first, last = model.layer1[0], model.layer1[2]
    assert first.conv1.bias is None and first.conv2.bias is None and first.conv3.bias is not None
    assert first.downsample[1].bias is not None  # projecting shortcut conv, no norm after it
    assert isinstance(last.downsample[0], torch.nn.MaxPool2d) and last.conv2.stride == (2, 2)
    assert model.conv1.bias is not None and not hasattr(model, "bn1")
    assert hasattr(model, "post_bn")


def test_torch_compile_without_graph_breaks() -> None:
    model = archgen.build(spec_path("seresnet50"), input_size=32, drop_path__rate=0.1).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x))
