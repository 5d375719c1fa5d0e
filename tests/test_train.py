"""The fastai-book Imagenette models train: a few steps on a fixed batch lower the loss."""

from __future__ import annotations

import pytest
import torch
from helpers import spec_path

import archgen

pytestmark = [pytest.mark.torch]


@pytest.mark.parametrize("name", ["imagenette_cnn", "imagenette_resnet18", "imagenette_resnet50"])
def test_loss_decreases(name: str, device: str) -> None:
    torch.manual_seed(0)
    model = archgen.build(spec_path(name), input_size=32, device=device).train()
    x = torch.randn(8, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (8,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model(x).shape == (8, 10)
    assert losses[-1] < 0.7 * losses[0], losses
