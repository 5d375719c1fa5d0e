"""Leaf modules: what each IR op means in PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archgen.ir import Layer


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample (identity in eval)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:.4f}"


class ZeroPadMaxPool2d(nn.Module):
    """Max pool over a zero-padded input, as keras.applications pads before pooling."""

    def __init__(self, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.padding,) * 4)
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding} (zeros)"


class GlobalPool(nn.Module):
    """Global average or max pool to a (batch, channels) tensor."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) if self.kind == "avg" else x.amax((2, 3))

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


def activation(fn: str) -> nn.Module:
    inplace = {"inplace": True}
    table = {
        "relu": lambda: nn.ReLU(**inplace),
        "relu6": lambda: nn.ReLU6(**inplace),
        "silu": lambda: nn.SiLU(**inplace),
        "gelu": nn.GELU,
        "leaky_relu": lambda: nn.LeakyReLU(0.01, **inplace),
        "elu": lambda: nn.ELU(**inplace),
        "mish": lambda: nn.Mish(**inplace),
        "hardswish": lambda: nn.Hardswish(**inplace),
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "softmax": lambda: nn.Softmax(dim=1),
    }
    if fn not in table:
        raise ValueError(f"activation '{fn}' has no PyTorch equivalent; expected one of {sorted(table)}")
    return table[fn]()


def make(layer: Layer) -> nn.Module:
    """The module for one IR layer."""
    a = layer.attrs
    match layer.op:
        case "conv":
            return nn.Conv2d(
                a["in_ch"], a["out_ch"], a["kernel"], a["stride"], a["padding"], groups=a["groups"], bias=a["bias"]
            )
        case "norm":
            return nn.BatchNorm2d(a["channels"], eps=a["eps"], momentum=a["momentum"])
        case "act":
            return activation(a["fn"])
        case "max_pool" if a.get("pad_value") == "zero" and a["padding"]:
            return ZeroPadMaxPool2d(a["kernel"], a["stride"], a["padding"])
        case "max_pool":
            return nn.MaxPool2d(a["kernel"], a["stride"], a["padding"])
        case "avg_pool":
            return nn.AvgPool2d(
                a["kernel"],
                a["stride"],
                a["padding"],
                ceil_mode=a["ceil_mode"],
                count_include_pad=a["count_include_pad"],
            )
        case "global_pool":
            return GlobalPool(a["kind"])
        case "linear":
            return nn.Linear(a["in_features"], a["out_features"], bias=a["bias"])
        case "dropout":
            return nn.Dropout(a["rate"])
        case "drop_path":
            return DropPath(a["rate"])
    raise ValueError(f"IR op '{layer.op}' ({layer.name}) has no PyTorch module")
