"""Fine-tuning options (``freeze``): the frozen stem and first stages take no gradient and keep their norms
in eval mode (mmpretrain's frozen_stages, timm's ``freeze``), and every batch norm's statistics (``norm:
eval``, mmpretrain's norm_eval) or statistics, scale and shift (``norm: frozen``, timm's
``freeze_batch_norm_2d``) stay fixed while the model trains.

One training step of archgen's model is held to timm's model frozen by timm's own functions, in float64:
the same weights and statistics after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from archgen.backends.torch.randomize import randomize_
from helpers import invoke
from timm.utils.model import freeze, freeze_batch_norm_2d

import archgen
from archgen.errors import SpecError

pytestmark = [pytest.mark.torch]

SIZE = 32
STEM = ["conv1", "bn1", "act1", "maxpool"]


def one_step(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """One SGD step on a fixed batch, in training mode; the state after it."""
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model(x).square().mean().backward()
    optimizer.step()
    return model.state_dict()


def twins(fields: list[str]) -> tuple[torch.nn.Module, torch.nn.Module]:
    ours = archgen.build("resnet18", overrides=fields, input_size=SIZE).double()
    reference = timm.create_model("resnet18")
    randomize_(reference, (3, SIZE, SIZE), seed=1)
    ours.load_state_dict(reference.state_dict())
    return ours, reference.double()


@pytest.mark.parametrize(
    ("fields", "frozen_by_timm"),
    [
        (["freeze={stages: 1}"], lambda m: freeze(m, [*STEM, "layer1"])),
        (["freeze={stages: 0}"], lambda m: freeze(m, STEM)),
        (["freeze={norm: frozen}"], freeze_batch_norm_2d),
        (
            ["freeze={stages: 2, norm: frozen}"],
            lambda m: freeze_batch_norm_2d(freeze(m, [*STEM, "layer1", "layer2"]) or m),
        ),
    ],
    ids=["stages-1", "stem", "norm-frozen", "stages-2-norm-frozen"],
)
def test_a_training_step_leaves_what_timms_freeze_leaves(
    fields: list[str], frozen_by_timm: Callable[[torch.nn.Module], torch.nn.Module | None]
) -> None:
    ours, reference = twins(fields)
    reference = frozen_by_timm(reference) or reference
    trainable = [sum(p.numel() for p in m.parameters() if p.requires_grad) for m in (ours, reference)]
    assert trainable[0] == trainable[1] < sum(p.numel() for p in ours.parameters())
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    got, want = one_step(ours), one_step(reference)
    common = [k for k in want if not k.endswith("num_batches_tracked")]
    assert len(common) == len([k for k in got if not k.endswith("num_batches_tracked")])
    for key in common:
        torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-12, msg=key)
    moved = [k for k in common if not torch.equal(got[k], before[k])]
    assert moved and "fc.weight" in moved  # the step did train the rest


def test_norm_eval_keeps_every_statistic_and_learns_scale_and_shift() -> None:
    """mmpretrain's norm_eval: as a timm model whose batch norms are put back in eval mode after train()."""
    ours, reference = twins(["freeze={norm: eval}"])
    assert all(p.requires_grad for p in ours.parameters())
    ours.train()
    norms = [m for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms) and ours.training
    reference.train()
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    got = one_step(ours)
    reference.train = lambda mode=True: reference  # type: ignore[method-assign]  # keep its norms as set
    want = one_step(reference)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-12, msg=key)
    assert torch.equal(got["bn1.running_mean"], before["bn1.running_mean"])
    assert not torch.equal(got["bn1.weight"], before["bn1.weight"])


def test_frozen_modules_stay_in_eval_mode_and_the_model_scripts() -> None:
    model = archgen.build("resnet50d", overrides=["freeze={stages: 2}"], input_size=SIZE)
    model.train()
    frozen = ["conv1", "bn1", "layer1", "layer2"]
    assert all(not m.training for name in frozen for m in model.get_submodule(name).modules())
    assert model.layer3.training and model.layer3[0].bn1.training
    assert not any(p.requires_grad for name in frozen for p in model.get_submodule(name).parameters())
    scripted = torch.jit.script(model.eval())
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def test_what_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "frozen.yaml"
    spec.write_text("extends: archgen:resnet18\nfreeze:\n  stages: 5\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert f"{spec}:3:" in result.output and "freeze.stages" in result.output and "4 stages" in result.output
    spec.write_text("extends: archgen:resnet50_gn\nfreeze: {norm: eval}\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert "freeze.norm" in result.output and "group" in result.output and "Traceback" not in result.output
    with pytest.raises(SpecError):
        archgen.compile_spec("resnet18", ["freeze={norm: sometimes}"])


@pytest.mark.keras
def test_keras_trains_only_what_is_not_frozen() -> None:
    """Not trainable: the frozen stem's and stages' layers (a Keras batch norm then runs in inference
    mode); with norm: eval every batch norm normalises with its running statistics."""
    import keras

    fields = ["freeze={stages: 1, norm: eval}"]
    _, network = archgen.compile_spec("resnet18", fields, input_size=SIZE)
    torch_model = archgen.build("resnet18", overrides=fields, input_size=SIZE)
    model = archgen.build("resnet18", backend="keras", overrides=fields, input_size=SIZE)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == sum(
        p.numel() for p in torch_model.parameters() if p.requires_grad
    )
    before = {w.path: np.array(w) for w in model.weights}
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).standard_normal((4, SIZE, SIZE, 3)).astype("float32")
    model.train_on_batch(x, np.zeros((4, network.classes), "float32"))
    changed = {w.path for w in model.weights if not np.array_equal(np.array(w), before[w.path])}
    assert changed and all(not p.startswith(("conv1/", "bn1/", "layer1_")) for p in changed)
    assert not [p for p in changed if "moving_" in p]  # no batch norm's statistics moved
    assert any(p.startswith("fc/") for p in changed) and any(p.endswith("gamma") for p in changed)
