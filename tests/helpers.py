"""What many test files share: the shipped specs, running the CLI in-process and in a fresh interpreter,
hiding frameworks, and the reference models the specs reproduce.

The one module tests import helpers from (no test imports another test file or conftest.py). A plain
module: no fixtures, and no framework imported at module level (the reference builders import their
library when called), so a test that imports it still runs where torch, tensorflow and keras cannot
be imported.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from archgen.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "specs"
SPEC_FILES = sorted(SPEC_DIR.glob("*.yaml"))
SPEC_NAMES = [p.stem for p in SPEC_FILES]


# Expensive variants (every spec where CI runs a representative set): ARCHGEN_EXPENSIVE=1 (README, "Tests").
EXPENSIVE = os.environ.get("ARCHGEN_EXPENSIVE") == "1"
# The two deepest specs are ResNet-RS-270 deepened (tests/test_diff.py asserts that only their depths and
# input size differ from it).
DEEPENED = {"resnetrs350": "resnetrs270", "resnetrs420": "resnetrs270"}


def design_of(network: Any) -> str:
    """What makes two specs the same design: the resolved spec without its name, texts, init (tests
    randomise the weights), input size, stage depths and every width (channel counts, which the cheap
    tests check for every spec), and with rates reduced to whether they are there; a grouped conv stays
    a grouped conv. Specs of one design run the same code with other numbers."""
    import json

    resolved = json.loads(json.dumps(network.resolved))

    def block(b: dict[str, Any]) -> dict[str, Any]:
        b = {k: v for k, v in b.items() if k not in ("base_width", "width_factor")}
        return b | {"groups": min(b.get("groups", 1), 2)}

    for key in ("name", "description", "extends", "tweaks", "init"):
        resolved.pop(key, None)
    resolved["block"] = block(resolved["block"])
    # A stage's stride as it is taken: left out, 1 for the first stage and 2 after (a preset writes them).
    resolved["stages"] = [
        {"stride": 1 if s["stride"] is None and i == 0 else s["stride"] or 2, "block": block(s["block"])}
        for i, s in enumerate(resolved["stages"])
    ]
    if "widths" in resolved["stem"]:
        resolved["stem"]["widths"] = len(resolved["stem"]["widths"])
    resolved["stem"].pop("width", None)
    resolved["input"].pop("size", None)
    resolved.pop("width_multiplier", None)  # scales every width (BiT's x1-x4)
    for part, rate in (("head", "dropout"), ("drop_path", "rate")):  # a rate is a number, its presence a design
        if rate in (resolved.get(part) or {}):
            resolved[part][rate] = resolved[part][rate] > 0
    return json.dumps(resolved, sort_keys=True)


@functools.cache
def _network(name: str) -> Any:
    """A shipped spec's network, compiled once per process (the design lists are taken at collection)."""
    import archgen

    return archgen.compile_spec(SPEC_DIR / f"{name}.yaml")[1]


def design_specs(names: list[str]) -> list[str]:
    """The smallest spec (fewest parameters, two or more blocks a stage where one has) of each design among
    ``names``."""
    best: dict[str, tuple[bool, int, str]] = {}
    for name in names:
        network = _network(name)
        key = design_of(network)
        # a stage of one block runs no identity-shortcut block: a spec with two or more per stage first
        rank = (min(len(s.blocks) for s in network.stages) < 2, network.params, name)
        if key not in best or rank < best[key]:
            best[key] = rank
    return sorted(name for *_, name in best.values())


# The tests that build and run a model of every spec (emitted files, Keras builds, the two backends'
# function, the model API) run one spec of each design (its smallest), every spec with
# ARCHGEN_EXPENSIVE=1; the cheap ones (counts, names and shapes against the references, schema,
# diagrams) run every spec in every run.
DESIGN_SPECS = design_specs(SPEC_NAMES)
FUNCTION_SPECS = SPEC_NAMES if EXPENSIVE else DESIGN_SPECS


def spec_path(name: str) -> Path:
    """The file of a spec in the repository's specs/."""
    return SPEC_DIR / f"{name}.yaml"


def import_file(path: Path, module_name: str) -> Any:
    """Import a Python file (an emitted model file) as the module ``module_name``, registered in
    sys.modules as an ordinary import would be (pickling and Keras' registry find it by that name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


# -- the command line ---------------------------------------------------------------------------------------


def invoke(args: Iterable[object], code: int = 0, *, catch_exceptions: bool = True) -> Result:
    """Run the CLI in-process, assert its exit code, and show the output when it differs.

    ``catch_exceptions=False``: an exception escaping the command propagates (with its traceback) instead
    of becoming exit code 1."""
    result = CliRunner(catch_exceptions=catch_exceptions).invoke(main, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


# -- hiding frameworks ---------------------------------------------------------------------------------------


def hide_modules(folder: Path, names: Iterable[str]) -> Path:
    """A folder of stub packages that fail to import as if the modules were not installed; put it first on
    PYTHONPATH and ``import torch`` raises ModuleNotFoundError(name='torch') as on a machine without it."""
    for name in names:
        package = folder / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}' (hidden by the test)\", name={name!r})\n"
        )
    return folder


def run_archgen(
    args: Iterable[object],
    *,
    hidden: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    data_limit: int | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m archgen.cli ARGS`` in a fresh interpreter: the honest view of exit code, stdout and stderr.

    ``hidden``: a folder from ``hide_modules``; ``data_limit``: bytes of data segment (RLIMIT_DATA) the
    process may use, to make a large allocation fail."""
    full_env = {**os.environ, **(env or {})}
    if hidden is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hidden), str(ROOT)) if p)

    def limit() -> None:
        if data_limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))

    return subprocess.run(
        [sys.executable, "-m", "archgen.cli", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if data_limit is not None else None,
    )


# -- reference models -----------------------------------------------------------------------------------------
# Which reference model each spec reproduces, and how to build it. Every constructor builds the reference
# library's own model with random init (no download). Libraries are imported inside the constructors so
# that importing this module (and collecting the tests) imports no framework.


@dataclass(frozen=True)
class TorchRef:
    """A PyTorch reference: ``library`` builds model ``name``; spec ``spec`` should equal it."""

    library: str  # torchvision | timm | fastai
    name: str
    spec: str

    @property
    def id(self) -> str:
        return f"{self.library}.{self.name}-vs-{self.spec}"

    @property
    def same_keys(self) -> bool:
        """Whether its state_dict uses torchvision/timm module names (fastai's does not)."""
        return self.library != "fastai"

    def build(self) -> Any:
        if self.library == "torchvision":
            import torchvision.models

            return getattr(torchvision.models, self.name)(weights=None)
        if self.library == "timm":
            import timm

            return timm.create_model(self.name, pretrained=False)
        if self.library == "fastai":
            from fastai.vision.models import xresnet

            return getattr(xresnet, self.name)()
        raise ValueError(f"unknown reference library {self.library!r}")


_TORCHVISION = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]
_TIMM_SAME_NAME = [
    "resnet50c",
    "resnet50d",
    "resnet101d",
    "seresnet50",
    "ecaresnet50d",
    "resnext50_32x4d",
    "wide_resnet50_2",
    *(f"resnetrs{d}" for d in (50, 101, 152, 200, 270, 350, 420)),
]
_XRESNET_DEPTHS = (18, 34, 50, 101, 152)

TORCH_REFS: list[TorchRef] = [
    *(TorchRef("torchvision", n, n) for n in _TORCHVISION),
    *(TorchRef("timm", n, n) for n in _TIMM_SAME_NAME),
    # timm's ResNet-D family has fastai's xresnet layout (deep stem, avg-pool shortcut).
    *(TorchRef("timm", f"resnet{d}d", f"xresnet{d}") for d in _XRESNET_DEPTHS),
    *(TorchRef("fastai", f"xresnet{d}", f"xresnet{d}") for d in _XRESNET_DEPTHS),
]

# keras.applications (Keras 3) class -> spec.
KERAS_APPS: list[tuple[str, str]] = [
    ("ResNet50", "keras_resnet50"),
    ("ResNet101", "keras_resnet101"),
    ("ResNet152", "keras_resnet152"),
    ("ResNet50V2", "resnet50v2"),
    ("ResNet101V2", "resnet101v2"),
    ("ResNet152V2", "resnet152v2"),
]

# tf_keras.applications class -> spec.
TF_KERAS_APPS: list[tuple[str, str]] = [(f"ResNetRS{d}", f"resnetrs{d}") for d in (50, 101, 152, 200, 270, 350, 420)]

# torchvision builders whose weight enums carry the published GFLOPs ("_ops") and parameter count.
TORCHVISION_FLOPS: list[str] = _TORCHVISION


def random_resnet18_checkpoint(folder: Path, size: int, classes: int = 10) -> tuple[Any, Path]:
    """torchvision's resnet18 (``classes`` outputs) with every weight random (norm scales small, as
    archgen compare draws them), in eval mode, and its state_dict saved in ``folder``: the reference
    an exported or ported file is checked against."""
    import torch
    import torchvision
    from archgen.backends.torch.randomize import randomize_

    model = torchvision.models.resnet18(num_classes=classes)
    randomize_(model, (3, size, size), seed=5, batches=2, batch_size=8, gamma=(0.05, 0.15)).eval()
    path = folder / f"resnet18_{classes}.pth"
    torch.save(model.state_dict(), path)
    return model, path


@contextlib.contextmanager
def exact_math(device: str) -> Iterator[None]:
    """Full float32 on CUDA (no TF32), so a tight tolerance means something there too."""
    import torch

    if device != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def assert_same_outputs(ref: Any, ours: Any, device: str, seed: int, size: int, batch: int = 2) -> None:
    """Run both (eval, same random batch) on ``device``; outputs must agree and carry signal."""
    import torch

    ref.to(device).eval()
    ours.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 3, size, size), generator=gen).to(device)
    with torch.no_grad(), exact_math(device):
        expected = ref(x)
        got = ours(x)
    assert got.shape == expected.shape
    assert torch.isfinite(expected).all()
    # Not degenerate: the logits vary within a sample and between the two samples.
    assert expected.std().item() > 1e-3
    assert (expected[0] - expected[1]).abs().max().item() > 1e-3
    scale = expected.abs().max().item()
    diff = (got - expected).abs().max().item()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * scale), (
        f"max |diff| {diff:.3g} (logit scale {scale:.3g})"
    )


def assert_ports_to_keras(reference: Any, spec: str, size: int, folder: Path) -> Path:
    """A randomised reference's checkpoint, ported to Keras by ``archgen port`` (which verifies it), loads into
    archgen's Keras model of ``spec`` and gives the reference's logits; ``archgen compare --weights`` agrees.
    Returns the checkpoint."""
    import numpy as np
    import torch
    from archgen.backends.keras import BACKEND as KERAS

    import archgen

    ckpt, out = folder / f"{spec}.pth", folder / f"{spec}.weights.h5"
    torch.save(reference.state_dict(), ckpt)
    text = invoke(["port", ckpt, "--spec", spec, "--to", "keras", "-o", out]).output
    assert "verified: worst relative difference" in text
    _, network = archgen.compile_spec(spec_path(spec), input_size=size)
    model = KERAS.build(network)
    model.load_weights(str(out))
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype("float32")
    with torch.no_grad():
        want = reference.eval()(torch.from_numpy(x)).numpy()
    got = np.asarray(model(x.transpose(0, 2, 3, 1), training=False))
    assert float(np.abs(got - want).max() / max(1.0, np.abs(want).max())) <= 1e-4
    assert "ok: worst relative difference" in invoke(["compare", spec, "--input-size", size, "--weights", ckpt]).output
    return ckpt
