"""Blocks and the network, composed of ordinary modules as in torchvision.

Modules are created from the IR layers (so names, shapes and counts are the
IR's by construction); the block classes only say how they are wired. Parts a
block does not have (SE, stochastic depth, a shortcut) are ``nn.Identity``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from archgen.ir import Block, Layer, Network

from .layers import make


class SqueezeExcite(nn.Module):
    """Channel gate from globally pooled features: fc1 -> act -> fc2 -> gate."""

    fc1: nn.Module
    act: nn.Module
    fc2: nn.Module
    gate: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


def assemble(parent: nn.Module, entries: Iterable[tuple[str, nn.Module]]) -> list[str]:
    """Attach modules by dotted path; numeric children form an nn.Sequential
    (gaps filled with Identity, as a stride-1 pool slot is), ``se`` a SqueezeExcite.
    Returns the top-level names in order."""
    groups: dict[str, list[tuple[str, nn.Module]]] = {}
    for path, module in entries:
        head, _, rest = path.partition(".")
        groups.setdefault(head, []).append((rest, module))
    for head, items in groups.items():
        if len(items) == 1 and not items[0][0]:
            parent.add_module(head, items[0][1])
            continue
        if all(rest.split(".")[0].isdigit() for rest, _ in items):
            indexed: dict[int, list[tuple[str, nn.Module]]] = {}
            for rest, module in items:
                index, _, sub = rest.partition(".")
                indexed.setdefault(int(index), []).append((sub, module))
            seq = nn.Sequential()
            for i in range(max(indexed) + 1):
                parts = indexed.get(i, [("", nn.Identity())])
                if len(parts) == 1 and not parts[0][0]:
                    seq.append(parts[0][1])
                else:
                    child = nn.Module()
                    assemble(child, parts)
                    seq.append(child)
            parent.add_module(head, seq)
        else:
            child = SqueezeExcite() if head == "se" else nn.Module()
            assemble(child, items)
            parent.add_module(head, child)
    return list(groups)


class _Residual(nn.Module):
    """Shared construction of a residual block from its IR record."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        self.downsample: nn.Module = nn.Identity()
        self.se: nn.Module = nn.Identity()
        self.drop_path: nn.Module = nn.Identity()
        assemble(self, ((x.local(block.name), make(x)) for x in block.layers))
        # In a pre-activation block a projecting shortcut reads the normalised input.
        self.shortcut_preact = block.preact and any(
            x.op == "conv" and x.local(block.name).startswith("downsample") for x in block.layers
        )


class BasicBlock(_Residual):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.act2(self.drop_path(out) + self.downsample(x))


class Bottleneck(_Residual):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.act3(self.drop_path(out) + self.downsample(x))


class PreActBasicBlock(_Residual):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = self.downsample(pre if self.shortcut_preact else x)
        out = self.conv1(pre)
        out = self.se(self.conv2(self.act2(self.bn2(out))))
        return self.drop_path(out) + shortcut


class PreActBottleneck(_Residual):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = self.downsample(pre if self.shortcut_preact else x)
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        out = self.se(self.conv3(self.act3(self.bn3(out))))
        return self.drop_path(out) + shortcut


class PlainBlock(nn.Module):
    def __init__(self, block: Block) -> None:
        super().__init__()
        assemble(self, ((x.local(block.name), make(x)) for x in block.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))


BLOCKS: dict[tuple[str, bool], type[nn.Module]] = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): Bottleneck,
    ("basic", True): PreActBasicBlock,
    ("bottleneck", True): PreActBottleneck,
    ("plain", False): PlainBlock,
}


class ResNet(nn.Module):
    """stem -> stages (``layer1..``) -> head, each a run of named modules."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.name = network.name
        self.stem_names = assemble(self, ((x.name, make(x)) for x in network.stem))
        self.stage_names = []
        for stage in network.stages:
            blocks = [BLOCKS[(b.kind, b.preact)](b) for b in stage.blocks]
            self.add_module(stage.name, nn.Sequential(*blocks))
            self.stage_names.append(stage.name)
        self.head_names = assemble(self, ((x.name, make(x)) for x in network.head))
        # (channels, total stride, module) after each stage, as timm's feature_info.
        self.feature_info = [
            dict(num_chs=s.out_shape[0], reduction=network.input_shape[1] // s.out_shape[1], module=s.name)
            for s in network.stages
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stem_names:
            x = getattr(self, name)(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        for name in self.head_names:
            x = getattr(self, name)(x)
        return x


def initialise(model: ResNet, network: Network) -> None:
    """Conv init, norm scale 1 / shift 0, and zero-init of each block's last layer."""
    init = network.init
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and init["conv"] != "default":
            fill = nn.init.kaiming_normal_ if init["conv"] == "kaiming_normal" else nn.init.kaiming_uniform_
            fill(module.weight, mode=init["mode"], nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for stage in network.stages:
        for i, block in enumerate(stage.blocks):
            if block.zero_init:
                target = getattr(getattr(model, stage.name)[i], block.zero_init)
                nn.init.zeros_(target.weight)


def layer_modules(model: nn.Module, layers: Iterable[Layer]) -> dict[str, nn.Module]:
    """The module of each IR layer, looked up by its name."""
    return {x.name: model.get_submodule(x.name) for x in layers}
