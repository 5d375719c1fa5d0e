"""The PyTorch backend object the registry hands out."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archgen.ir import Network, Shape

from .model import ResNet, initialise


class TorchBackend:
    name = "torch"

    def build(self, network: Network, device: str | None = None) -> ResNet:
        model = ResNet(network)
        initialise(model, network)
        return model.to(device) if device else model

    def counts(self, model: nn.Module) -> tuple[int, int]:
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        stats = sum(
            m.running_mean.numel() + m.running_var.numel()
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        )
        return params, stats

    @torch.no_grad()
    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        hooks = []
        stem_last = model.stem_names[-1] if model.stem_names else None
        for name in ([stem_last] if stem_last else []) + list(model.stage_names):
            key = "stem" if name == stem_last else name
            module = getattr(model, name)
            hooks.append(
                module.register_forward_hook(lambda m, i, o, key=key: shapes.__setitem__(key, tuple(o.shape[1:])))
            )
        was_training = model.training
        model.eval()
        try:
            x = torch.randn(2, *network.input_shape, device=device or _device_of(model))
            out = model(x)
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)
        if network.head:
            shapes["head"] = tuple(out.shape[1:])
        shapes["output"] = tuple(out.shape[1:])
        return shapes


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


BACKEND = TorchBackend()
