"""The hostile-input corpus (tests/hostile/, expectations in tests/hostile/expected.yaml).

Every case must be refused the same clean way:
- through the CLI (``validate``, or ``summary`` where the case needs --set/--input-size,
  and ``emit SPEC -o OUT``): exit code 2, an ``error: FILE:LINE:COL: FIELD: MESSAGE`` line,
  no traceback, nothing written, an existing OUT left byte-identical, no temporary file left;
- through the API: ``archgen.compile_spec`` raises ``archgen.SpecError`` whose ``file``,
  ``line``, ``field`` and ``message`` are the manifest's.
Giant or special inputs (a 50 MB file, an alias bomb, 10,000-deep nesting, a FIFO, ...)
are written at run time, never committed. One case per category also runs in a fresh
interpreter (``python -m archgen.cli``), the honest proof that no traceback escapes.
"""

from __future__ import annotations

import ast
import builtins
import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, invoke

import archgen
from archgen.language import yamlsource

HOSTILE = ROOT / "tests" / "hostile"
MANIFEST: list[dict[str, Any]] = yaml.safe_load((HOSTILE / "expected.yaml").read_text(encoding="utf-8"))["cases"]
CASES = {case.get("id") or Path(case["file"]).stem: case for case in MANIFEST}

# Every kind of hostile input the issue names, and how many cases the common ones need at least.
REQUIRED = {
    "yaml-syntax": 3,
    "tabs": 2,
    "duplicate-keys": 2,
    "wrong-types": 5,
    "unknown-keys": 3,
    "missing-fields": 2,
    "non-positive-sizes": 4,
    "groups": 2,
    "input-too-small": 2,
    "extends-cycle": 2,
    "parent-missing-or-unreadable": 3,
    "extends-escape": 2,
    "encoding": 2,
    "empty": 1,
    "too-large": 1,
    "alias-bomb": 1,
    "deep-nesting": 2,
    "absurd-sizes": 5,
    "code-injection": 5,
    "contradictions": 1,
}
PIPE_SPEC = b"block: basic\nstages: 18\n"


# -- inputs written at run time -------------------------------------------------------------


def _fifty_megabytes(folder: Path) -> None:
    with open(folder / "fifty_megabytes.yaml", "wb") as fh:
        fh.write(b"block: basic\nstages: 18\ndescription: ")
        chunk = b"x" * (1 << 20)
        for _ in range(50):
            fh.write(chunk)
        fh.write(b"\n")


def _fifo(folder: Path) -> None:
    if not (folder / "pipe.yaml").exists():  # reading one blocks until a writer comes: it must never be opened
        os.mkfifo(folder / "pipe.yaml")


def _fifo_parent(folder: Path) -> None:
    _fifo(folder)
    (folder / "child_of_pipe.yaml").write_text("extends: pipe.yaml\n")


def _unreadable_parent(folder: Path) -> None:
    locked = folder / "locked.yaml"
    locked.write_text("block: basic\nstages: 18\n")
    locked.chmod(0)  # unreadable for anyone but root; as root, the tests deny the read themselves
    (folder / "child_of_locked.yaml").write_text("extends: locked.yaml\n")


def _dangling_parent(folder: Path) -> None:
    (folder / "dangling.yaml").symlink_to("vanished.yaml")
    (folder / "child_of_dangling.yaml").write_text("extends: dangling.yaml\n")


def _large_parent(folder: Path) -> None:
    (folder / "big_parent.yaml").write_text("block: basic\nstages: 18\ndescription: " + "y" * (2 << 20) + "\n")
    (folder / "child_of_big.yaml").write_text("extends: big_parent.yaml\n")


def _symlink_escape(folder: Path) -> None:
    (folder.parent / "outside.yaml").write_text("block: basic\nstages: 18\n")
    (folder / "link.yaml").symlink_to("../outside.yaml")
    (folder / "child_of_link.yaml").write_text("extends: link.yaml\n")


def _extends_chain(folder: Path) -> None:
    """chain.yaml -> chain1.yaml -> ... -> chain17.yaml: 17 levels of extends, one too many."""
    (folder / "chain.yaml").write_text("extends: chain1.yaml\n")
    for k in range(1, 17):
        (folder / f"chain{k}.yaml").write_text(f"extends: chain{k + 1}.yaml\n")
    (folder / "chain17.yaml").write_text("block: basic\nstages: 18\n")


def _billion_laughs(folder: Path) -> None:
    """30 levels of 9 aliases each: 9**30 strings if anything expanded it."""
    lines = ["block: basic", "stages: 18", "lol1: &l1 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"lol{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]" for k in range(2, 31)]
    (folder / "laughs.yaml").write_text("\n".join(lines) + "\n")


def _deep_flow(folder: Path) -> None:
    depth = 10_000
    (folder / "ten_thousand_deep.yaml").write_text(
        "block: basic\nstages: 18\ndescription: " + "[" * depth + "]" * depth + "\n"
    )


def _deep_block(folder: Path) -> None:
    """100 levels of indented mappings under head: (line k + 3 opens level k + 1)."""
    nested = "".join(" " * (i + 1) + "a:\n" for i in range(100))
    (folder / "deep_mappings.yaml").write_text("block: basic\nstages: 18\nhead:\n" + nested)


GENERATORS = {
    "fifty_megabytes": _fifty_megabytes,
    "fifo": _fifo,
    "fifo_parent": _fifo_parent,
    "unreadable_parent": _unreadable_parent,
    "dangling_parent": _dangling_parent,
    "large_parent": _large_parent,
    "symlink_escape": _symlink_escape,
    "extends_chain": _extends_chain,
    "billion_laughs": _billion_laughs,
    "deep_flow": _deep_flow,
    "deep_block": _deep_block,
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "specs"
    folder.mkdir()
    for name in dict.fromkeys(c["generate"] for c in MANIFEST if "generate" in c):
        GENERATORS[name](folder)
    return folder


# -- helpers ----------------------------------------------------------------------------------


def spec_of(case: dict[str, Any], generated: Path) -> Path:
    return (generated if "generate" in case else HOSTILE) / case["file"]


def where(case: dict[str, Any], spec: Path) -> str:
    """The file the first problem must name: the spec, a parent of it, or a command-line option."""
    at = case.get("at")
    if at is None:
        return str(spec)
    if at.startswith("--"):
        return at
    return str((spec.parent if "generate" in case else HOSTILE) / at)


def tree(folder: Path) -> dict[str, int]:
    """Every entry under a folder, with its size (FIFOs and dangling links included, not read)."""
    return {str(p.relative_to(folder)): p.lstat().st_size for p in sorted(folder.rglob("*"))}


@contextmanager
def hostile_environment(case: dict[str, Any], generated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Deny the read of locked.yaml even to root, and make sure a FIFO can never hang the tests:
    should anything open pipe.yaml for reading, a writer comes after 20 s and the test fails
    on its assertions instead of hanging."""
    if case.get("generate") == "unreadable_parent" and os.geteuid() == 0:

        def denying_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(path).name == "locked.yaml":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return builtins.open(path, *args, **kwargs)

        monkeypatch.setattr(yamlsource, "open", denying_open, raising=False)
    pipe = generated / "pipe.yaml"
    done = threading.Event()

    def unblock() -> None:
        if not done.wait(20) and pipe.exists():
            fd = os.open(pipe, os.O_WRONLY)
            os.write(fd, PIPE_SPEC)
            os.close(fd)

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        done.set()


def first_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert lines, f"no error line in:\n{stderr}"
    return lines[0]


def check_error_line(line: str, case: dict[str, Any], spec: Path) -> None:
    """``error: FILE:LINE:COL: FIELD: MESSAGE`` (no LINE:COL where the input has no line)."""
    prefix = f"error: {where(case, spec)}:"
    if case["line"] is not None:
        prefix += f"{case['line']}:"
    assert line.startswith(prefix), f"expected {prefix!r}...\ngot {line!r}"
    rest = line[len(prefix) :]
    if case["line"] is not None:
        column, _, rest = rest.partition(": ")
        assert column.isdigit(), line
    else:
        rest = rest.removeprefix(" ")
    if case["field"]:
        assert rest.startswith(f"{case['field']}: "), f"field {case['field']!r} not named in {line!r}"
    assert case["message"] in rest, f"{case['message']!r} not in {line!r}"


def cli_args(command: str, case: dict[str, Any], spec: Path) -> list[str]:
    args = [command, str(spec)]
    for override in case.get("set", []):
        args += ["--set", override]
    if "input_size" in case:
        args += ["--input-size", str(case["input_size"])]
    return args


# -- the corpus -------------------------------------------------------------------------------


def test_manifest_covers_the_corpus_and_every_category() -> None:
    listed = {c["file"] for c in MANIFEST if "generate" not in c}
    on_disk = {p.name for p in HOSTILE.glob("*.yaml")} - {"expected.yaml"}
    assert on_disk == listed - {f for f in listed if "/" in f}, "every file of tests/hostile is a listed case"
    assert all((HOSTILE / f).exists() for f in listed)
    assert len(CASES) == len(MANIFEST) >= 40, "case names are unique"
    assert sum(1 for c in MANIFEST if "generate" not in c) >= 40, "at least 40 committed broken specs"
    counts = {name: sum(1 for c in MANIFEST if c["category"] == name) for name in REQUIRED}
    assert {c["category"] for c in MANIFEST} == set(REQUIRED)
    assert all(counts[name] >= least for name, least in REQUIRED.items()), counts
    for case in MANIFEST:
        assert set(case) <= {
            "id",
            "file",
            "category",
            "line",
            "field",
            "message",
            "at",
            "set",
            "input_size",
            "generate",
        }
        assert case["line"] is None or case["line"] >= 1
        assert case["message"]


@pytest.mark.parametrize("name", list(CASES))
def test_api_raises_one_spec_error_with_file_line_field(
    name: str, generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    spec = spec_of(case, generated)
    start = time.perf_counter()
    with hostile_environment(case, generated, monkeypatch), pytest.raises(archgen.SpecError) as info:
        archgen.compile_spec(spec, case.get("set"), case.get("input_size"))
    elapsed = time.perf_counter() - start
    err = info.value
    assert isinstance(err, ValueError)  # the documented base class
    assert (err.file, err.line, err.field) == (where(case, spec), case["line"], case["field"]), str(err)
    assert case["message"] in err.message, err.message
    assert (err.file, err.line, err.field, err.message) == (
        err.problems[0].file,
        err.problems[0].line,
        err.problems[0].field,
        err.problems[0].message,
    )
    assert all("\n" not in str(p) for p in err.problems), "one line per problem"
    assert elapsed < 10, f"refusing took {elapsed:.1f} s: something was expanded or built"


CLI_RUNS = [(name, "emit") for name, c in CASES.items() if "input_size" not in c] + [
    (name, "summary" if "set" in c or "input_size" in c else "validate") for name, c in CASES.items()
]


@pytest.mark.parametrize(("name", "command"), CLI_RUNS, ids=[f"{c}-{n}" for n, c in CLI_RUNS])
def test_cli_exits_2_naming_file_line_field_and_writes_nothing(
    name: str, command: str, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    spec = spec_of(case, generated)
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "model.py"
    existing = b"# an emitted file from before: it must survive byte for byte\n"
    target.write_bytes(existing)
    args = cli_args(command, case, spec)
    if command == "emit":
        args += ["-o", str(target)]
    corpus_before, generated_before = tree(HOSTILE), tree(generated)
    with hostile_environment(case, generated, monkeypatch):
        result = invoke(args, code=2, catch_exceptions=False)
    assert "Traceback" not in result.output
    assert result.stdout == "", "nothing but the error is printed"
    check_error_line(first_error(result.stderr), case, spec)
    assert target.read_bytes() == existing
    assert tree(out) == {"model.py": len(existing)}, "no temporary or other file left"
    assert tree(HOSTILE) == corpus_before and tree(generated) == generated_before


# One case per category in a fresh interpreter (generated ones included), where a
# traceback or a hang could not hide behind CliRunner.
REPRESENTATIVES = {}
for _name, _case in CASES.items():
    _plain = "set" not in _case and "input_size" not in _case and _case.get("generate") != "unreadable_parent"
    if _plain:
        REPRESENTATIVES.setdefault(_case["category"], _name)


PIPES: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


def run_clis(runs: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``python -m archgen.cli ARGS`` for each, a few at a time (an interpreter takes a second to start)."""
    results = []
    for first in range(0, len(runs), 4):  # more at once would only thrash a small machine
        batch = [
            (args, subprocess.Popen([sys.executable, "-m", "archgen.cli", *args], cwd=ROOT, **PIPES))
            for args in runs[first : first + 4]
        ]
        for args, proc in batch:
            stdout, stderr = proc.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return results


def test_fresh_interpreters_exit_2_without_traceback(generated: Path, tmp_path: Path) -> None:
    """emit SPEC -o OUT for one case per category, and validate of them all, each in its own interpreter."""
    cases = [CASES[REPRESENTATIVES[category]] for category in REQUIRED]
    specs = [spec_of(case, generated) for case in cases]
    targets = [tmp_path / category / "model.py" for category in REQUIRED]
    for target in targets:
        target.parent.mkdir()
        target.write_bytes(b"keep me\n")
    runs = [["emit", str(spec), "-o", str(target)] for spec, target in zip(specs, targets, strict=True)]
    *emits, validate = run_clis([*runs, ["validate", *map(str, specs)]])
    for category, case, spec, target, result in zip(REQUIRED, cases, specs, targets, emits, strict=True):
        assert result.returncode == 2, f"{category}: exit {result.returncode}\n{result.stderr}"
        assert "Traceback" not in result.stderr + result.stdout, category
        check_error_line(first_error(result.stderr), case, spec)
        assert target.read_bytes() == b"keep me\n" and tree(target.parent) == {"model.py": 8}, category
    assert validate.returncode == 2
    assert "Traceback" not in validate.stderr + validate.stdout and validate.stdout == ""
    errors = [line for line in validate.stderr.splitlines() if line.startswith("error: ")]
    for case, spec in zip(cases, specs, strict=True):
        mine = [e for e in errors if e.startswith(f"error: {where(case, spec)}:")]
        assert mine, f"{case['file']} not reported by validate"
        check_error_line(mine[0], case, spec)


# -- what is not refused must still be inert ----------------------------------------------------


def test_hostile_file_name_and_description_stay_inert_in_emitted_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free text is accepted but never becomes code: a file name holding a newline and a
    statement (it heads the emitted file), and a description closing the docstring, with
    Jinja syntax, backslashes and unicode line separators."""
    hostile_name = "evil\nimport os; os.system('echo pwned') #.yaml"
    description = '"""; import os; os.system(\'echo pwned\'); """ {{ 7*7 }} {% raw %} \\ \u2028 end\\'
    spec = tmp_path / hostile_name
    spec.write_text(f"name: evil_path\nblock: basic\nstages: 18\ndescription: {yaml.safe_dump(description)}")
    out = tmp_path / "model.py"
    monkeypatch.chdir(tmp_path)
    invoke(["emit", hostile_name, "-o", str(out), "--specs", str(ROOT / "specs")], catch_exceptions=False)
    source = out.read_text(encoding="utf-8")
    tree_ = ast.parse(source)
    names = {n.id for n in ast.walk(tree_) if isinstance(n, ast.Name)}
    imported = {a.name for n in ast.walk(tree_) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    assert "os" not in names and "os" not in imported
    assert source.splitlines()[0].startswith("# Generated by archgen") and "evil\\nimport os" in source.splitlines()[0]
    docstring = ast.get_docstring(tree_) or ""
    assert "{{ 7*7 }}" in docstring and "49" not in docstring and "'''; import os" in docstring


@pytest.mark.parametrize("size", [0, -3, True, 10**6, (8,), "224"])
def test_input_size_argument_is_refused_like_a_field(size: object) -> None:
    with pytest.raises(archgen.SpecError) as info:
        archgen.compile_spec(HOSTILE / "parents" / "valid_resnet50.yaml", input_size=size)  # type: ignore[arg-type]
    err = info.value
    assert err.file == f"--input-size {size!r}" and err.line is None and err.field == "input.size"
    assert "expected an integer from 1 to 8192" in err.message


def test_the_largest_depths_the_language_allows_resolve_quickly(tmp_path: Path) -> None:
    """16 stages of 1000 blocks (the maxima): 224,000 layers, resolved in seconds, never minutes."""
    stages = "".join("  - {depth: 1000, width: 8, stride: 1}\n" for _ in range(16))
    spec = tmp_path / "deepest.yaml"
    spec.write_text(f"block: basic\ninput: {{size: 8}}\nstages:\n{stages}")
    start = time.perf_counter()
    _, network = archgen.compile_spec(spec)
    assert sum(len(s.blocks) for s in network.stages) == 16_000
    assert time.perf_counter() - start < 30
