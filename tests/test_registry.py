"""The backend protocol's lookups: which backend a live model belongs to, which writes an export format,
and a backend's export and bench modules, all found through what each backend package declares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import archgen
from archgen import registry
from archgen.errors import OptionError

pytestmark = pytest.mark.torch


def test_a_model_says_which_backend_built_it() -> None:
    model = archgen.build("resnet18", input_size=32)
    assert model.archgen_backend == "torch" and registry.backend_of(model) == "torch"
    fused = archgen.build("resnet18", input_size=32, fuse=True)
    assert registry.backend_of(fused) == "torch"


def test_a_model_archgen_did_not_build_is_found_by_its_framework_class() -> None:
    assert registry.backend_of(torchvision.models.resnet18()) == "torch"
    assert registry.backend_of(torch.nn.Linear(2, 2)) == "torch"
    with pytest.raises(TypeError, match="not a model of a known backend: dict"):
        registry.backend_of({})


def test_each_export_format_has_the_backend_that_declares_it() -> None:
    assert registry.exporters() == {
        "onnx": "torch",
        "torchscript": "torch",
        "exported-program": "torch",
        "saved_model": "keras",
        "litert": "keras",
    }
    from archgen.runtime.export import FORMATS

    assert set(FORMATS) == set(registry.exporters())  # every format has its file rules


def test_a_backends_sides_are_its_declared_modules() -> None:
    assert registry.side("torch", "bench").__name__ == "archgen.backends.torch.bench"
    assert registry.side("keras", "export").__name__ == "archgen.backends.keras.export"
    with pytest.raises(OptionError, match=r"^the torch backend has no train; backends with one: none$"):
        registry.side("torch", "train")


def test_a_weights_file_belongs_to_the_backend_its_name_says() -> None:
    """port and --weights find a file's backend by its name (each package's WEIGHTS.suffixes)."""
    owners = {name: registry.weights_owner(Path(name)) for name in ("r.pth", "r.bin", "r.safetensors", "r.weights.h5")}
    assert owners == {"r.pth": "torch", "r.bin": "torch", "r.safetensors": "torch", "r.weights.h5": "keras"}
    assert registry.weights_owner(Path("r.h5")) is None and registry.weights_owner(Path("r.onnx")) is None
    assert registry.weighing() == ["keras", "torch"]
