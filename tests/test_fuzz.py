"""Property-based tests (hypothesis): random valid specs compile to the same network in every
form (IR, live torch, emitted torch, Keras), and damaged spec files compile or fail cleanly.

Budgets and seeds are profiles: ``ARCHGEN_FUZZ_PROFILE=ci`` (the default: fixed seed, bounded
examples, no database) or ``long`` (random seed, many examples); see docs/fuzzing.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from archgen.backends.keras import BACKEND as KERAS
from archgen.backends.torch import BACKEND as TORCH
from archgen.backends.torch.randomize import randomize_
from helpers import SPEC_DIR, SPEC_FILES
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st
from spec_strategies import DrawnSpec, Mutant, mutants, valid_specs

import archgen
from archgen import SpecError
from archgen.cli import main
from archgen.codegen.emit import emit, render
from archgen.ir import Conv, Network

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.fuzz, pytest.mark.slow]

# -- profiles -----------------------------------------------------------------------------------

_COMMON = dict(
    deadline=None,  # compile times vary with the machine's load; hangs are caught by time_limit instead
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
# ci: the same examples on every run (derandomize), nothing read from or written to .hypothesis/.
settings.register_profile("archgen-fuzz-ci", derandomize=True, database=None, **_COMMON)
# long: a fresh random seed each run; failures are saved in .hypothesis/ and replayed first next time.
settings.register_profile("archgen-fuzz-long", **_COMMON)
PROFILE = os.environ.get("ARCHGEN_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"ARCHGEN_FUZZ_PROFILE={PROFILE!r}: expected 'ci' or 'long'")
# Examples per test; ci is sized for about 2-3 minutes on 2 cores (docs/fuzzing.md has the figures).
BUDGET = {
    "ci": {"agree": 140, "damage": 1200, "cli": 600},
    "long": {"agree": 2000, "damage": 20_000, "cli": 3000},
}[PROFILE]
# ARCHGEN_FUZZ_EXAMPLES=N sets every test's budget to N (a quick local run, or a longer one).
EXAMPLES = os.environ.get("ARCHGEN_FUZZ_EXAMPLES")


def fuzz_settings(test: str) -> settings:
    examples = int(EXAMPLES) if EXAMPLES else BUDGET[test]
    return settings(settings.get_profile(f"archgen-fuzz-{PROFILE}"), max_examples=examples)


# -- helpers ------------------------------------------------------------------------------------

# Norm scales of the random weights: the nets are at most a few blocks deep, so the usual
# [0.5, 1.5] keeps activations at unit scale (test_keras.py needs smaller ones for 400 layers).
GAMMA = (0.5, 1.5)
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}
# A spec file is a few lines: compiling one may never take long (a hang is a bug, not a slow test).
COMPILE_SECONDS = 20


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise Hang after ``seconds`` (SIGALRM, so only where the test runs in the main thread, as pytest's do)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """The models here are tiny: with two threads on a loaded machine, torch's OpenMP barriers cost
    more than the work (a 30 kparam net: 2 s per randomize_ on 2 threads, 0.02 s on 1, measured)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def check_clean_error(exc: SpecError, folder: Path) -> None:
    """The clean error: every problem names a file and says something, on one line, at a real place."""
    assert exc.problems, "SpecError without problems"
    for p in exc.problems:
        assert isinstance(p.file, str) and p.file, f"problem without a file: {p!r}"
        assert isinstance(p.message, str) and p.message.strip(), f"problem without a message: {p!r}"
        assert isinstance(p.field, str), f"field is not a string: {p!r}"
        assert p.line is None or (isinstance(p.line, int) and p.line >= 1), f"bad line: {p!r}"
        assert p.column is None or (isinstance(p.column, int) and p.column >= 1), f"bad column: {p!r}"
        # The CLI prints one 'error: file:line:col: field: message' line per problem.
        assert "\n" not in str(p) and "\r" not in str(p), f"problem spans lines: {str(p)!r}"
        if p.file.startswith(("--set", "--input-size")):  # a command-line value: no file, no line
            continue
        # Every file here is a readable, small regular file: a problem is located in one of them, at a
        # line (docs/refused.md: no line only for unreadable, oversized or irregular files, or options).
        path = Path(os.path.realpath(p.file))  # a parent is shown as reached: folder/a/../b.yaml
        assert path.is_file() and path.resolve().is_relative_to(folder.resolve()), f"not a spec file: {p}"
        assert p.line is not None, f"no line: {p}"
        lines = path.read_bytes().count(b"\n") + 1
        assert p.line <= lines + 1, f"line {p.line} of a {lines}-line file: {p}"


def import_emitted(network: Network, spec_file: Path, folder: Path) -> torch.nn.Module:
    """What ``archgen emit`` writes, written to a file and imported from it (not via archgen)."""
    source = emit(network, "torch", str(spec_file))
    assert "import archgen" not in source and "from archgen" not in source
    file = folder / f"emitted_{network.digest[:16]}.py"
    file.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"fuzz_emitted_{network.digest[:16]}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model()


def torch_boundaries(model: torch.nn.Module, network: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """Eval-mode activations after the stem, every stage and the head (channels-first)."""
    found: dict[str, torch.Tensor] = {}
    points = {stage.name: stage.name for stage in network.stages}
    if network.stem:
        points[network.naming.group(network.stem[-1].name)] = "stem"  # the module that ends the stem
    hooks = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o, key=key: found.__setitem__(key, o))
        for name, key in points.items()
    ]
    try:
        with torch.no_grad():
            found["output"] = model.eval()(torch.from_numpy(x))
    finally:
        for hook in hooks:
            hook.remove()
    return {k: v.numpy() for k, v in found.items()}


def keras_boundaries(model: Any, network: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """The same points of a Keras model: its Identity layers named stem, layer1, ... (README)."""
    import keras

    points = ["stem"] * bool(network.stem) + [s.name for s in network.stages]
    # Keras names are the module paths with dots as underscores (stages.0 is stages_0)
    ends = [model.get_layer(p.replace(".", "_")).output for p in points]
    probe = keras.Model(model.inputs[0], [*ends, model.output])
    outs = probe(x.transpose(0, 2, 3, 1), training=False)
    found = {}
    for key, out in zip([*points, "output"], outs, strict=True):
        value = keras.ops.convert_to_numpy(out)
        found[key] = value.transpose(0, 3, 1, 2) if value.ndim == 4 else value
    return found


def boundary_errors(
    live: torch.nn.Module, kmodel: Any, network: Network, x: np.ndarray, dtype: str
) -> dict[str, float]:
    """max |torch - keras| / max(1, max |torch|) at every boundary, not only the logits: a global pool
    would hide a spatially wrong feature map. Weights must have been transferred already."""
    ref = torch_boundaries(live.to(getattr(torch, dtype)), network, x.astype(dtype))
    got = keras_boundaries(kmodel, network, x.astype(dtype))
    assert got.keys() == ref.keys()
    errors = {}
    for key, expected in ref.items():
        assert np.isfinite(expected).all() and got[key].shape == expected.shape, key
        errors[key] = float(np.abs(got[key] - expected).max()) / max(1.0, float(np.abs(expected).max()))
    return errors


def check_ir(drawn: DrawnSpec, network: Network) -> None:
    """The IR against what the spec says, read independently (channels, stages, output)."""
    assert network.input_shape == drawn.input_shape
    assert tuple(s.out_shape[0] for s in network.stages) == drawn.stage_channels
    if drawn.stem_channels is None:
        assert network.stem == ()
    else:
        assert network.stem[-1].out_shape[0] == drawn.stem_channels
    if drawn.classes is None:
        assert network.output_shape[0] == drawn.stage_channels[-1] and len(network.output_shape) == 3
    else:
        assert network.output_shape == (drawn.classes,)


# -- property A: every form of a valid spec is the same network -----------------------------------


@fuzz_settings("agree")
@given(drawn=valid_specs(), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16))
def test_random_specs_agree_across_ir_torch_emitted_and_keras(drawn: DrawnSpec, dtype: str, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "fuzz_spec.yaml"
        path.write_text(drawn.text, encoding="utf-8")
        try:
            _, network = archgen.compile_spec(path)
        except SpecError as exc:
            check_clean_error(exc, folder)
            allowed = [*drawn.refused, *drawn.may_refuse, *([r"input\.size"] if drawn.maybe_small else [])]
            assert any(re.fullmatch(a, exc.field) for a in allowed), f"a valid spec was refused: {exc}\n{drawn.text}"
            event("refused as expected")
            reject()
        assert not drawn.refused, f"accepted, but must be refused at {drawn.refused}:\n{drawn.text}"
        check_ir(drawn, network)
        counts = (network.trainable_params, network.stats)  # freeze takes some out of the gradient
        boundaries = network.boundaries()

        live = TORCH.build(network)
        assert TORCH.counts(live) == counts
        assert TORCH.trace(live, network) == boundaries
        emitted = import_emitted(network, path, folder)
        emitted.archgen_network = network  # same resolved spec: transfer_weights checks the digest
        assert TORCH.counts(emitted) == counts
        assert {k: v.shape for k, v in emitted.state_dict().items()} == {
            k: v.shape for k, v in live.state_dict().items()
        }
        kmodel = KERAS.build(network, dtype=dtype)  # every layer in the drawn dtype
        assert KERAS.counts(kmodel) == counts
        assert KERAS.trace(kmodel, network) == boundaries

        randomize_(live, network.input_shape, seed=seed, batches=2, batch_size=4, gamma=GAMMA)
        archgen.transfer_weights(live, emitted)
        archgen.transfer_weights(live, kmodel)
        x = np.random.default_rng(seed).standard_normal((2, *network.input_shape))
        with torch.no_grad():
            x32 = torch.from_numpy(x.astype(np.float32))
            assert torch.equal(emitted.eval()(x32), live.eval()(x32)), "the emitted model computes something else"
        for key, err in boundary_errors(live, kmodel, network, x, dtype).items():
            assert err <= TOLERANCE[dtype], f"{dtype}: torch vs Keras at {key}: {err:.3g} (relative)\n{drawn.text}"


# -- property B: damaged files compile, or fail with SpecError -------------------------------------

SHIPPED = {p.name: p.read_text(encoding="utf-8") for p in SPEC_FILES}


def _descendants() -> dict[str, list[str]]:
    """For each shipped spec, the shipped specs that extend it (directly or not)."""
    parent = {}
    for name, text in SHIPPED.items():
        match = re.search(r"^extends:\s*(\S+)", text, re.M)
        if match:
            parent[name] = match.group(1)
    out: dict[str, list[str]] = {}
    for name in SHIPPED:
        cur = name
        while cur in parent:
            cur = parent[cur]
            out.setdefault(cur, []).append(name)
    return out


DESCENDANTS = _descendants()


@contextlib.contextmanager
def written(mutant: Mutant) -> Iterator[Path]:
    """A copy of specs/ with the damaged files written over it; yields the file to compile."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "specs"
        shutil.copytree(SPEC_DIR, folder)
        for name, raw in mutant.files.items():
            (folder / name).write_bytes(raw)
        yield folder / mutant.target


def compile_or_error(target: Path, mutant: Mutant, input_size: Any = None) -> Network | SpecError:
    """compile_spec's network or its SpecError; any other exception fails the test, naming the input."""
    try:
        with time_limit(COMPILE_SECONDS):
            return archgen.compile_spec(target, list(mutant.overrides) or None, input_size)[1]
    except SpecError as exc:
        return exc
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} instead of SpecError for {mutant}") from exc


# What an accepted spec is small enough to build, to prove that 'valid' means 'builds'.
SMALL_FLOPS = 50_000_000


def has_empty_conv(network: Network) -> bool:
    return any(isinstance(x, Conv) and 0 in (x.out_ch, x.in_ch) for x in network.layers())


@fuzz_settings("damage")
@given(mutant=mutants(SHIPPED, DESCENDANTS))
def test_damaged_specs_compile_or_raise_spec_error(mutant: Mutant) -> None:
    with written(mutant) as target:
        result = compile_or_error(target, mutant, mutant.input_size)
        if isinstance(result, SpecError):
            check_clean_error(result, target.parent)
            event("SpecError")
            return
    event("accepted")
    network = result
    assert network.stages and network.output_shape == network.boundaries()["output"]
    assert json.loads(json.dumps(network.to_json()))["params"] == network.params  # what --json prints
    for backend in ("torch", "keras"):  # the emitted source of anything accepted is valid Python
        compile(render(network, backend, source="fuzz"), f"<{backend}>", "exec")
    assert not has_empty_conv(network), "a conv with no channels was accepted"
    if network.flops <= SMALL_FLOPS and network.params <= 5_000_000 and sum(1 for _ in network.layers()) <= 400:
        event("accepted and built")
        model = TORCH.build(network)
        assert TORCH.counts(model) == (network.trainable_params, network.stats)
        assert TORCH.trace(model, network) == network.boundaries()


@fuzz_settings("cli")
@given(mutant=mutants(SHIPPED, DESCENDANTS))
def test_cli_exits_0_or_2_without_traceback(mutant: Mutant) -> None:
    from click.testing import CliRunner

    # --input-size takes an integer from 1 to 8192 (click refuses anything else before archgen runs)
    size = mutant.input_size if isinstance(mutant.input_size, int) and 1 <= mutant.input_size <= 8192 else None
    with written(mutant) as target:
        result = compile_or_error(target, mutant, size)
        good: Path | None = None
        if mutant.overrides or size is not None:  # summary takes --set and --input-size
            args = ["summary", str(target), *(f"--set={o}" for o in mutant.overrides)]
            args += [f"--input-size={size}"] if size is not None else []
            run = CliRunner().invoke(main, args, catch_exceptions=False)
        else:  # validate goes on after a bad file: a good one (no 'extends') given after it is still checked
            good = target.parent / ("resnet18.yaml" if "resnet18.yaml" not in mutant.files else "imagenette_cnn.yaml")
            run = CliRunner().invoke(main, ["validate", str(target), str(good)], catch_exceptions=False)
    assert "Traceback" not in run.output
    if good is not None:
        assert f"ok: {good}" in run.stdout
    if isinstance(result, SpecError):
        assert run.exit_code == 2, run.output
        lines = run.stderr.splitlines()
        assert lines == [f"error: {p}" for p in result.problems], run.stderr
    else:
        assert run.exit_code == 0, run.output
        assert run.stderr == ""
        if good is not None:
            assert f"ok: {target} ({result.name}, {result.params:,} params)" in run.stdout
