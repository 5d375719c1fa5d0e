"""timm's resnetv2 through the language: module names as data (``naming``), the 1x1-conv classifier
(``head.fc: conv``), weight-standardised convs (``weight_std``, BiT) and the norms that are their own
activation (``norm: frn | evonorm_s0``).

The registry tests (test_zoo: counts, strict load and equal outputs of the smallest spec of each design;
test_keras and test_emit through the design list) cover the shipped resnetv2 specs. Here: a post-activation
network under timm's resnetv2 names (the ViT-hybrid backbone's layout, which no registry model has), what
is refused and where, the Keras port of timm's checkpoints, and the reports.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import timm
import torch
from archgen.backends.torch.randomize import randomize_
from helpers import assert_ports_to_keras, assert_same_outputs, invoke
from timm.layers import GroupNormAct, StdConv2d
from timm.models.resnetv2 import ResNetV2

import archgen
from archgen.errors import OptionError, SpecError
from archgen.ir import Act, Conv, Linear, NormAct
from archgen.tools.diff import diff
from archgen.tools.summary import layer_rows

pytestmark = [pytest.mark.torch]

SIZE = 64


def test_a_post_activation_resnetv2_under_timms_names_loads_strictly_and_computes_the_same(device: str) -> None:
    """timm's ResNetV2(preact=False): the BiT-style backbone of its ViT hybrids (fixed stem, StdConv2d, GN),
    its downsample.conv + downsample.norm projection, its stem.norm, and no final norm."""
    reference = ResNetV2(
        layers=[2, 2, 2, 2],
        preact=False,
        stem_type="fixed",
        conv_layer=partial(StdConv2d, eps=1e-8),
        norm_layer=partial(GroupNormAct, num_groups=32),
        num_classes=10,
    )
    randomize_(reference, (3, SIZE, SIZE), seed=3)
    fields = [
        "block.preact=false",
        "stem.norm_act=true",
        "stages=[{depth: 2, width: 64}, {depth: 2, width: 128}, {depth: 2, width: 256}, {depth: 2, width: 512}]",
        "head.classes=10",
    ]
    _, network = archgen.compile_spec("resnetv2_50x1_bit", fields, input_size=SIZE)
    assert "norm" not in {x.name for x in network.head}  # no final norm after post-activation blocks
    assert {"stem.norm", "stages.1.blocks.0.downsample.conv", "stages.1.blocks.0.downsample.norm"} <= {
        x.name for x in network.layers()
    }
    ours = archgen.build("resnetv2_50x1_bit", overrides=fields, input_size=SIZE)
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert_same_outputs(reference, ours, device, seed=4, size=SIZE)


def test_the_names_and_the_classifier_follow_the_spec() -> None:
    _, v2 = archgen.compile_spec("resnetv2_50d", input_size=SIZE)
    names = [x.name for x in v2.layers()]
    assert names[:3] == ["stem.conv1", "stem.norm1", "stem.act1"] and "stem.pool" in names
    assert "stages.0.blocks.0.downsample.conv" in names and "stages.1.blocks.0.downsample.pool" in names
    assert names[-4:] == ["norm", "act", "head.global_pool", "head.fc"]
    (fc,) = [x for x in v2.head if isinstance(x, Linear)]
    assert fc.conv and fc.params == 2048 * 1000 + 1000
    # the same network under torchvision's names: the same layers, one by one, only named otherwise
    _, tv = archgen.compile_spec("resnetv2_50d", ["naming=torchvision", "head.fc=linear"], input_size=SIZE)
    assert [type(x) for x in tv.layers()] == [type(x) for x in v2.layers()]
    assert (tv.params, tv.flops) == (v2.params, v2.flops)
    assert [x.name for x in tv.layers()][:3] == ["conv1.0", "conv1.1", "conv1.2"]
    changes = [c.text() for c in diff(tv, v2).changes]
    assert "module names: torchvision -> timm_resnetv2" in changes and "head: fc linear -> 1x1 conv" in changes
    model = archgen.build("resnetv2_50d", input_size=SIZE)
    assert model.get_classifier(name_only=True) == "head.fc"
    assert model.get_classifier().weight.shape == (1000, 2048, 1, 1)
    model.reset_classifier(7)
    assert model.get_submodule("head.fc").weight.shape == (7, 2048, 1, 1)
    assert model(torch.randn(1, 3, SIZE, SIZE)).shape == (1, 7)


def test_weight_standardisation_covers_every_conv_but_attentions_and_the_classifier() -> None:
    _, network = archgen.compile_spec("resnetv2_50x1_bit", ["block.se={ratio: 0.25}"], input_size=SIZE)
    convs = [x for x in network.layers() if isinstance(x, Conv)]
    se = [x for x in convs if ".se." in x.name]
    assert se and all(x.std_eps is None for x in se)
    assert all(x.std_eps == 1e-8 for x in convs if x not in se)
    rows = {r.name: r.op for r in layer_rows(network)}
    assert rows["stem.conv"].startswith("StdConv2d 7x7/2")
    with pytest.raises(OptionError, match="weight-standardised"):
        archgen.build("resnetv2_50d", overrides=["weight_std={eps: 1.0e-8}"], fuse=True, input_size=SIZE)


@pytest.mark.parametrize(("name", "kind"), [("resnetv2_50d_frn", "frn"), ("resnetv2_50d_evos", "evonorm_s0")])
def test_a_norm_that_is_its_own_activation_replaces_the_activation_after_it(name: str, kind: str) -> None:
    _, network = archgen.compile_spec(name, input_size=SIZE)
    norms = [x for x in network.layers() if isinstance(x, NormAct)]
    assert norms and {x.fn for x in norms} == {kind} and network.stats == 0
    acts = [x for x in network.layers() if isinstance(x, Act)]
    assert acts and {x.fn for x in acts} == {"identity"}  # each follows a norm, which applies the nonlinearity
    reference = timm.create_model(name)
    theirs = {n for n, m in reference.named_modules() if type(m).__name__ in ("FilterResponseNormTlu2d", "EvoNorm2dS0")}
    assert {x.name for x in norms} == theirs
    rows = {r.name: r.op for r in layer_rows(network)}
    assert rows["norm"] == ("FilterResponseNorm+TLU" if kind == "frn" else "EvoNormS0 32")


def test_a_norm_that_is_its_own_activation_is_refused_where_an_activation_does_not_follow_each_norm(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "frn50.yaml"
    spec.write_text("extends: archgen:resnet50\nnorm:\n  type: frn\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert f"{spec}:3:" in result.output and "norm.type" in result.output
    assert "not pre-activation" in result.output and "Traceback" not in result.output
    spec.write_text("extends: archgen:resnetv2_50d_evos\nnorm: {type: evonorm_s0, groups: 48}\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert "norm.groups" in result.output and "48 groups do not divide" in result.output
    with pytest.raises(SpecError):
        archgen.compile_spec("resnet18", ["norm=evonorm_s0"])
    with pytest.raises(OptionError, match="frn norm"):
        archgen.build("resnetv2_50d_frn", fuse=True, input_size=SIZE)


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnetv2_50x1_bit", "resnetv2_50d_frn", "resnetv2_50d_evos"])
def test_a_timm_checkpoint_ports_to_keras_and_compare_agrees(name: str, tmp_path: Path) -> None:
    """StdConv2D, FilterResponseNorm and EvoNormS0 in Keras, and the 1x1-conv classifier's weight reshaped
    to a Dense kernel."""
    reference = timm.create_model(name)
    randomize_(reference, (3, SIZE, SIZE), seed=0).eval()
    assert_ports_to_keras(reference, name, SIZE, tmp_path)
