"""Standalone emission: every emitted file imports without archgen, equals the live model,
is lint-clean and deterministic, and generated/ is current."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from archgen.backends.torch import BACKEND
from archgen.backends.torch.randomize import randomize_
from helpers import FUNCTION_SPECS, ROOT, SPEC_NAMES, invoke, spec_path

import archgen
from archgen.codegen.emit import emit

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

GENERATED = ROOT / "generated"

# Run in a fresh interpreter where archgen and its own dependencies cannot be imported.
STANDALONE = """
import importlib.util, json, sys
for name in ("archgen", "backends", "pydantic", "yaml", "jinja2", "click", "rich"):
    sys.modules[name] = None  # any import of these now raises ImportError
import torch
torch.backends.mkldnn.enabled = False
helper = importlib.util.spec_from_file_location("randomize", {randomize!r})  # torch only, no archgen
randomize = importlib.util.module_from_spec(helper)
helper.loader.exec_module(randomize)
randomize_ = randomize.randomize_
spec = importlib.util.spec_from_file_location("emitted", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.build_model()
randomize_(model, (3, 64, 64), seed=1, batches=2, batch_size=8)
x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    out = model(x)
torch.save({{"x": x, "out": out}}, {result!r})
stats = sum(m.running_mean.numel() * 2 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
shapes = {{k: list(v.shape) for k, v in model.state_dict().items()}}
print(json.dumps({{"params": sum(p.numel() for p in model.parameters()), "stats": stats, "shapes": shapes}}))
"""


def run_standalone(path: Path, result: Path) -> dict:
    code = STANDALONE.format(
        randomize=str(ROOT / "backends" / "torch" / "randomize.py"), path=str(path), result=str(result)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", FUNCTION_SPECS)
def test_emitted_file_runs_alone_and_equals_the_live_model(name: str, tmp_path: Path) -> None:
    path = GENERATED / f"{name}_torch.py"
    counts = run_standalone(path, tmp_path / "result.pt")
    _, network = archgen.compile_spec(spec_path(name), input_size=64)
    assert (counts["params"], counts["stats"]) == (network.params, network.stats)
    saved = torch.load(tmp_path / "result.pt")
    live = BACKEND.build(network)
    assert {k: list(v.shape) for k, v in live.state_dict().items()} == counts["shapes"]  # same keys, shapes, order
    randomize_(live, (3, 64, 64), seed=1, batches=2, batch_size=8)  # the same random weights as the emitted model
    with torch.no_grad():
        out = live(saved["x"])
    assert torch.isfinite(out).all() and out.std() > 1e-4  # random weights: no branch hidden behind a zero
    torch.testing.assert_close(out, saved["out"], rtol=0, atol=0)


KERAS_STANDALONE = """
import importlib.util, json, math, sys
for name in ("archgen", "backends", "pydantic", "jinja2", "click"):  # keras itself uses rich
    sys.modules[name] = None  # any import of these now raises ImportError
spec = importlib.util.spec_from_file_location("emitted", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.build_model(num_classes=10)
size = lambda ws: sum(math.prod(int(d) for d in w.shape) for w in ws)
print(json.dumps([size(model.trainable_weights), size(model.non_trainable_weights), model.output.shape[-1]]))
"""


@pytest.mark.parametrize("name", ["resnet50v2", "resnetrs50", "imagenette_cnn"])
def test_emitted_keras_file_runs_alone(name: str) -> None:
    code = KERAS_STANDALONE.format(path=str(GENERATED / f"{name}_keras.py"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    params, stats, classes = json.loads(proc.stdout.strip().splitlines()[-1])
    _, network = archgen.compile_spec(spec_path(name), ["head.classes=10"])
    assert (params, stats, classes) == (network.params, network.stats, 10)


def test_generated_folder_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    # One file per spec and backend with templates (torch, keras).
    assert f"ok: {2 * len(SPEC_NAMES)} emitted files are current" in invoke(["emit", "--all", "--check"]).output


def test_emitted_files_are_lint_clean() -> None:
    from ruff.__main__ import find_ruff_bin

    proc = subprocess.run(
        [find_ruff_bin(), "check", "--no-cache", "--isolated", "--select", "E,F,W,I,B,UP", "--line-length", "100", "."],
        cwd=GENERATED,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_emitted_pytorch_file_reads_model_first() -> None:
    """A reader meets the layers, blocks, stage table, model and build_model before the fast build's
    machinery (the init-skipping TorchFunctionMode, the thread pool that draws conv weights) and
    timm's index rule, which stand apart at the end of the file."""
    for path in sorted(GENERATED.glob("*_torch.py")):
        text = path.read_text()
        model, build = text.index("\nclass ResNet("), text.index("\ndef build_model(")
        machinery = text.index("\n# -- The machinery")
        assert model < build < machinery, path.name
        apart = ["class SkipInit(", "def feature_take_indices(", "def checkpoint_blocks("]
        if "draw_conv_weights(convs)" in text:  # a spec whose convs are not left at PyTorch's default
            apart += ["def draw_conv_weights(", "pool.map("]
        for name in apart:
            assert text.count(name) == 1 and text.index(name) > machinery, (path.name, name)


@pytest.mark.parametrize("name", ["resnet18", "resnet50v2", "seresnet50"])
def test_emission_is_deterministic(name: str) -> None:
    _, network = archgen.compile_spec(spec_path(name))
    first = emit(network, "torch", f"specs/{name}.yaml")
    assert first == emit(network, "torch", f"specs/{name}.yaml")
    assert first == (GENERATED / f"{name}_torch.py").read_text()  # written by another process, earlier


def test_only_what_the_spec_uses_appears() -> None:
    plain = (GENERATED / "resnet50_torch.py").read_text()
    se = (GENERATED / "seresnet50_torch.py").read_text()
    cnn = (GENERATED / "imagenette_cnn_torch.py").read_text()
    assert "SqueezeExcite" not in plain and "class SqueezeExcite" in se
    assert "ZeroPad2d" not in plain and "ZeroPad2d" in (GENERATED / "keras_resnet50_torch.py").read_text()
    assert "DropPath" not in cnn and "class PlainBlock" in cnn and "class Bottleneck" not in cnn
    assert "nn.AvgPool2d(" not in plain and "nn.AvgPool2d(" in (GENERATED / "resnet50d_torch.py").read_text()
    for text in (plain, se, cnn):
        assert text.startswith("# Generated by archgen ")
        assert "# resolved spec sha256: " in text
        assert "import archgen" not in text


def test_header_names_spec_digest_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    target = tmp_path / "m.py"
    invoke(["emit", "specs/resnet18.yaml", "-o", target, "--set", "head.classes=10"])
    text = target.read_text()
    _, network = archgen.compile_spec(spec_path("resnet18"), ["head.classes=10"])
    assert f"# resolved spec sha256: {network.digest}" in text
    assert "from specs/resnet18.yaml" in text and "# --set head.classes=10" in text
    # (the formatter may break the signature after its parenthesis)
    assert re.search(r"def build_model\(\s*num_classes: int = 10,", text)


def test_build_model_arguments(tmp_path: Path) -> None:
    namespace: dict = {}
    exec(compile((GENERATED / "resnet50d_torch.py").read_text(), "resnet50d_torch.py", "exec"), namespace)
    model = namespace["build_model"](num_classes=7, drop_path_rate=0.2)
    assert model.fc.out_features == 7
    assert model.layer4[2].drop_path.rate == pytest.approx(0.2)
    assert model.layer1[0].drop_path.rate == 0.0


def test_invalid_spec_leaves_the_existing_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "model.py"
    target.write_text("# precious\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("block: bottleneck\nstages: 50\nact: swish\n")
    result = invoke(["emit", bad, "-o", target], code=2)
    assert "act" in result.output and "Traceback" not in result.output
    assert target.read_text() == "# precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "model.py"]  # no temporary left


def test_check_names_stale_missing_and_extra_files(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("resnet18", "resnet34"):
        (specs / f"{name}.yaml").write_text(spec_path(name).read_text())
    out = tmp_path / "gen"
    args = ["emit", "--all", "--specs", specs, "--out", out]
    invoke(args)
    invoke([*args, "--check"])
    (out / "resnet18_torch.py").write_text("stale\n")
    (out / "resnet34_torch.py").unlink()
    (out / "orphan_torch.py").write_text("\n")
    result = invoke([*args, "--check"], code=1)
    assert "stale:" in result.output and "resnet18_torch.py" in result.output
    assert "missing:" in result.output and "resnet34_torch.py" in result.output
    assert "extra:" in result.output and "orphan_torch.py" in result.output
    assert (out / "resnet18_torch.py").read_text() == "stale\n"  # --check writes nothing


@pytest.mark.parametrize(
    "args",
    [["emit"], ["emit", "specs/resnet18.yaml", "--all"], ["emit", "--all", "-o", "x.py"]],
)
def test_emit_usage_errors(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    invoke(args, code=2)
