"""What many test files share: running the CLI in-process and in a fresh interpreter, hiding frameworks.

A plain module (no fixtures, imports no framework), so a test that imports it still runs where
torch, tensorflow and keras cannot be imported.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from click.testing import CliRunner, Result

from archgen.cli import main

ROOT = Path(__file__).resolve().parent.parent


def invoke(args: Iterable[object], code: int = 0) -> Result:
    """Run the CLI in-process, assert its exit code, and show the output when it differs."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


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
