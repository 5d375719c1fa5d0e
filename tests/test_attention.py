"""Channel attention other than squeeze-excitation: ECA (ECA-Net; timm's ``EcaModule``, the ``ecaresnet*``
models) through the whole pipeline, held to timm.

The registry tests (test_references: counts, strict load, equal outputs; test_keras: the Keras model's
counts, shapes and function; test_emit: the emitted file equals the live model) cover the shipped
``ecaresnet50d``; here are its kernel rule, its checkpoint in Keras (archgen port) and archgen compare,
the spelling in a spec, and the reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from archgen.backends.torch.randomize import randomize_
from helpers import assert_ports_to_keras
from timm.layers import EcaModule

import archgen
from archgen.ir import EcaDesign
from archgen.tools.diff import diff
from archgen.tools.graph import graph_dot
from archgen.tools.summary import layer_rows

pytestmark = [pytest.mark.torch, pytest.mark.keras]

SIZE = 64


def test_the_adaptive_kernel_is_timms() -> None:
    design = EcaDesign(kernel=None, gamma=2, beta=1)
    for channels in [*range(1, 1025), 2047, 2048, 2049, 4096, 8191, 8192, 65535, 65536]:
        assert design.kernel_for(channels) == EcaModule(channels=channels).conv.kernel_size[0], channels
        # the emitted files' rule, as source, gives the same number
        assert eval(design.kernel_rule("channels"), {"channels": channels}) == design.kernel_for(channels)


@pytest.mark.parametrize(("gamma", "beta"), [(1, 0), (3, 2), (2, 3)])
def test_the_kernel_rule_follows_gamma_and_beta_as_timm(gamma: int, beta: int) -> None:
    design = EcaDesign(kernel=None, gamma=gamma, beta=beta)
    for channels in (16, 64, 200, 256, 1000, 2048):
        timms = EcaModule(channels=channels, gamma=gamma, beta=beta).conv.kernel_size[0]
        assert design.kernel_for(channels) == timms, channels


def test_ecaresnet50d_is_timms_layer_by_layer() -> None:
    _, network = archgen.compile_spec("ecaresnet50d")
    ref = timm.create_model("ecaresnet50d", pretrained=False)
    assert network.params == sum(p.numel() for p in ref.parameters()) == 25_576_350
    kernels = {n: m.kernel_size[0] for n, m in ref.named_modules() if isinstance(m, torch.nn.Conv1d)}
    ours = {x.name: x.kernel for x in network.layers() if x.kind == "conv" and x.name.endswith(".se.conv")}
    assert ours == kernels and set(kernels.values()) == {5, 7}  # 256-1024 channels: 5, 2048: 7


def test_a_fixed_kernel_and_the_bare_type() -> None:
    _, bare = archgen.compile_spec("resnet50", ["block.attn=eca"])
    _, fixed = archgen.compile_spec("resnet50", ["block.attn={type: eca, kernel: 3}"])
    assert bare.layer("layer4.0.se.conv").kernel == 7 and fixed.layer("layer4.0.se.conv").kernel == 3
    model = archgen.build("resnet50", overrides=["block.attn={type: eca, kernel: 3}"], input_size=32)
    assert model.layer4[0].se.conv.weight.shape == (1, 1, 3)
    with pytest.raises(archgen.SpecError) as err:
        archgen.compile_spec("resnet50", ["block.attn={type: eca, kernel: 4}"])
    assert err.value.problems[0].field == "block.attn.kernel" and "odd" in err.value.problems[0].message


def test_the_reports_name_eca() -> None:
    _, network = archgen.compile_spec("ecaresnet50d", input_size=SIZE)
    rows = {r.name: r.op for r in layer_rows(network)}
    assert rows["layer1.0.se.conv"] == "ECA: Conv1d 5"
    assert rows["layer1.0.se.gate"] == "ECA gate: Sigmoid"
    assert rows["layer1.0.se.scale"] == "ECA: x * gate"
    dot = graph_dot(network, "block")
    assert "efficient channel attention" in dot and "1-D conv 5 across 256 channels" in dot
    _, plain = archgen.compile_spec("resnet50d", input_size=SIZE)
    _, se = archgen.compile_spec("resnet50d", ["block.se={ratio: 0.25}"], input_size=SIZE)
    _, fixed = archgen.compile_spec("ecaresnet50d", ["block.attn={type: eca, kernel: 3}"], input_size=SIZE)
    assert [c.text() for c in diff(plain, network).changes] == ["ECA added to every block (kernel adaptive)"]
    assert [c.text() for c in diff(se, network).changes] == [
        "every stage: attention SE ratio 0.25 -> ECA kernel adaptive"
    ]
    assert [c.text() for c in diff(network, fixed).changes] == ["every stage: ECA kernel adaptive -> 3"]


def test_a_timm_checkpoint_ports_to_keras_and_compare_agrees(tmp_path: Path) -> None:
    ref = timm.create_model("ecaresnet50d", pretrained=False)
    randomize_(ref, (3, SIZE, SIZE), seed=0, batches=2, batch_size=8, gamma=(0.05, 0.15)).eval()
    assert_ports_to_keras(ref, "ecaresnet50d", SIZE, tmp_path)
