"""The zoo: every model of the reference registries is reproduced by a spec of its name, or waits with
its reason (benchmarks/zoo.py, which writes docs/zoo.md).

The registries are read from timm and torchvision here, so a model either library adds fails
``test_every_registry_model_is_reproduced_or_pending`` until it is. Every reproduced model is checked
cheaply against a reference built on the meta device (no memory, no init): equal parameter and
norm-statistic counts, and the same state_dict names and shapes, which is what a strict load checks.
Each distinct design (``helpers.design_of``: specs that differ only in depths and widths share one)
is checked deeply on its smallest spec: a randomised reference's state_dict loads strictly and both
give the same logits.
"""

from __future__ import annotations

import pytest
import torch
import torchvision  # noqa: F401  (before anything imports tensorflow: see conftest.py)
from archgen.backends.torch.randomize import randomize_
from helpers import ROOT, TorchRef, assert_same_outputs, design_specs, import_file, spec_path

import archgen
from archgen.runtime.weights import expected_tensors, optional_keys

pytestmark = [pytest.mark.torch]

ZOO = import_file(ROOT / "benchmarks" / "zoo.py", "archgen_benchmarks_zoo")
MODELS: dict[str, list[str]] = ZOO.registry()
SHIPPED = ZOO.shipped()
REPRODUCED = [name for name in MODELS if name in SHIPPED]
SIZE = 32  # the deep check's input: small, and every stage still sees at least 1x1


def test_every_registry_model_is_reproduced_or_pending() -> None:
    unlisted = [n for n in MODELS if n not in ZOO.EXCLUDED and n not in SHIPPED and ZOO.pending_reason(n) is None]
    assert unlisted == [], "registry models with neither a spec nor a reason in benchmarks/zoo.py's PENDING"
    stale = [n for n in MODELS if n in SHIPPED and (ZOO.pending_reason(n) or n in ZOO.EXCLUDED)]
    assert stale == [], "shipped models still listed as pending or excluded"
    assert len(REPRODUCED) >= 98  # as docs/zoo.md counts them; only ever grows


@pytest.mark.parametrize("name", list(ZOO.CIFAR))
def test_the_cifar_resnets_have_their_published_counts(name: str) -> None:
    """He et al. 2015, Table 6: 0.27 M ... 19.4 M, as printed there (to as many digits)."""
    _, network = archgen.compile_spec(spec_path(name))
    published = ZOO.CIFAR[name]
    digits = len(published.split(".")[1])
    assert f"{network.params / 1e6:.{digits}f}" == published
    assert network.input_shape == (3, 32, 32) and network.output_shape == (10,)
    assert not [x for x in network.layers() if x.name.endswith("downsample.0") and x.params]  # option A


def test_docs_zoo_md_is_current() -> None:
    assert ZOO.render(MODELS) == (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8"), (
        "docs/zoo.md is stale: run python benchmarks/zoo.py"
    )


@pytest.mark.parametrize(("library", "name"), [(lib, n) for n in REPRODUCED for lib in MODELS[n]], ids=lambda v: str(v))
def test_a_zoo_spec_has_its_references_counts_and_state_dict(library: str, name: str) -> None:
    with torch.device("meta"):
        reference = TorchRef(library, name, name).build()
    _, network = archgen.compile_spec(spec_path(name))
    params = sum(p.numel() for p in reference.parameters() if p.requires_grad)
    stats = sum(b.numel() for key, b in reference.state_dict().items() if key.endswith(("running_mean", "running_var")))
    assert (network.params, network.stats) == (params, stats)
    have = {key: tuple(t.shape) for key, t in reference.state_dict().items()}
    want = {key: shape for key, (_, _, shape) in expected_tensors(network).items()}
    want |= {key: () for key in optional_keys(network)}
    assert have == want


@pytest.mark.slow
@pytest.mark.parametrize("name", design_specs(REPRODUCED))
def test_each_zoo_design_loads_strictly_and_computes_the_same(name: str, device: str) -> None:
    reference = TorchRef(MODELS[name][0], name, name).build()
    randomize_(reference, (3, SIZE, SIZE), seed=1)
    ours = archgen.build(spec_path(name), input_size=SIZE)
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert_same_outputs(reference, ours, device, seed=2, size=SIZE)
