"""The model API timm's own tests assert of every timm model, asserted of every spec's PyTorch model:
feature_info, num_features, forward_head(pre_logits), forward_intermediates, prune_intermediate_layers,
reset_classifier / get_classifier, gradient checkpointing, pickling, TorchScript, torch.fx (and FX
then TorchScript), torch.export; live and emitted."""

from __future__ import annotations

import copy
import importlib.util
import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from archgen.backends.torch.randomize import randomize_
from helpers import FUNCTION_SPECS, ROOT, SPEC_NAMES, TORCH_REFS, spec_path
from timm.models import FeatureListNet

import archgen
from archgen.ir import Classifier

pytestmark = pytest.mark.torch

SIZE = 32  # the smallest input every shipped spec takes: the last maps are 1x1


def live(name: str, **fields: object) -> tuple[torch.nn.Module, archgen.Network]:
    _, network = archgen.compile_spec(spec_path(name), input_size=SIZE)
    model = archgen.build(spec_path(name), input_size=SIZE, **fields)
    return randomize_(model, network.input_shape, seed=0, batches=1, batch_size=2).eval(), network


def emitted(name: str) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"emitted_{name}", ROOT / "generated" / f"{name}_torch.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model().eval()


def batch(network: archgen.Network) -> torch.Tensor:
    return torch.randn(2, *network.input_shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", FUNCTION_SPECS)
def test_the_model_api_of_every_spec(name: str) -> None:
    """One build per spec (the deep ones take seconds): maps, head, pruning, then TorchScript."""
    model, network = live(name)
    check_feature_maps(model, network)
    check_torchscript_fx_and_export(model, network)
    check_head_and_pruning(model, network)  # last: it changes the model


def check_feature_maps(model: torch.nn.Module, network: archgen.Network) -> None:
    x = batch(network)
    info = model.feature_info
    assert info == [{"num_chs": f.num_chs, "reduction": f.reduction, "module": f.module} for f in network.feature_info]
    assert [i["module"] for i in info[-len(network.stages) :]] == [s.name for s in network.stages]
    assert model.num_features == network.stages[-1].out_shape[0] == info[-1]["num_chs"]
    with torch.no_grad():
        features = model.forward_features(x)
        final, maps = model.forward_intermediates(x)
        assert torch.equal(final, features)
        # each map: the channels and the reduction feature_info states (convs and pools round up)
        assert [tuple(m.shape[1:]) for m in maps] == [
            (i["num_chs"], math.ceil(SIZE / i["reduction"]), math.ceil(SIZE / i["reduction"])) for i in info
        ]
        (last,) = model.forward_intermediates(x, indices=1, intermediates_only=True)
        assert torch.equal(last, maps[-1])
        early, (first,) = model.forward_intermediates(x, indices=[0], stop_early=True)
        assert torch.equal(first, maps[0]) and torch.equal(early, maps[0])
        with pytest.raises(ValueError, match="indices"):
            model.forward_intermediates(x, indices=[len(info)])
        # timm's FeatureListNet takes the model as it takes timm's own
        # nested module names (timm's resnetv2: stem.conv, stages.0) are flattened, as timm builds its own
        flat = network.naming.nested
        listed = FeatureListNet(model, out_indices=tuple(range(len(info))), flatten_sequential=flat)(x)
        assert all(torch.equal(a, b) for a, b in zip(listed, maps, strict=True))


def check_head_and_pruning(model: torch.nn.Module, network: archgen.Network) -> None:
    x = batch(network)
    with torch.no_grad():
        logits = model(x)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        classifier = network.head_part(Classifier)
        assert classifier is not None
        fc = classifier.fc.name  # fc, or head.fc (timm's resnetv2 names)
        assert model.get_classifier(name_only=True) == fc and model.get_classifier() is model.get_submodule(fc)
        model.reset_classifier(7)
        assert model(x).shape == (2, 7) and model.num_classes == 7
        model.reset_classifier(0)
        assert torch.equal(model(x), pooled)
        model.reset_classifier(5, "max")
        assert model(x).shape == (2, 5)
        assert logits.shape == (2, network.classes)
        kept = model.prune_intermediate_layers(indices=(1,))
        assert kept == [1]
        (_, (map1,)) = model.forward_intermediates(x, indices=(1,))
        info = model.feature_info[1]
        assert tuple(map1.shape[1:3]) == (info["num_chs"], math.ceil(SIZE / info["reduction"]))
        assert isinstance(model.get_submodule(network.stages[-1].name), torch.nn.Identity)


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50d", "resnet50v2", "resnetv2_18d", "seresnet50", "imagenette_cnn"]
)
def test_gradient_checkpointing_gives_the_same_gradients(name: str) -> None:
    model, network = live(name)
    x = batch(network)

    def grads() -> list[torch.Tensor]:
        model.zero_grad()
        model(x).square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.set_grad_checkpointing()
    checkpointed = grads()
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_feature_info_is_timms() -> None:
    """Every timm twin reports the same maps (channels, reduction, module) as timm's model."""
    for ref in (r for r in TORCH_REFS if r.library == "timm"):
        _, network = archgen.compile_spec(spec_path(ref.spec))
        theirs = [{k: i[k] for k in ("num_chs", "reduction", "module")} for i in ref.build().feature_info]
        ours = [{"num_chs": f.num_chs, "reduction": f.reduction, "module": f.module} for f in network.feature_info]
        assert ours == theirs, ref.id


def test_live_models_copy_and_pickle() -> None:
    model, network = live("resnet50d")
    x = batch(network)
    with torch.no_grad():
        want = model(x)
        assert torch.equal(copy.deepcopy(model)(x), want)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        assert torch.equal(torch.load(buffer, weights_only=False)(x), want)


@pytest.mark.parametrize("kind", ["live", "emitted"])
def test_a_saved_model_loads_in_a_fresh_process(tmp_path: Path, kind: str) -> None:
    """torch.save(model), then torch.load in another interpreter: the live model carries its source;
    an emitted one is imported by its module name, as any model file."""
    if kind == "live":
        model, network = live("resnet18")
    else:
        sys.path.insert(0, str(ROOT / "generated"))
        try:
            import resnet18_torch
        finally:
            sys.path.remove(str(ROOT / "generated"))
        model = resnet18_torch.build_model().eval()
        _, network = archgen.compile_spec(spec_path("resnet18"), input_size=SIZE)
    x = batch(network)
    with torch.no_grad():
        torch.save({"model": model, "x": x, "y": model(x)}, tmp_path / "saved.pt")
    code = (
        "import sys, torch\n"
        "torch.backends.mkldnn.enabled = False  # the same convolution kernels as the tests (conftest.py)\n"
        f"sys.path.insert(0, {str(ROOT / 'generated')!r})\n"
        f"saved = torch.load({str(tmp_path / 'saved.pt')!r}, weights_only=False)\n"
        "with torch.no_grad():\n"
        "    assert torch.equal(saved['model'](saved['x']), saved['y'])\n"
        "print(type(saved['model']).__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    where = result.stdout.strip()
    assert where.startswith("archgen.live.torch_resnet18_") if kind == "live" else where == "resnet18_torch"


@pytest.mark.parametrize("name", ["resnet18", "resnet50v2", "resnetv2_18d", "imagenette_cnn"])
def test_emitted_models_have_the_same_api(name: str) -> None:
    model = emitted(name)
    _, network = archgen.compile_spec(spec_path(name), input_size=SIZE)
    x = batch(network)
    with torch.no_grad():
        _, maps = model.forward_intermediates(x)
        assert len(maps) == len(network.feature_info) and model.num_features == network.num_features
        # forward_features ends as timm's, with a pre-activation network's final norm: the last map with norm=True
        _, normed = model.forward_intermediates(x, norm=True)
        assert torch.equal(normed[-1], model.forward_features(x))


def check_torchscript_fx_and_export(model: torch.nn.Module, network: archgen.Network) -> None:
    """torch.jit.script, torch.fx.symbolic_trace (and the traced graph scripted), torch.export."""
    x = batch(network)
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), want, rtol=1e-5, atol=1e-6)
        traced = torch.fx.symbolic_trace(model)
        assert torch.equal(traced(x), want)
        torch.testing.assert_close(torch.jit.script(traced)(x), want, rtol=1e-5, atol=1e-6)
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), want, rtol=1e-5, atol=1e-6)


def test_list_models() -> None:
    assert archgen.list_models() == sorted(SPEC_NAMES)
    found = archgen.list_models("resnet*")
    assert "resnet50" in found and "resnetrs420" in found and "xresnet50" not in found
    assert found == sorted(found)
    assert archgen.list_models("nothing*") == []
    assert timm.list_models("resnet50d") == ["resnet50d"]  # the convention it follows
