"""Contracts every shipped spec keeps, whatever layers it uses: PyTorch's build initialises every tensor
(none is left as torch.empty made it), and the equivalence tests' randomiser changes every tensor (none
keeps its init, which would hide an error in it from every 'all weights random' comparison)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from archgen.backends.torch.randomize import randomize_
from torch import nn

import archgen

SPECS = archgen.list_models()
SIZE = 32  # shapes do not change which tensors exist; a small input keeps the calibration passes fast


@contextmanager
def poisoned_empty() -> Iterator[None]:
    """torch.empty fills floats with NaN while deterministic algorithms are on: a tensor nobody sets stays NaN."""
    was = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
        torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]


def uninitialised(model: nn.Module) -> list[str]:
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and bool(torch.isnan(v).any())]


def test_poisoned_empty_finds_a_tensor_nobody_set() -> None:
    with poisoned_empty():
        layer = nn.Linear(4, 4)
        layer.extra = nn.Parameter(torch.empty(3))
    assert uninitialised(layer) == ["extra"]


@pytest.mark.parametrize("spec", SPECS)
def test_the_build_initialises_every_tensor(spec: str) -> None:
    with poisoned_empty():
        model = archgen.build(spec, input_size=SIZE)
    assert uninitialised(model) == []


@pytest.mark.parametrize("spec", SPECS)
def test_the_randomiser_changes_every_tensor(spec: str) -> None:
    torch.manual_seed(0)
    _, network = archgen.compile_spec(spec, input_size=SIZE)
    model = archgen.build_network(network)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.split(".")[-1] != "num_batches_tracked"}
    randomize_(model, network.input_shape, seed=1, batches=1, batch_size=2)
    after = model.state_dict()
    assert [k for k, v in before.items() if torch.equal(v, after[k])] == []


def test_the_randomiser_refuses_a_weighted_module_it_does_not_know() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(4))
    with pytest.raises(TypeError, match=r"1 \(PReLU\) has weights it cannot randomise"):
        randomize_(model, (3, 8, 8))
