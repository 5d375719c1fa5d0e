"""The PyTorch backend: live models are the emitted source, executed.

Rendering the same templates that ``archgen emit`` writes to disk and running
them in memory means live and emitted models share one implementation of
every layer; there is no per-forward interpretation of the IR.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from archgen.emit import load_source, render
from archgen.ir import Network, Shape


class TorchBackend:
    name = "torch"

    def module(self, network: Network) -> types.ModuleType:
        """The generated model module for a network (what ``archgen emit`` writes)."""
        source = render(network, "torch", source=f"{network.name} (live)")
        return load_source(source, f"archgen_live.{network.name}_{network.digest[:12]}")

    def build(self, network: Network, device: str | None = None) -> nn.Module:
        model = self.module(network).build_model()
        model.archgen_network = network  # lets transfer_weights check and map by IR name
        return model.to(device) if device else model

    def get_weights(self, model: nn.Module, network: Network) -> dict[str, dict[str, Any]]:
        """Every weighted IR layer's tensors as numpy arrays in PyTorch's layout (the canonical one)."""
        out: dict[str, dict[str, Any]] = {}
        for layer in network.layers():
            if layer.params or layer.stats:
                module = model.get_submodule(layer.name)
                out[layer.name] = {
                    k: v.detach().cpu().numpy() for k, v in module.state_dict().items() if k != "num_batches_tracked"
                }
        return out

    @torch.no_grad()
    def set_weights(self, model: nn.Module, network: Network, weights: dict[str, dict[str, Any]]) -> None:
        for name, tensors in weights.items():
            module = model.get_submodule(name)
            for key, value in tensors.items():
                target = module.get_buffer(key) if key.startswith("running_") else module.get_parameter(key)
                if tuple(target.shape) != value.shape:
                    raise ValueError(f"{name}.{key}: shape {value.shape} does not fit {tuple(target.shape)}")
                target.copy_(torch.from_numpy(value).to(target.dtype))

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
        """Shapes after the stem, each stage and the head, on a dummy batch of the IR's input shape."""
        shapes: dict[str, Shape] = {}
        points = {stage.name: stage.name for stage in network.stages}
        if network.stem:
            points[network.stem[-1].name.split(".")[0]] = "stem"
        hooks = [
            model.get_submodule(name).register_forward_hook(
                lambda m, i, o, key=key: shapes.__setitem__(key, tuple(o.shape[1:]))
            )
            for name, key in points.items()
        ]
        was_training = model.training
        model.eval()
        try:
            device = device or next(model.parameters()).device
            out = model(torch.randn(2, *network.input_shape, device=device))
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)
        if network.head:
            shapes["head"] = tuple(out.shape[1:])
        shapes["output"] = tuple(out.shape[1:])
        return shapes


BACKEND = TorchBackend()
