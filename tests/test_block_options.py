"""Block options timm's ResNet takes beyond the block type: ``reduce_first`` (timm's ``block_reduce_first``)
and a conv shortcut's ``kernel`` (``down_kernel_size``), which senet154 uses, held to timm; and He et al.'s
option C (``shortcut: {always: true}``: a projection on every block), held to torchvision's ResNet-34 given
the projections the paper describes.

test_zoo holds the shipped ``senet154`` to timm's (counts, state_dict, and its design deeply); here are a
smaller network with both options in dilated stages (output_stride), where timm's shortcut conv takes the
block's first dilation, what the spelling refuses, and the reports.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from archgen.backends.torch.randomize import randomize_
from helpers import assert_same_outputs

import archgen
from archgen.runtime.compare import compare_fused
from archgen.tools.diff import diff
from archgen.tools.summary import layer_rows

pytestmark = [pytest.mark.torch]

SIZE = 64
OPTIONS = ["block.reduce_first=2", "block.shortcut={type: conv, kernel: 3}"]


@pytest.mark.parametrize("output_stride", [None, 8, 16])
@pytest.mark.parametrize(
    ("name", "timm_name"), [("seresnext26t_32x4d", "seresnext26t_32x4d"), ("resnet18", "resnet18")]
)
def test_both_options_compute_as_timms(name: str, timm_name: str, output_stride: int | None, device: str) -> None:
    kwargs = {} if output_stride is None else {"output_stride": output_stride}
    # a conv shortcut where seresnext26t has its D shortcut (avg_down): down_kernel_size is the conv's
    reference = timm.create_model(timm_name, block_reduce_first=2, down_kernel_size=3, avg_down=False, **kwargs)
    randomize_(reference, (3, SIZE, SIZE), seed=1)
    overrides = [*OPTIONS, *([] if output_stride is None else [f"output_stride={output_stride}"])]
    ours = archgen.build(name, overrides=overrides, input_size=SIZE)
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert_same_outputs(reference, ours, device, seed=2, size=SIZE)


def test_the_shortcut_kernel_is_used_only_where_the_block_strides_or_dilates() -> None:
    _, plain = archgen.compile_spec("senet154", input_size=SIZE)
    _, dilated = archgen.compile_spec("senet154", ["output_stride=8"], input_size=SIZE)
    assert plain.layer("layer1.0.downsample.0").kernel == 1  # a stride-1 projection (64 -> 256 channels)
    assert (plain.layer("layer2.0.downsample.0").kernel, plain.layer("layer2.0.downsample.0").stride) == (3, 2)
    layer3, layer4 = dilated.layer("layer3.0.downsample.0"), dilated.layer("layer4.0.downsample.0")
    assert (layer3.kernel, layer3.stride, layer3.dilation) == (3, 1, 1)  # the block's first dilation
    assert (layer4.kernel, layer4.stride, layer4.dilation) == (3, 1, 2)
    assert plain.layer("layer1.0.conv1").out_ch == plain.layer("layer1.0.conv2").in_ch == 128  # 256 // 2


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ("block.shortcut={type: conv, kernel: 2}", "block.shortcut.kernel", "odd"),
        ("block.shortcut={type: avgpool, kernel: 3}", "block.shortcut", "conv shortcut"),
        ("block.reduce_first=0", "block.reduce_first", "greater than 0"),
        ("block.shortcut={type: avgpool, always: true}", "block.shortcut", "option C"),
    ],
)
def test_what_the_options_refuse(override: str, field: str, words: str) -> None:
    with pytest.raises(archgen.SpecError) as err:
        archgen.compile_spec("resnet50", [override])
    problem = err.value.problems[0]
    assert problem.field == field and words in problem.message


def test_a_width_reduced_to_nothing_is_refused() -> None:
    with pytest.raises(archgen.SpecError) as err:
        archgen.compile_spec("resnet18", ["block.reduce_first=128"], input_size=SIZE)
    problem = err.value.problems[0]
    assert problem.field == "block.reduce_first" and "0 channels" in problem.message


def test_the_reports_name_both_options() -> None:
    _, senet = archgen.compile_spec("senet154", input_size=224)
    _, base = archgen.compile_spec("seresnext101_64x4d", input_size=224)
    rows = {r.name: r.op for r in layer_rows(senet)}
    assert rows["layer2.0.downsample.0"] == "Conv2d 3x3/2" and rows["layer1.0.downsample.0"] == "Conv2d 1x1"
    changes = [c.text() for c in diff(base, senet).changes]
    assert "every stage: first conv width full -> 1/2" in changes
    assert "every stage: shortcut conv -> conv (3x3 where the block strides)" in changes


def test_the_fused_form_keeps_the_shortcut_kernel() -> None:
    """fuse folds the 3x3 projection's norm into it, a 3x3 conv still (its kernel is the design's)."""
    _, network = archgen.compile_spec("resnet18", OPTIONS, input_size=SIZE)
    result = compare_fused(network, dtype="float64")
    assert result.ok, result.text()
    fused = archgen.build("resnet18", overrides=OPTIONS, fuse=True, input_size=SIZE)
    assert fused.layer2[0].downsample[0].kernel_size == (3, 3) and fused.layer2[0].downsample[0].bias is not None


def test_option_c_projects_on_every_block_as_the_paper_describes(device: str) -> None:
    """He et al. 2015, section 4.1, option C: "all shortcuts are projections". torchvision's ResNet-34 (option
    B) given a 1x1 conv + batch norm on each block that has none, loads archgen's strictly and computes the
    same; fuse folds every projection's norm."""
    reference = torchvision.models.resnet34()
    added = 0
    for stage in (reference.layer1, reference.layer2, reference.layer3, reference.layer4):
        for block in stage:
            if block.downsample is None:
                c = block.conv2.out_channels
                block.downsample = torch.nn.Sequential(torch.nn.Conv2d(c, c, 1, bias=False), torch.nn.BatchNorm2d(c))
                added += 1
    randomize_(reference, (3, SIZE, SIZE), seed=5)
    fields = ["block.shortcut.always=true"]
    _, network = archgen.compile_spec("resnet34", fields, input_size=SIZE)
    assert added == 13 and network.params == sum(p.numel() for p in reference.parameters())
    ours = archgen.build("resnet34", overrides=fields, input_size=SIZE)
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert_same_outputs(reference, ours, device, seed=6, size=SIZE)
    result = compare_fused(network, dtype="float64")
    assert result.ok, result.text()
    _, plain = archgen.compile_spec("resnet34", input_size=SIZE)
    assert "every stage: shortcut conv -> conv (on every block: option C)" in [
        c.text() for c in diff(plain, network).changes
    ]
