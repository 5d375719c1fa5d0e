"""What the command line's start imports, and what it leaves as it was: ``archgen validate`` loads the
spec language and the IR only (no rich, jinja2, backend, export or summary module), ``import archgen``
and ``--help`` not even those, and the settings the command line makes for its own speed (pydantic's
plugin scan off, the garbage collector paused while the language is imported) do not outlive it.
Each case runs in a fresh interpreter, where nothing else has imported anything yet; the timings
themselves live in benchmarks/run.py (its tooling section) and docs/performance.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import ROOT

# Modules validate must not import: they belong to other commands.
NOT_FOR_VALIDATE = (
    "rich",
    "jinja2",
    "archgen.backends",
    "archgen.codegen",
    "archgen.runtime",
    "archgen.tools",
    "archgen.describe",
    "archgen.registry",
    "archgen.atomic",
)


def fresh(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` in a new interpreter at the repository root; it prints one JSON object last."""
    full_env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


VALIDATE = """
import gc, json, os, sys
from archgen.cli import main
try:
    main(["validate", "specs/resnet50.yaml"])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
loader = sys.modules.get("pydantic.plugin._loader")
print(json.dumps({
    "modules": sorted(sys.modules),
    "gc": gc.isenabled(),
    "scanned": loader is not None and loader._plugins is not None,
    "env": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
}))
"""


def loaded(modules: object, prefix: str) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if m == prefix or m.startswith(prefix + ".")]


def test_validate_imports_only_what_it_uses() -> None:
    result = fresh(VALIDATE)
    for name in NOT_FOR_VALIDATE:
        assert not loaded(result["modules"], name), name
    assert loaded(result["modules"], "archgen.language.spec") and loaded(result["modules"], "archgen.ir")


def test_validate_leaves_the_process_as_it_found_it() -> None:
    result = fresh(VALIDATE)
    assert result["gc"] is True  # paused for the imports only
    assert result["scanned"] is False  # no entry-point scan for pydantic plugins while the command ran
    assert result["env"] is None  # and the variable that said so is gone afterwards


def test_as_the_program_validate_freezes_what_the_language_import_made() -> None:
    # main() reading sys.argv, as the archgen script calls it; what it reports is printed at exit.
    code = (
        "import atexit, gc, json, sys\n"
        "sys.argv = ['archgen', 'validate', 'specs/resnet50.yaml']\n"
        "atexit.register(lambda: print(json.dumps({'frozen': gc.get_freeze_count(), 'gc': gc.isenabled()})))\n"
        "from archgen.cli import main\n"
        "main()\n"
    )
    result = fresh(code)
    assert isinstance(result["frozen"], int) and result["frozen"] > 10_000 and result["gc"] is True
    # A program that calls main(args) in its own process keeps its collector as it was.
    assert fresh("import gc\n" + VALIDATE.replace('"gc": gc.isenabled()', '"gc": gc.get_freeze_count()'))["gc"] == 0


def test_a_disabled_garbage_collector_stays_disabled() -> None:
    result = fresh("import gc\ngc.disable()\n" + VALIDATE)
    assert result["gc"] is False


def test_the_users_own_plugin_setting_is_kept() -> None:
    # PYDANTIC_DISABLE_PLUGINS set to anything (here: empty, which disables nothing) is the user's choice.
    result = fresh(VALIDATE, env={"PYDANTIC_DISABLE_PLUGINS": ""})
    assert result["scanned"] is True and result["env"] == ""


def test_library_use_keeps_pydantic_plugins() -> None:
    code = (
        "import json, sys, archgen\n"
        "archgen.compile_spec('specs/resnet50.yaml')\n"
        "print(json.dumps({'scanned': sys.modules['pydantic.plugin._loader']._plugins is not None}))\n"
    )
    assert fresh(code)["scanned"] is True


def test_import_archgen_and_help_load_no_language() -> None:
    code = (
        "import json, sys, archgen\n"
        "from archgen.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))\n"
    )
    modules = fresh(code)["modules"]
    language = ("archgen.language.spec", "archgen.language.loader", "archgen.ir")
    for name in ("pydantic", "yaml", *language, *NOT_FOR_VALIDATE):
        assert not loaded(modules, name), name


def test_the_package_names_are_the_same_when_imported_lazily() -> None:
    code = (
        "import json, archgen\n"
        "import archgen.compiler.resolve as module\n"
        "from archgen import *\n"
        "from archgen.compiler.resolve import resolve as function\n"
        "from archgen.language.loader import Override, load_spec_with_positions\n"
        "from archgen.language.spec import Spec as S\n"
        "print(json.dumps({\n"
        "    'resolve': archgen.resolve is function and module.resolve is function,\n"
        "    'star': resolve is function and Spec is S and callable(load_spec) and callable(transfer_weights),\n"
        "    'extra': archgen.Override is Override and archgen.load_spec_with_positions is load_spec_with_positions,\n"
        "    'submodules': [m.__name__ for m in (archgen.spec, archgen.ir, archgen.registry, archgen.tools)],\n"
        "    'dir': all(n in dir(archgen) for n in archgen.__all__),\n"
        "    'missing': not hasattr(archgen, 'no_such_name'),\n"
        "}))\n"
    )
    result = fresh(code)
    assert result == {
        "resolve": True,
        "star": True,
        "extra": True,
        "submodules": ["archgen.language.spec", "archgen.ir", "archgen.registry", "archgen.tools"],
        "dir": True,
        "missing": True,
    }
