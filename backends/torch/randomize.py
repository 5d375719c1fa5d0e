"""Random weights for equivalence checks: every weight random, norm statistics calibrated.

Kept free of archgen imports (torch only), so a test can load it beside an emitted
file in an interpreter where archgen cannot be imported.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The parameters of the norms that are their own activation, by name, as timm's and archgen's name them:
# FilterResponseNormTlu2d (weight, bias, tau) and EvoNorm2dS0 (weight, bias, v).
NORM_ACTS = ({"weight", "bias", "tau"}, {"weight", "bias", "v"})


def _fill(param: torch.Tensor, gen: torch.Generator, kind: str, a: float, b: float) -> None:
    """Sample in place from the CPU generator (copied over on other devices), so every device gets the same numbers."""
    target = param.data if param.device.type == "cpu" else torch.empty(param.shape, dtype=param.dtype)
    getattr(target, f"{kind}_")(a, b, generator=gen)
    if target is not param.data:
        param.data.copy_(target)


def randomize_(
    model: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    batches: int = 2,
    batch_size: int = 4,
    gamma: tuple[float, float] = (0.5, 1.5),
) -> nn.Module:
    """Make every weight of a torch model random, norm statistics included.

    Convs and linears get He-scaled normal weights and small random biases,
    norm layers random scales and shifts (so no residual branch is zeroed, as
    a fresh timm model's is), and the running statistics are calibrated on
    random input (norm layers alone in train mode, cumulative average), which
    keeps deep nets' activations near unit scale. ``gamma`` bounds the random
    norm scales: smaller scales keep very deep random nets well-conditioned.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():  # filled in place, on the CPU generator, device-independent
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                _fill(m.weight, gen, "normal", 0.0, math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    _fill(m.bias, gen, "normal", 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                _fill(m.weight, gen, "uniform", *gamma)
                _fill(m.bias, gen, "normal", 0.0, 0.1)
            elif set(own := dict(m.named_parameters(recurse=False))) in NORM_ACTS:
                # a norm that is its own activation (filter response norm's tau, EvoNorm-S0's v)
                _fill(own["weight"], gen, "uniform", *gamma)
                _fill(own["bias"], gen, "normal", 0.0, 0.1)
                if "tau" in own:
                    _fill(own["tau"], gen, "normal", 0.0, 0.1)
                else:
                    _fill(own["v"], gen, "uniform", *gamma)
            elif any(True for _ in m.parameters(recurse=False)):
                # A weighted module this function does not know would keep its init and make an
                # "every weight random" comparison blind to it: refuse rather than pass silently.
                where = f"{name or 'the model'} ({type(m).__name__})"
                raise TypeError(f"randomize_: {where} has weights it cannot randomise")
        model.eval()
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        device = next(model.parameters()).device
        for _ in range(batches):
            model(torch.randn((batch_size, *input_shape), generator=gen).to(device))
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        model.eval()
    return model
