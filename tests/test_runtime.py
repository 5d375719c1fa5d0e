"""What a new user meets outside the happy path: missing frameworks, devices, memory, file modes,
and the shipped specs reached by name from any folder."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import ROOT, hide_modules, invoke, run_archgen

import archgen
from archgen.language import catalog

pytestmark = [pytest.mark.torch, pytest.mark.keras]

FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras", "jax", "tf_keras", "timm")


@pytest.fixture(scope="module")
def no_frameworks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hide_modules(tmp_path_factory.mktemp("hidden"), FRAMEWORKS)


def clean(result: subprocess.CompletedProcess[str]) -> str:
    """stderr + stdout, asserting no traceback reached the user."""
    text = result.stderr + result.stdout
    assert "Traceback" not in text, text
    return text


# --- a machine without torch, tensorflow or keras ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "specs/resnet50.yaml", "specs/resnetrs420.yaml"],
        ["summary", "resnet50v2"],
        ["list"],
        ["schema"],
        ["emit", "--all", "--check"],
    ],
    ids=["validate", "summary", "list", "schema", "emit-check"],
)
def test_framework_free_commands_work_without_any_framework(no_frameworks: Path, args: list[str]) -> None:
    result = run_archgen(args, hidden=no_frameworks)
    assert result.returncode == 0, clean(result)
    clean(result)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_emit_writes_a_file_without_any_framework(no_frameworks: Path, tmp_path: Path, backend: str) -> None:
    out = tmp_path / "model.py"
    result = run_archgen(["emit", "resnet18", "--backend", backend, "-o", out], hidden=no_frameworks)
    assert result.returncode == 0, clean(result)
    assert out.read_text() == (ROOT / "generated" / f"resnet18_{backend}.py").read_text()


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["build", "resnet18"], "pip install 'archgen[torch]'"),
        (["build", "resnet18", "--backend", "keras"], "pip install 'archgen[keras]'"),
        (["compare", "resnet18"], "pip install 'archgen[torch]'"),
    ],
)
def test_commands_that_need_a_missing_framework_say_what_to_install(
    no_frameworks: Path, args: list[str], hint: str
) -> None:
    result = run_archgen(args, hidden=no_frameworks)
    text = clean(result)
    assert result.returncode == 2, text
    assert hint in text and text.startswith("error: "), text
    assert len(result.stderr.strip().splitlines()) == 1, text


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_api_raises_missing_framework_naming_the_extra(no_frameworks: Path, backend: str) -> None:
    code = (
        "import archgen\n"
        "try:\n"
        f"    archgen.build('resnet18', backend={backend!r})\n"
        "except archgen.MissingFramework as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{no_frameworks}{os.pathsep}{ROOT}"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"pip install 'archgen[{backend}]'" in result.stdout


def test_the_torch_extra_brings_numpy() -> None:
    """The torch backend's checks hand arrays around as numpy, which torch does not require."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.split(">")[0].split("=")[0] == "numpy" for dep in extras["torch"])


def test_check_build_is_the_library_side_of_build() -> None:
    from archgen.runtime.checks import check_build

    _, network = archgen.compile_spec("resnet18", input_size=32)
    model, report = check_build(network, "torch")
    assert report.ok and isinstance(model, torch.nn.Module)
    assert {c.name: c.model for c in report.checks}["trainable params"] == 11_689_512  # torchvision resnet18
    assert report.output_shape == (1000,)


def test_building_a_keras_model_leaves_the_recursion_limit_alone() -> None:
    limit = sys.getrecursionlimit()
    archgen.build("resnet18", backend="keras", input_size=32)
    assert sys.getrecursionlimit() == limit


def test_keras_set_to_a_backend_that_is_not_installed(tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path, ["jax"])
    result = run_archgen(["build", "resnet18", "--backend", "keras"], hidden=hidden, env={"KERAS_BACKEND": "jax"})
    text = clean(result)
    assert result.returncode == 2, text
    assert "KERAS_BACKEND=jax" in text and "pip install jax" in text, text


def test_loading_tensorflow_prints_no_start_up_lines() -> None:
    result = run_archgen(["build", "resnet18", "--backend", "keras", "--input-size", "32"])
    assert result.returncode == 0, clean(result)
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuInit", "rebuild TensorFlow"):
        assert noise not in result.stderr, result.stderr


# --- devices and memory --------------------------------------------------------------------------------------


def missing_gpu() -> str:
    """A CUDA device this machine does not have: cuda on a CPU machine, one past the last GPU on a GPU one."""
    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_an_unknown_device_name_is_a_bad_option(backend: str) -> None:
    out = invoke(["build", "resnet18", "--backend", backend, "--device", "gpu", "--input-size", "32"], code=2).output
    assert "error: --device 'gpu':" in out and "cuda" in out, out


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_device_the_machine_lacks_exits_3(backend: str) -> None:
    device = missing_gpu()
    out = invoke(["build", "resnet18", "--backend", backend, "--device", device, "--input-size", "32"], code=3).output
    assert f"error: --device '{device}':" in out and "Traceback" not in out, out
    with pytest.raises(archgen.RunError, match="--device"):
        archgen.build("resnet18", backend=backend, device=device, input_size=32)


def test_out_of_memory_is_one_line_and_exit_3() -> None:
    # ResNet-18 eight times as wide has ~740 M params (3 GB of float32): it cannot fit in 2 GiB of data.
    result = run_archgen(["build", "resnet18", "--set", "width_multiplier=8", "--input-size", "32"], data_limit=2 << 30)
    text = clean(result)
    assert result.returncode == 3, text
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory building resnet18"), text


# --- files written keep a normal mode ------------------------------------------------------------------------


def test_emitted_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        new, old = tmp_path / "new.py", tmp_path / "old.py"
        old.write_text("# old\n")
        old.chmod(0o640)
        invoke(["emit", "resnet18", "-o", new])
        invoke(["emit", "resnet18", "-o", old])
    finally:
        os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and old.read_text().startswith("# Generated by archgen")


# --- shipped specs by name -----------------------------------------------------------------------------------


def test_shipped_specs_by_name_from_any_folder(tmp_path: Path) -> None:
    data = json.loads(run_archgen(["summary", "resnet50d", "--json"], cwd=tmp_path).stdout)
    assert data["params"] == 25_576_264  # timm resnet50d
    listed = run_archgen(["list"], cwd=tmp_path)
    assert listed.returncode == 0, clean(listed)
    for name in catalog.shipped_names():
        assert name in listed.stdout
    assert "191,891,656" in listed.stdout  # resnetrs420


def test_an_unknown_spec_name_gets_a_did_you_mean() -> None:
    out = invoke(["summary", "resnet50dd"], code=2).output
    assert "no spec file 'resnet50dd' here and no shipped spec of that name; did you mean 'resnet50d'?" in out


def test_a_file_beside_wins_over_a_shipped_spec_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18").write_text("block: basic\nstages: 18\nhead: {classes: 10}\n")
    data = json.loads(invoke(["summary", "resnet18", "--json"]).output)
    assert data["output"] == [10]


def test_the_wheel_carries_the_shipped_specs_and_the_backends_inside_archgen(tmp_path: Path) -> None:
    """A non-editable install has the specs (package data) and the backends as archgen.backends: no
    generic top-level package lands in site-packages. Built from a copy, so the checkout gets no build/."""
    source = tmp_path / "src"
    source.mkdir()
    for item in ("pyproject.toml", "README.md", "archgen", "backends", "specs"):
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copy
        copy(ROOT / item, source / item)  # type: ignore[operator]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("archgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        assert f"archgen/specs/{spec.name}" in names
    assert "archgen/codegen/templates/common.py.j2" in names
    for backend in ("torch", "keras"):
        assert f"archgen/backends/{backend}/templates/model.py.j2" in names
    assert {name.split("/")[0] for name in names if not name.startswith("archgen-")} == {"archgen"}
