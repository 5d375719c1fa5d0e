"""Spec-language features beyond the shipped specs, each built and checked against the IR."""

from __future__ import annotations

import pytest
import torch
from archgen.backends.torch import BACKEND
from helpers import spec_path

import archgen
from archgen.ir import Conv

pytestmark = [pytest.mark.torch]

VARIANTS = {
    "features_head": ("resnet18", {"head": "features"}),
    "max_pool_head_dropout": ("resnet18", {"head": {"pool": "max", "dropout": 0.3, "classes": 7}}),
    "half_width": ("resnet50", {"width_multiplier": 0.5}),
    "silu_se_floor": ("resnet50", {"act": "silu", "block.se": {"ratio": 0.1, "rounding": "floor", "divisor": 1}}),
    "mixed_block_types": (
        "resnet18",
        {"stages": [{"depth": 2, "width": 32}, {"depth": 1, "width": 32, "block": {"type": "bottleneck"}}]},
    ),
    "preact_basic": ("resnet18", {"block.preact": True, "stem.norm_act": False}),
    "no_stem_pool_rect_input": ("resnet18", {"stem.pool": "none", "input.size": [96, 64]}),
    "grayscale_input": ("resnet18", {"input.channels": 1}),
    "identity_shortcut": (
        "resnet18",
        {"block.shortcut": "identity", "stages": [{"depth": 2, "width": 64}, {"depth": 2, "width": 64, "stride": 1}]},
    ),
    "maxpool_shortcut_stride_first": ("resnet50", {"block.shortcut": "maxpool"}),
    "deep_stem_four_convs": ("resnet18", {"stem": {"type": "deep", "widths": [16, 16, 32, 64]}}),
}


@pytest.mark.parametrize("case", list(VARIANTS))
def test_variant_builds_as_the_ir_says(case: str) -> None:
    base, overrides = VARIANTS[case]
    _, network = archgen.compile_spec(spec_path(base), overrides, input_size=None)
    model = BACKEND.build(network)
    assert BACKEND.counts(model) == (network.params, network.stats)
    assert BACKEND.trace(model, network) == network.boundaries()


def test_features_head_returns_the_last_feature_map() -> None:
    model = archgen.build(spec_path("resnet18"), head="features").eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_se_widths() -> None:
    """Reduced widths: nearest multiple of 8 (timm) or floor (Keras ResNet-RS)."""
    _, net = archgen.compile_spec(spec_path("resnet50"), {"block.se": {"ratio": 0.1}})
    fc1 = {x.name: x.out_ch for x in net.layers() if isinstance(x, Conv) and x.name.endswith("se.fc1")}
    assert fc1["layer1.0.se.fc1"] == 24  # 256 * 0.1 = 25.6 -> 24
    assert fc1["layer4.0.se.fc1"] == 208  # 2048 * 0.1 = 204.8 -> 208
    _, net = archgen.compile_spec(
        spec_path("resnet50"), {"block.se": {"ratio": 0.1, "rounding": "floor", "divisor": 1}}
    )
    fc1 = {x.name: x.out_ch for x in net.layers() if isinstance(x, Conv) and x.name.endswith("se.fc1")}
    assert fc1["layer1.0.se.fc1"] == 25 and fc1["layer4.0.se.fc1"] == 204


def test_width_multiplier_rounds_to_multiples_of_8() -> None:
    _, net = archgen.compile_spec(spec_path("resnet50"), {"width_multiplier": 0.3})
    # 64 * 0.3 = 19.2 -> 16; stage widths 64/128/256/512 -> 16/40/80/152, expanded x4.
    assert net.stem[0].out_shape[0] == 16
    assert [s.out_shape[0] for s in net.stages] == [64, 160, 320, 608]


def test_zero_padded_max_pool_differs_from_neg_inf_on_negative_input() -> None:
    """keras.applications pads the stem pool with zeros; PyTorch with -inf. Only signed inputs tell."""
    zero = archgen.build(spec_path("resnet18"), stem__pool_padding="zero").maxpool
    neg = archgen.build(spec_path("resnet18")).maxpool
    x = -torch.rand(1, 2, 4, 4) - 1.0
    assert float(zero(x)[0, 0, 0, 0]) == 0.0
    assert float(neg(x)[0, 0, 0, 0]) < 0.0


def test_avgpool_shortcut_on_odd_sizes_averages_only_real_pixels() -> None:
    model = archgen.build(spec_path("resnet50d"), input_size=72)  # layer2 input 18 -> layer3 input 9 (odd)
    pool = model.layer4[0].downsample[0]
    x = torch.ones(1, 1, 5, 5)
    assert torch.equal(pool(x), torch.ones(1, 1, 3, 3))
