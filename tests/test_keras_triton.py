"""TensorFlow and triton in one process (tensorflow/tensorflow#124205): TensorFlow >= 2.20 loads its
library with RTLD_GLOBAL, and a triton imported after it (timm, torchvision and torch.compile import
it) binds to TensorFlow's LLVM and the interpreter dies of SIGSEGV, silently. The Keras backend
imports triton first where it is installed (``_import_triton_first`` in backends/keras/backend.py),
so an archgen Keras build followed by timm and torch.compile, and the other order, both run.

Each scenario runs in a fresh interpreter (with KERAS_BACKEND unset: Keras on TensorFlow), since
pytest's own process imports torchvision, and with it triton, before anything else (tests/conftest.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.torch, pytest.mark.keras]

HAS_TRITON = importlib.util.find_spec("triton") is not None

KERAS_BUILD = """
import archgen
model = archgen.build("resnet18", backend="keras", input_size=32)
assert model.count_params() == 11_699_112, model.count_params()  # torchvision resnet18 + BN statistics
print("keras built", flush=True)
"""

TIMM_AND_COMPILE = """
import timm
import torch
net = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
with torch.no_grad():
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
tiny = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
compiled = torch.compile(tiny)
x = torch.randn(3, 4)
with torch.no_grad():
    torch.testing.assert_close(compiled(x), tiny(x))
print("timm and torch.compile ran", flush=True)
"""

REPORT = """
import sys
print("modules:", "triton" in sys.modules, "tensorflow" in sys.modules, flush=True)
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def check(proc: subprocess.CompletedProcess[str], *lines: str) -> None:
    # a crash shows as returncode -11 (SIGSEGV) with nothing on stderr: say so, with what got printed
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    for line in lines:
        assert line in proc.stdout, proc.stdout


def test_keras_build_then_timm_and_torch_compile() -> None:
    check(run(KERAS_BUILD + TIMM_AND_COMPILE), "keras built", "timm and torch.compile ran")


def test_timm_and_torch_compile_then_keras_build() -> None:
    check(run(TIMM_AND_COMPILE + KERAS_BUILD), "timm and torch.compile ran", "keras built")


if HAS_TRITON:

    def test_the_keras_backend_imports_triton_before_tensorflow() -> None:
        """triton is installed here: requiring the Keras backend imports it, before TensorFlow."""
        code = (
            "import sys\n"
            "order = []\n"
            "class Spy:  # sees every import as it is first looked up\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        top = name.partition('.')[0]\n"
            "        if top in ('triton', 'tensorflow') and top not in order:\n"
            "            order.append(top)\n"
            "sys.meta_path.insert(0, Spy())\n"
            "from archgen.backends.keras import BACKEND\n"
            "BACKEND.require()\n"
            "print('order:', order, flush=True)\n"
        )
        check(run(code + REPORT), "order: ['triton', 'tensorflow']", "modules: True True")

else:

    def test_without_triton_installed_the_workaround_does_nothing() -> None:
        """triton is not installed here (CPU-only torch): there is no crash to work around, and requiring the
        Keras backend imports no triton."""
        assert importlib.util.find_spec("triton") is None
        code = "from archgen.backends.keras import BACKEND\nBACKEND.require()\n"
        check(run(code + REPORT), "modules: False True")
