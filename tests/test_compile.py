"""torch.compile(model, fullgraph=True) with the default backend (inductor) on the PyTorch models, live
and emitted: no graph break (fullgraph=True raises on one), the compiled model's eval outputs equal
the eager model's, and one training step through it gives the eager step's outputs, gradients, norm
statistics and weights (in float64: see check_compiled).

By default a representative set (every block kind, shortcut kind, pre-activation, SE and drop path,
which a test below checks in the IR); ``ARCHGEN_EXPENSIVE=1`` compiles every shipped spec instead.
Inductor on the CPU writes C++ and needs a C++ compiler (g++ or clang++) on the PATH.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Iterator
from typing import get_args

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from archgen.backends.torch.randomize import randomize_
from helpers import ROOT, SPEC_NAMES, spec_path

import archgen
from archgen.ir import BlockKind, ShortcutKind

pytestmark = pytest.mark.torch

SIZE = 32  # the smallest input every shipped spec takes
EXPENSIVE = os.environ.get("ARCHGEN_EXPENSIVE") == "1"

# No shipped spec has an identity shortcut or drop path: resnet18 with both (layer1 keeps its shape,
# so its blocks may add the input as it is) covers them, with an option-A shortcut in layer2 and conv
# shortcuts in layer3..4.
VARIANT = (
    "resnet18",
    ("stages.0.block={shortcut: identity}", "stages.1.block={shortcut: zero_pad}", "drop_path.rate=0.1"),
)
# One block a stage in CI: inductor's cold compile time grows with the blocks (resnetrs50 at full
# depth: 210 s on 2 cores, measured), and every kind is in the first block of its stage already.
SHALLOW = tuple(f"stages.{i}.depth=1" for i in range(4))
# The cheapest specs that, with VARIANT, hold every kind: plain blocks; bottlenecks with pre-activation
# and max-pool shortcuts (and the stride in a stage's last block); bottlenecks with SE and avg-pool
# shortcuts (and a conv in the stem's pool, head dropout).
REPRESENTATIVE = [
    ("imagenette_cnn", ()),
    (VARIANT[0], VARIANT[1] + SHALLOW),
    ("resnet50v2", SHALLOW),
    ("resnetrs50", SHALLOW),
]
CASES = [*((name, ()) for name in SPEC_NAMES), VARIANT] if EXPENSIVE else REPRESENTATIVE
IDS = [name + "".join(f"+{o.partition('=')[0]}" for o in overrides) for name, overrides in CASES]
EMITTED = "imagenette_resnet18"  # the emitted file compiled: the smallest residual one (its build is cheap)


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    """Each model compiles from nothing (no graphs or guards of an earlier one), and random ops (drop
    path, dropout) run as in eager mode, so a compiled training step draws the eager step's masks."""
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        yield
    torch._dynamo.reset()


def test_the_cases_hold_every_kind() -> None:
    """Read from the IR, so that a spec changing (or a new kind) makes this fail instead of the claim
    going stale."""
    blocks, shortcuts, preact, se, drop_path = set(), set(), set(), set(), set()
    for name, overrides in CASES:
        _, network = archgen.compile_spec(spec_path(name), list(overrides), input_size=SIZE)
        for stage in network.stages:
            blocks.add(stage.design.kind)
            if stage.design.shortcut is not None:
                shortcuts.add(stage.design.shortcut.kind)
            preact.add(stage.design.preact)
            se.add(stage.design.attn is not None)
        drop_path.add(network.drop_path.rate > 0)
    assert blocks == set(get_args(BlockKind)), blocks
    assert shortcuts == set(get_args(ShortcutKind)), shortcuts
    assert preact == se == drop_path == {False, True}, (preact, se, drop_path)


@pytest.mark.slow  # cold (nothing in inductor's cache), on 2 cores: 40 s to 3.5 min a spec (measured)
@pytest.mark.parametrize(("name", "overrides"), CASES, ids=IDS)
def test_compiles_without_graph_breaks(name: str, overrides: tuple[str, ...]) -> None:
    _, network = archgen.compile_spec(spec_path(name), list(overrides), input_size=SIZE)
    model = archgen.build(spec_path(name), overrides=list(overrides), input_size=SIZE)
    check_compiled(model, network)


@pytest.mark.slow
def test_an_emitted_model_compiles_without_graph_breaks() -> None:
    module_spec = importlib.util.spec_from_file_location(
        f"emitted_{EMITTED}", ROOT / "generated" / f"{EMITTED}_torch.py"
    )
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    _, network = archgen.compile_spec(spec_path(EMITTED), input_size=SIZE)
    check_compiled(module.build_model(), network)


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| over max |want|: the difference on the values' own scale."""
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


def check_compiled(model: torch.nn.Module, network: archgen.Network) -> None:
    eager = randomize_(model, network.input_shape, seed=0, batches=1, batch_size=2).eval()
    x = torch.randn(2, *network.input_shape, generator=torch.Generator().manual_seed(1))
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, fullgraph=True)  # the default backend: inductor
    with torch.no_grad():
        want = eager(x)
        got = compiled(x)
    assert got.shape == want.shape
    assert relative(got, want) <= 1e-4

    # One training step (norms on batch statistics, drop path and dropout live; SGD with momentum)
    # through each, in float64 on a batch of 8. In float32, rounding alone moves these nets' training
    # gradients by up to 2% of their scale (resnet50v2: eager float32 vs float64 3e-4, compiled float32
    # vs float64 2e-2, measured), which would hide any error of the compiled step. At 32 px the last
    # stages' maps are 1x1: with a batch of 2 their norms see two values a channel and the gradients are
    # chaotic (perturbing the input by 1e-14 moves resnet50v2's by their own scale); with 8, by 1e-11.
    torch._dynamo.reset()  # a new shape for the same code would make dynamo compile a dynamic-shape graph
    eager = eager.double()
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, fullgraph=True)
    x = torch.randn(8, *network.input_shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    outputs = []
    for net, module in ((eager, eager), (compiled, twin)):
        module.train()
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(3)  # the same drop-path and dropout masks (fallback_random)
        out = net(x)
        out.square().mean().backward()
        optimizer.step()
        outputs.append(out.detach())
    worst = {"train output": relative(outputs[1], outputs[0])}
    ours = dict(twin.named_parameters())
    scale = max(p.grad.abs().max() for p in eager.parameters())
    worst |= {f"{n}.grad": ((ours[n].grad - p.grad).abs().max() / scale).item() for n, p in eager.named_parameters()}
    state = twin.state_dict()
    for n, value in eager.state_dict().items():  # weights after the step, norm statistics after the batch
        if value.is_floating_point():
            worst[n] = relative(state[n], value)
        else:
            assert torch.equal(state[n], value), n
    # measured: 7e-13 at worst (resnet50v2, resnetrs50)
    assert max(worst.values()) <= 1e-9, sorted(worst.items(), key=lambda kv: -kv[1])[:5]
