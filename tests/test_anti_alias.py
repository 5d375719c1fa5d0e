"""Anti-aliased downsampling (timm's ``aa_layer``: the ``resnetaa*`` average pools and the ``resnetblur*`` blur
pools) through the whole pipeline, held to timm.

The registry tests (test_zoo: counts, strict load, equal outputs of each design; test_keras and test_emit
through the design list) cover the shipped specs; here are the blur pool itself against timm's
``BlurPool2d`` in both frameworks, the dilated stages timm keeps its ``aa`` in, the spelling in a spec and
what it refuses, a checkpoint loaded through ``--weights`` (a meta-device build: the blur filters, which
no checkpoint holds, are made afterwards), the Keras port, and the reports.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from archgen.backends.keras import BACKEND as KERAS
from archgen.backends.torch.randomize import randomize_
from helpers import assert_ports_to_keras, assert_same_outputs, invoke, spec_path
from timm.layers import BlurPool2d

import archgen
from archgen.tools.diff import diff
from archgen.tools.graph import graph_dot
from archgen.tools.summary import layer_rows

pytestmark = [pytest.mark.torch, pytest.mark.keras]

SIZE = 64


@functools.cache
def _classes() -> tuple[type, type]:
    """The blur-pool classes of a live PyTorch model and a live Keras model (each file defines its own)."""
    _, network = archgen.compile_spec("resnetblur18", input_size=SIZE)
    torch_class = type(archgen.build("resnetblur18", input_size=SIZE).layer2[0].aa)
    keras_class = type(KERAS.build(network).get_layer("layer2_0_aa"))
    assert torch_class.__name__ == "BlurPool2d" and keras_class.__name__ == "BlurPool2D"
    return torch_class, keras_class


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), (3, 1), (4, 2), (5, 2), (5, 1), (7, 3)])
def test_the_blur_pool_is_timms_in_both_frameworks(kernel: int, stride: int, padding: str) -> None:
    torch_class, keras_class = _classes()
    mode = "reflect" if padding == "reflect" else "constant"
    theirs = BlurPool2d(16, filt_size=kernel, stride=stride, pad_mode=mode)
    ours = torch_class(16, stride, kernel, padding)
    x = torch.randn(2, 16, 11, 10, generator=torch.Generator().manual_seed(kernel * 10 + stride))
    want = theirs(x)
    assert torch.equal(ours(x), want)
    assert not ours.state_dict() and not theirs.state_dict()  # the filter is no checkpoint's (non-persistent)
    got = np.asarray(keras_class(stride, kernel, padding)(x.permute(0, 2, 3, 1).numpy())).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("name", ["resnetaa50d", "resnetblur50d"])
def test_a_dilated_stage_keeps_its_anti_aliasing_as_timm(name: str, output_stride: int, device: str) -> None:
    """timm keeps ``aa`` where a dilated stage took the stride away, at stride 1 (a blur still blurs)."""
    reference = timm.create_model(name, output_stride=output_stride)
    randomize_(reference, (3, SIZE, SIZE), seed=1)
    ours = archgen.build(spec_path(name), overrides=[f"output_stride={output_stride}"], input_size=SIZE)
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert type(ours.layer4[0].aa).__name__ == type(reference.layer4[0].aa).__name__
    assert ours.layer4[0].aa.stride == reference.layer4[0].aa.stride == 1
    assert_same_outputs(reference, ours, device, seed=2, size=SIZE)


def test_the_stem_pool_anti_aliased_as_timm() -> None:
    _, avg = archgen.compile_spec("resnetaa50d", input_size=SIZE)
    _, blur = archgen.compile_spec("resnetblur50", input_size=SIZE)
    _, conv = archgen.compile_spec("resnetblur50", ["stem.pool=conv"], input_size=SIZE)
    assert [(x.kind, x.name) for x in avg.stem if x.name.startswith("maxpool")] == [("avg_pool", "maxpool")]
    assert [(x.kind, x.name, getattr(x, "stride", None)) for x in blur.stem if x.name.startswith("maxpool")] == [
        ("max_pool", "maxpool.0", 1),
        ("blur_pool", "maxpool.1", 2),
    ]
    assert [x.kind for x in conv.stem if x.name.startswith("maxpool")] == ["conv", "blur_pool", "norm", "act"]
    assert conv.layer("maxpool.0").stride == 1 and conv.stem[-1].out_shape == (64, SIZE // 4, SIZE // 4)


def test_the_spelling_and_what_is_refused() -> None:
    _, bare = archgen.compile_spec("resnet50", ["block.anti_alias=blur"], input_size=SIZE)
    _, full = archgen.compile_spec("resnet50", ["block.anti_alias={type: blur, kernel: 3}"], input_size=SIZE)
    assert bare.stages[1].design.anti_alias == full.stages[1].design.anti_alias
    refused = {
        "block.anti_alias=bilinear": "block.anti_alias",
        "block.anti_alias={type: blur, kernel: 1}": "block.anti_alias.kernel",
        "stem.pool=none": "stem",  # with resnetaa50d's stem anti_alias: nothing to anti-alias
    }
    for override, field in refused.items():
        with pytest.raises(archgen.SpecError) as err:
            archgen.compile_spec("resnetaa50d", [override])
        assert err.value.problems[0].field.startswith(field), override
    with pytest.raises(archgen.SpecError) as err:
        archgen.compile_spec("resnetaa50d", ["block.preact=true"])
    assert "pre-activation" in err.value.problems[0].message


def test_a_spec_file_that_refuses_names_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "v2_aa.yaml"
    spec.write_text("extends: archgen:resnet50v2\nblock:\n  anti_alias: avg\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert f"{spec}:2:" in result.output and "anti_alias" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("spec", "size", "field", "words"),
    [
        ("resnetaa50", 57, "block.anti_alias", "odd map"),  # timm's model fails at the addition there
        ("resnetblur50", 16, "input.size", "reflects a border of 1 pixel"),
    ],
)
def test_an_input_the_anti_aliasing_cannot_take_is_refused(spec: str, size: int, field: str, words: str) -> None:
    with pytest.raises(archgen.SpecError) as err:
        archgen.compile_spec(spec, input_size=size)
    problem = err.value.problems[0]
    assert problem.field == field and words in problem.message
    archgen.compile_spec(spec, ["block.anti_alias={type: blur, padding: zero}"] if size == 16 else [], input_size=64)


def test_a_checkpoint_loads_through_weights_and_ports_to_keras(tmp_path: Path) -> None:
    """``--weights`` builds on the meta device and loads with assign: the blur filters, which no checkpoint
    holds, are made afterwards where the weights are."""
    reference = timm.create_model("resnetblur18")
    randomize_(reference, (3, SIZE, SIZE), seed=0).eval()
    ckpt = assert_ports_to_keras(reference, "resnetblur18", SIZE, tmp_path)
    ours = archgen.build("resnetblur18", weights=ckpt, input_size=SIZE)
    assert {b.device.type for b in ours.buffers()} == {"cpu"}
    assert_same_outputs(reference, ours, "cpu", seed=3, size=SIZE)


def test_the_reports_name_the_anti_aliasing() -> None:
    _, network = archgen.compile_spec("resnetblur50d", input_size=224)
    rows = {r.name: r.op for r in layer_rows(network)}
    assert rows["maxpool.0"] == "MaxPool2d 3x3/1" and rows["maxpool.1"] == "BlurPool2d 3x3/2"
    assert rows["layer2.0.conv2"] == "Conv2d 3x3" and rows["layer2.0.aa"] == "BlurPool2d 3x3/2"
    assert "stride 2 at layer2.0.aa (blur pool 3x3/2)" in graph_dot(network, "stage")
    _, plain = archgen.compile_spec("resnet50d", input_size=224)
    _, avg = archgen.compile_spec("resnetaa50d", input_size=224)
    assert [c.text() for c in diff(plain, network).changes] == [
        "stem: pool max -> max, anti-aliased by blur pool 3x3/2",
        "every stage: anti-aliasing none -> blur pool 3x3",
    ]
    assert [c.text() for c in diff(avg, network).changes] == [
        "stem: pool avg 2x2 (anti-aliased, instead of the max pool) -> max, anti-aliased by blur pool 3x3/2",
        "every stage: anti-aliasing avg pool -> blur pool 3x3",
    ]
    # timm's figures: the strided 3x3 convs run at stride 1 (resnetblur50d: 5.37 GMACs, resnet50d: 4.35)
    assert network.flops > plain.flops * 1.2
