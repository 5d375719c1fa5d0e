"""He et al.'s CIFAR-10 ResNets and their option-A shortcut (``shortcut: zero_pad``).

No library registers these networks, so test_zoo holds the six specs to the parameter counts the paper
prints, and here ResNet-20 is held to a model written in this file from the paper's own description
(section 4.2: "the shortcut connections are identity ... with extra zero entries padded for increasing
dimensions", taken at stride 2 by every second pixel): archgen's state_dict loads into it strictly and both
compute the same. The Keras side runs through the design list (test_keras); the spelling's refusal and the
reports are here.
"""

from __future__ import annotations

import pytest
import torch
from archgen.backends.torch.randomize import randomize_
from helpers import assert_same_outputs, spec_path
from torch import nn

import archgen
from archgen.tools.summary import layer_rows

pytestmark = [pytest.mark.torch]


class PaperBlock(nn.Module):
    """Two 3x3 convs with batch norm; the shortcut is identity, subsampled and zero-padded where the shape
    changes (option A)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x
        if self.stride != 1 or self.extra:
            shortcut = nn.functional.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))
        return torch.relu(out + shortcut)


class PaperResNet(nn.Module):
    """Section 4.2: a 3x3 conv of 16 filters, then 6n layers on maps of 32, 16 and 8 pixels with 16, 32 and 64
    filters, global average pooling and a 10-way fully connected layer."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = [PaperBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize(("name", "n"), [("cifar_resnet20", 3), ("cifar_resnet56", 9)])
def test_a_cifar_resnet_is_the_papers(name: str, n: int, device: str) -> None:
    ours = archgen.build(spec_path(name))
    randomize_(ours, (3, 32, 32), seed=0)
    paper = PaperResNet(n)
    paper.load_state_dict(ours.state_dict(), strict=True)
    assert sum(p.numel() for p in paper.parameters()) == sum(p.numel() for p in ours.parameters())
    assert_same_outputs(paper, ours, device, seed=1, size=32)


def test_a_zero_pad_shortcut_cannot_reduce_channels() -> None:
    with pytest.raises(archgen.SpecError) as err:
        archgen.compile_spec("cifar_resnet20", ["stages.2.width=8"])
    problem = err.value.problems[0]
    assert problem.field == "block.shortcut.type" and "cannot reduce 32 channels to 8" in problem.message


def test_the_reports_name_the_option_a_shortcut() -> None:
    _, network = archgen.compile_spec("cifar_resnet20")
    rows = {r.name: (r.op, r.params) for r in layer_rows(network)}
    assert rows["layer2.0.downsample.0"] == ("ZeroPad /2 +16 ch", 0)
    assert network.layer("layer2.0.downsample.0").out_shape == (32, 16, 16)
