"""Every code block of the README and of docs/*.md runs as written, in the install its section names.

Each ```python, ```bash and ```sh block says where it runs with the HTML comment on the line just
above its fence (a block without one fails ``test_every_code_block_says_where_it_runs``):

    <!-- env: archgen[torch] timm -->   run it where `pip install -e ".[torch]" timm` is all there is
    <!-- run by: tests/test_x.py -->    another test runs it as written (that test names the doc)
    <!-- not run: why -->               shown, not run (a GPU, a download, minutes of work): the
                                        reason is there for the reader too

An ``env`` names archgen (``archgen`` alone is the core, ``archgen[torch,keras]`` with extras)
and any other package a reader is told to install. The block runs in a fresh process, in a
scratch folder holding a copy of specs/ (the examples name specs/... paths and write files),
seeing only what that install would bring: every distribution this test install has beyond it
is out of sight, its modules and its metadata (``without``), so ``import torchvision`` raises
ModuleNotFoundError and ``importlib.metadata.version("torchvision")`` PackageNotFoundError, as on
a machine without it. What an install brings is read, never listed here: archgen's requirements
and extras from pyproject.toml, every other package's requirements from its installed metadata,
recursively. So a block that imports timm fails unless its section says to install timm.
Python blocks run with this interpreter (with the test session's oneDNN setting where torch is
installed: tests/conftest.py); bash and sh blocks with ``bash -euo pipefail``, archgen on PATH.

The README's two commands (its ``main-command`` and ``test-command`` markers) are .ci/run's
own, and ``test_ci_finds_both_commands`` extracts them as .ci/run does. Fences without a
language are output samples, not run. Every relative link of these documents must name a file
that exists, and a heading there when it has a fragment (``test_every_link_resolves``).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from helpers import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "bash", "sh"}
CI_MARKERS = ("main-command", "test-command")
# What every venv holds, whatever was installed into it.
VENV_OWN = {"pip", "setuptools", "wheel"}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: str  # the text of the HTML comment on the line above the fence, or ""

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def env(self) -> list[str] | None:
        return self.marker.removeprefix("env:").split() if self.marker.startswith("env:") else None


def blocks(doc: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the comment above each."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\S*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        above = re.match(r"^<!--\s*(.*?)\s*-->$", lines[i - 1]) if i else None
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(doc, i + 1, opening[1], code, above[1] if above else ""))
        i = end + 1
    return found


CODE = [b for doc in DOCS for b in blocks(doc) if b.language in RUN_LANGUAGES]
RUN = [b for b in CODE if b.env is not None]


# -- what an install brings -----------------------------------------------------------------------------------


@cache
def _project() -> dict[str, list[str]]:
    """archgen's requirements: "" for the core, then one entry per extra (pyproject.toml)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"": project["dependencies"], **project["optional-dependencies"]}


def _requirements(tokens: list[str]) -> list[Requirement]:
    """What ``pip install`` of these tokens asks for (``archgen[a,b]``: the core and those extras)."""
    wanted: list[Requirement] = []
    for token in tokens:
        requirement = Requirement(token)
        if canonicalize_name(requirement.name) == "archgen":
            unknown = requirement.extras - _project().keys()
            assert not unknown, f"no such extra of archgen: {sorted(unknown)} (pyproject.toml has {sorted(_project())})"
            for extra in ["", *sorted(requirement.extras)]:
                wanted += [Requirement(r) for r in _project()[extra]]
        else:
            try:
                importlib.metadata.distribution(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                pytest.fail(f"{token!r}: not in the test install, so no block can be run with it")
            wanted.append(requirement)
    return wanted


def _installed(requirements: list[Requirement]) -> frozenset[str]:
    """The distributions these requirements bring, by their installed metadata, recursively."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = name + "".join(f"[{e}]" for e in sorted(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            needs = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # not in the test install: nothing to hide of it
            continue
        for text in needs:
            need = Requirement(text)
            contexts = [{"extra": e} for e in ("", *requirement.extras)]
            if need.marker is None or any(need.marker.evaluate(c) for c in contexts):
                todo.append(need)
    return frozenset(n for n in seen if "[" not in n)


@cache
def _everything() -> frozenset[str]:
    """What the test install holds because of archgen: the core and every extra, recursively."""
    return _installed(_requirements([f"archgen[{','.join(e for e in _project() if e)}]"]))


def absent(tokens: list[str]) -> frozenset[str]:
    """The distributions the test install has and this install would not bring."""
    return _everything() - _installed(_requirements(tokens)) - VENV_OWN


@cache
def _owners() -> dict[str, frozenset[str]]:
    """Each top-level entry of site-packages (a package, a module file, a .dist-info or .libs folder)
    and the distributions whose RECORD lists files in it."""
    owners: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        record = dist.read_text("RECORD") or ""  # one line per file: path,hash,size
        for top in {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines()}:
            if top and top != "..":
                owners.setdefault(top, set()).add(name)
    return {top: frozenset(names) for top, names in owners.items()}


def hidden_entries(tokens: list[str]) -> list[str]:
    """The entries of site-packages that only distributions absent from this install own."""
    gone = absent(tokens)
    return sorted(top for top, names in _owners().items() if names <= gone)


def without(tokens: list[str], folder: Path) -> Path:
    """A folder to put first on PYTHONPATH so that a Python started with it sees site-packages as this
    install would leave it: its sitecustomize swaps site-packages on sys.path for a folder of links to
    everything but the hidden entries. Modules and their metadata go together (torch reads optree's
    version from its .dist-info before it imports it), and ``importlib.util.find_spec`` finds nothing,
    as on a machine without them; tests/helpers.py's ``hide_modules`` stubs would still be found."""
    site = Path(sysconfig.get_paths()["purelib"])
    linked = folder / "site-packages"
    linked.mkdir(parents=True)
    hidden = set(hidden_entries(tokens))
    for entry in site.iterdir():
        if entry.name not in hidden:
            (linked / entry.name).symlink_to(entry)
    (folder / "sitecustomize.py").write_text(
        f"import sys\nsys.path[:] = [{str(linked)!r} if p.rstrip('/') == {str(site)!r} else p for p in sys.path]\n",
        encoding="utf-8",
    )
    return folder


def test_hiding_follows_the_install(tmp_path: Path) -> None:
    torch_only = hidden_entries(["archgen[torch]"])
    assert {"torchvision", "timm", "tensorflow", "keras", "jax", "fastai"} <= set(torch_only)
    assert not {"torch", "numpy", "safetensors", "pydantic", "yaml"} & set(torch_only)
    with_timm = hidden_entries(["archgen[torch]", "timm"])
    assert "timm" not in with_timm and "torchvision" not in with_timm  # timm requires torchvision
    assert {"torch", "numpy"} <= set(hidden_entries(["archgen"]))
    assert not {"keras", "tensorflow", "h5py"} & set(hidden_entries(["archgen[keras]"]))
    probe = (
        "import importlib.metadata as m, importlib.util as u\n"
        "print(u.find_spec('torchvision'), u.find_spec('torch') is not None)\n"
        "try:\n    m.version('torchvision')\nexcept m.PackageNotFoundError:\n    print('no metadata')\n"
        "import archgen.backends.torch\n"
    )
    env = {**os.environ, "PYTHONPATH": str(without(["archgen[torch]"], tmp_path))}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert result.stdout.split("\n")[:2] == ["None True", "no metadata"], result.stderr


# -- the blocks --------------------------------------------------------------------------------------------------


def test_the_docs_have_code_to_run() -> None:
    assert len([b for b in RUN if b.doc.name == "README.md"]) >= 2
    assert len([b for b in RUN if b.language == "python"]) >= 5


@pytest.mark.parametrize("block", CODE, ids=[b.where for b in CODE])
def test_every_code_block_says_where_it_runs(block: Block) -> None:
    kinds = ("env:", "run by:", "not run:", *CI_MARKERS)
    assert block.marker.startswith(kinds), (
        f"{block.where}: a {block.language} block needs one of <!-- env: archgen[EXTRAS] PACKAGE... -->, "
        f"<!-- run by: tests/test_x.py --> or <!-- not run: why --> on the line above its fence (tests/test_readme.py)"
    )
    if block.env is not None:
        assert block.env and block.env[0].startswith("archgen"), f"{block.where}: an env starts with archgen"
        absent(block.env)  # names only extras and packages that exist
    elif block.marker.startswith("run by:"):
        test = ROOT / block.marker.removeprefix("run by:").strip()
        assert test.is_file(), f"{block.where}: no such test {test}"
        assert str(block.doc.relative_to(ROOT)) in test.read_text(encoding="utf-8"), f"{test} does not run {block.doc}"
    elif block.marker.startswith("not run:"):
        assert block.marker.removeprefix("not run:").strip(), f"{block.where}: say why it is not run"
    else:
        assert block.doc.name == "README.md", f"{block.where}: only the README's commands are .ci/run's"


def _marks(block: Block) -> list[pytest.MarkDecorator]:
    brought = _installed(_requirements(block.env or []))
    marks = [pytest.mark.slow]
    marks += [pytest.mark.torch] if "torch" in brought else []
    marks += [pytest.mark.keras] if "keras" in brought else []
    return marks


@pytest.mark.parametrize("block", [pytest.param(b, marks=_marks(b), id=b.where) for b in RUN])
def test_a_documented_block_runs_where_its_section_says(block: Block, tmp_path: Path) -> None:
    assert block.env is not None
    work = tmp_path / "work"
    shutil.copytree(ROOT / "specs", work / "specs")
    hidden = hidden_entries(block.env)
    env = {**os.environ, "PYTHONPATH": str(without(block.env, tmp_path / "install"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if block.language == "python":
        script = work / "example.py"
        torch_settings = "import torch\ntorch.backends.mkldnn.enabled = False\n"  # tests/conftest.py's
        script.write_text(("" if "torch" in hidden else torch_settings) + block.code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-e", "-u", "-o", "pipefail", "-c", block.code]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"{block.where} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"


# -- .ci/run and links ---------------------------------------------------------------------------------------------


def test_ci_finds_both_commands() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    function = re.search(r"^command_after\(\) \{\n.*?^\}\n", run, re.S | re.M)
    assert function, ".ci/run has no command_after()"
    for marker in CI_MARKERS:
        script = f"{function[0]}command_after {marker}\n"
        line = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        assert line.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e "), (marker, line)


def _prose(doc: Path) -> str:
    """A document without its fenced blocks."""
    return re.sub(r"^```.*?^```", "", doc.read_text(encoding="utf-8"), flags=re.S | re.M)


def _anchors(doc: Path) -> set[str]:
    """The fragments GitHub gives a document's headings."""
    from archgen.language.specdoc import anchor

    return {anchor(h) for h in re.findall(r"^#+ (.+)$", _prose(doc), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_link_resolves(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(doc)):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.relative_to(ROOT)}: the link {target} names no file"
        if fragment and linked.suffix == ".md":
            assert fragment in _anchors(linked), f"{doc.relative_to(ROOT)}: {target}: no such heading"
