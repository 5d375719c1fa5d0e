"""The layout's dependency rules ([tool.importlinter] in pyproject.toml), checked by import-linter:
the core imports no deep-learning framework (imports inside functions included), and the IR imports
nothing of archgen but its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_import_contracts_hold() -> None:
    done = lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 8 kept, 0 broken." in done.stdout


def test_a_broken_contract_is_reported(tmp_path: Path) -> None:
    """The same tool, told that code generation may not reach the IR (it must), says so: the check is not vacuous."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["archgen"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "emit without the IR"\n'
        'type = "forbidden"\n'
        'source_modules = ["archgen.codegen"]\n'
        'forbidden_modules = ["archgen.ir"]\n'
    )
    done = lint("--config", str(config))
    assert done.returncode == 1 and "archgen.codegen is not allowed to import archgen.ir" in done.stdout, done.stdout
