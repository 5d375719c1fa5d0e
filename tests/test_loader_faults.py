"""Inputs that must neither hang nor crash the loader: a flood of problems, YAML 1.1's other readings of
numbers and booleans, overrides the loader cannot apply, symbolic links and folders where a spec is
expected, and inputs that would need more memory than the limits (or the machine) allow."""

from __future__ import annotations

import errno
import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, run_archgen, spec_path

import archgen
from archgen import SpecError, load_spec
from archgen.compiler.resolve import MAX_ACTIVATIONS
from archgen.errors import RunError
from archgen.language import catalog, loader, messages, yamlsource


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def error_of(source: Any, overrides: Any = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(source, overrides)
    return info.value


def unknown_keys(count: int) -> str:
    """A valid spec with ``count`` unknown top-level keys, one per line from line 3."""
    return "block: basic\nstages: 18\n" + "".join(f"x{i}: 0\n" for i in range(count))


def best_time(run: Any, repeats: int = 3) -> float:
    """The fastest of a few runs: what the work costs, less the other processes' share of the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


# -- a flood of problems: linear, and capped --------------------------------------------------------------


def test_a_hundred_thousand_unknown_keys_are_refused_in_seconds_with_a_capped_report(tmp_path: Path) -> None:
    """Measured on the 2-core machine: 11 s of CPU for the whole command (9 s of it PyYAML's parser reading
    the 1 MB file), where the quadratic de-duplication took 49 s for 30,000 keys and over 120 s for 105,000.
    The bound is on the command's CPU time, which other processes sharing the machine do not inflate as
    they do its wall time; the wall time only has to show that nothing hangs."""
    spec = write(tmp_path, "flood.yaml", unknown_keys(100_000))
    assert spec.stat().st_size <= yamlsource.MAX_BYTES  # refused for its keys, not its size
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = run_archgen(["validate", spec], timeout=120)
    after, elapsed = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - start
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == messages.MAX_PROBLEMS + 1 == 51, lines[-3:]
    assert lines[0] == f"error: {spec}:3:1: x0: unknown field 'x0'"
    assert lines[49] == f"error: {spec}:52:1: x49: unknown field 'x49'"
    assert lines[50] == f"error: {spec}: ... and 99,950 more problems (the first 50 are listed)"
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert cpu < 20, f"refusing 100,000 unknown keys took {cpu:.1f} s of CPU ({elapsed:.1f} s of wall time)"
    assert elapsed < 60, f"refusing 100,000 unknown keys took {elapsed:.1f} s"


def test_collecting_problems_is_linear() -> None:
    """Four times the unknown keys cost about four times as long (sixteen if quadratic), with no YAML read."""

    def refuse(count: int) -> None:
        with pytest.raises(SpecError):
            load_spec({"name": "n", "block": "basic", "stages": 18, **{f"x{i}": 0 for i in range(count)}})

    small, large = best_time(lambda: refuse(5_000)), best_time(lambda: refuse(20_000))
    assert large < 8 * small, f"5,000 keys: {small:.3f} s, 20,000 keys: {large:.3f} s"


def test_reading_yaml_is_linear() -> None:
    """PyYAML's parser is slow (about 10 s a megabyte of short keys here) but linear; it reads a file once."""
    texts = {count: unknown_keys(count) for count in (2_500, 10_000)}
    small, large = (best_time(lambda text=text: yamlsource.parse_yaml(text, "x.yaml")) for text in texts.values())
    assert large < 8 * small, f"2,500 keys: {small:.3f} s, 10,000 keys: {large:.3f} s"


@pytest.mark.parametrize(
    ("count", "last"), [(50, None), (51, "... and 1 more problem "), (60, "... and 10 more problems")]
)
def test_the_report_lists_the_first_problems_in_reading_order_and_counts_the_rest(
    tmp_path: Path, count: int, last: str | None
) -> None:
    spec = write(tmp_path, "s.yaml", unknown_keys(count))
    problems = error_of(spec).problems
    listed = problems if last is None else problems[:-1]
    assert [(p.line, p.field) for p in listed] == [(3 + i, f"x{i}") for i in range(min(count, 50))]
    if last is not None:
        assert (problems[-1].file, problems[-1].line, problems[-1].field) == (str(spec), None, "")
        assert problems[-1].message.startswith(last) and "(the first 50 are listed)" in problems[-1].message
    out = invoke(["validate", spec], code=2).stderr.splitlines()
    assert out == [f"error: {p}" for p in problems]


def test_a_misspelt_field_among_many_unknown_keys_still_explains_the_missing_one(tmp_path: Path) -> None:
    """'widht' is unknown and so 'width' is missing: one problem, as with one unknown key, however many
    others there are (their did-you-mean is made only for those listed)."""
    text = "block: basic\nstages:\n  - {depth: 1, widht: 64}\n" + "".join(f"x{i}: 0\n" for i in range(3000))
    problems = error_of(write(tmp_path, "s.yaml", text)).problems
    assert [(p.line, p.field, p.message) for p in problems[:2]] == [
        (3, "stages.0.widht", "unknown field 'widht'; did you mean 'width'?"),
        (4, "x0", "unknown field 'x0'"),
    ]
    assert all(p.field != "stages.0.width" for p in problems)
    assert problems[-1].message.startswith("... and 2,951 more problems")


# -- YAML 1.1's other readings --------------------------------------------------------------------------------

YAML_11 = [
    # (value, field line, message)
    (
        "010",
        "stages: [{depth: 010, width: 64}]",
        "'010' is a YAML 1.1 octal number (8), which YAML 1.2 reads as 10: write 8 or 10",
    ),
    (
        "0_10",
        "stages: [{depth: 0_10, width: 64}]",
        "'0_10' is a YAML 1.1 octal number (8), which YAML 1.2 reads as text: write 8",
    ),
    (
        "08",
        "stages: [{depth: 08, width: 64}]",
        "'08' has a leading zero, which makes it text to YAML 1.1 and 8 to YAML 1.2: write 8",
    ),
    (
        "0b101",
        "stages: [{depth: 0b101, width: 64}]",
        "'0b101' is a YAML 1.1 binary number (5), which YAML 1.2 reads as text: write 5",
    ),
    ("0x1F", "stages: [{depth: 0x1F, width: 64}]", "'0x1F' is a hexadecimal number (31): write it in decimal, 31"),
    (
        "0o17",
        "stages: [{depth: 0o17, width: 64}]",
        "'0o17' is a YAML 1.2 octal number (15), which YAML 1.1 reads as text",
    ),
    (
        "1_000",
        "stages: [{depth: 1_000, width: 64}]",
        "'1_000' is a YAML 1.1 number with '_' separators (1000), which YAML 1.2 reads as text: write 1000",
    ),
    (
        "1:30",
        "stages: [{depth: 1:30, width: 64}]",
        "'1:30' is a YAML 1.1 base-60 number (90), which YAML 1.2 reads as text: write 90, or quote it for text",
    ),
    (
        "1:30.5",
        "stages: [{depth: 2, width: 64}]\nnorm: {momentum: 1:30.5}",
        "'1:30.5' is a YAML 1.1 base-60 number (90.5)",
    ),
    (
        "0_0.5",
        "stages: [{depth: 2, width: 64}]\nnorm: {momentum: 0_0.5}",
        "'0_0.5' is a YAML 1.1 number with '_' separators (0.5)",
    ),
    (
        "yes",
        "stages: 18\ninit: {zero_init_last: yes}",
        "'yes' is a YAML 1.1 boolean (true), which YAML 1.2 reads as text: write true, or quote it for text",
    ),
    (
        "Off",
        "stages: 18\ninit: {zero_init_last: Off}",
        "'Off' is a YAML 1.1 boolean (false), which YAML 1.2 reads as text: write false",
    ),
    ("on", "stages: 18\ndescription: on", "'on' is a YAML 1.1 boolean (true)"),
]


@pytest.mark.parametrize(("value", "body", "message"), YAML_11, ids=[v for v, _, _ in YAML_11])
def test_yaml_1_1_forms_are_refused_at_their_line_and_field(
    tmp_path: Path, value: str, body: str, message: str
) -> None:
    spec = write(tmp_path, "s.yaml", f"block: basic\n{body}\n")
    err = error_of(spec)
    line = 2 + body.count("\n")
    text = spec.read_text().splitlines()[line - 1]
    field = {"stages": "stages.0.depth", "norm": "norm.momentum", "init": "init.zero_init_last"}.get(
        text.split(":")[0], "description"
    )
    assert (err.file, err.line, err.column, err.field) == (str(spec), line, text.rindex(value) + 1, field)
    assert err.message.startswith(message), err.message
    assert len(err.problems) == 1


@pytest.mark.parametrize(("value", "field", "message"), [(v, "stages.0.depth", m) for v, _, m in YAML_11[:8]])
def test_yaml_1_1_forms_are_refused_in_overrides(value: str, field: str, message: str) -> None:
    err = error_of(spec_path("resnet18"), [f"{field}={value}"])
    assert (err.file, err.line, err.field) == (f"--set {field}={value}", None, field)
    assert err.message.startswith(message)
    out = invoke(["summary", "resnet18", "--set", f"{field}={value}"], code=2).stderr
    assert out.startswith(f"error: --set {field}={value}: {field}: {message}")


def test_yaml_1_2_forms_mean_what_they_say(tmp_path: Path) -> None:
    """Plain integers, floats (1e-5 and -.5 too, as YAML 1.2 reads them), null, true and false; a quoted
    form is text, as in any YAML; .inf and .nan are numbers in both versions (the fields' bounds refuse them)."""
    data, _ = yamlsource.parse_yaml(
        "a: [0, -0, +7, 12, 224, 1e-5, 0.1, -.5, +.5, 1., 1.e3, .inf, -.Inf, ~, null, true, False]\n"
        "b: ['010', \"1:30\", 'yes', '0x1F', off-the-shelf, 1:x, 0b2, 08x]\n",
        "x.yaml",
    )
    assert data["a"][:11] == [0, 0, 7, 12, 224, 1e-5, 0.1, -0.5, 0.5, 1.0, 1000.0]
    assert [type(v) for v in data["a"][:5]] == [int] * 5 and data["a"][11:13] == [float("inf"), float("-inf")]
    assert data["a"][13:] == [None, None, True, False]
    assert data["b"] == ["010", "1:30", "yes", "0x1F", "off-the-shelf", "1:x", "0b2", "08x"]
    spec = load_spec(write(tmp_path, "s.yaml", "block: {type: basic, preact: true}\nstages: 18\nnorm: {eps: 1e-5}\n"))
    assert spec.block.preact is True and spec.norm.eps == 1e-5
    err = error_of(write(tmp_path, "q.yaml", "block: basic\nstages: [{depth: '010', width: 64}]\n"))
    assert (err.field, err.message) == ("stages.0.depth", "expected an integer; received '010'")
    err = error_of(write(tmp_path, "i.yaml", "block: basic\nstages: 18\nwidth_multiplier: .inf\n"))
    assert (err.field, err.message) == ("width_multiplier", "expected a number less than or equal to 16; received .inf")


def test_a_yaml_1_1_form_through_the_cli(tmp_path: Path) -> None:
    spec = write(tmp_path, "s.yaml", "block: basic\nstages: 18\nhead: {classes: 1_000}\n")
    out = invoke(["validate", spec], code=2).stderr
    assert out == (
        f"error: {spec}:3:17: head.classes: '1_000' is a YAML 1.1 number with '_' separators (1000), "
        "which YAML 1.2 reads as text: write 1000\n"
    )


# -- overrides the loader cannot apply -------------------------------------------------------------------------


@pytest.mark.parametrize("override", ["extends=resnet18", "extends=null", "extends.x=1", "extends=[a]"])
def test_an_override_of_extends_is_refused(override: str) -> None:
    err = error_of(spec_path("resnet50d"), [override])
    assert (err.file, err.line, err.field) == (f"--set {override}", None, override.split("=")[0])
    assert err.message.startswith("'extends' cannot be set by an override: the parents are read with the file")
    out = invoke(["summary", "resnet50d", "--set", override], code=2).stderr
    assert out.startswith(f"error: --set {override}: ") and "Traceback" not in out
    assert "archgen new NAME --from resnet18" in error_of(spec_path("resnet50"), ["extends=resnet18"]).message


def test_an_override_of_extends_in_a_mapping_or_for_a_mapping_is_refused(tmp_path: Path) -> None:
    err = error_of(spec_path("resnet50"), {"extends": "resnet18"})
    assert (err.file, err.field) == ("overrides={'extends': 'resnet18'}", "extends")
    err = error_of({"name": "n", "extends": "resnet50"}, ["extends=resnet18"])
    assert (err.file, err.field) == ("--set extends=resnet18", "extends")


def test_the_overrides_the_loader_treats_specially_still_apply() -> None:
    spec = load_spec(spec_path("resnet50"), ["tweaks=[D]", "name=renamed", "description=x"])
    assert spec.tweaks == ["D"] and spec.block.shortcut.type == "avgpool"
    assert (spec.name, spec.description) == ("renamed", "x")


# -- symbolic links and folders where a spec is expected ------------------------------------------------------


def test_a_symbolic_link_loop_as_the_spec_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink("loop", "loop")
    with pytest.raises(LookupError, match="'loop' is a symbolic link loop: it never reaches a file"):
        catalog.locate("loop")
    err = error_of("loop")
    assert (err.file, err.line, err.field, err.message) == (
        "loop",
        None,
        "",
        "'loop' is a symbolic link loop: it never reaches a file",
    )
    for command in (["validate", "loop"], ["summary", "loop"], ["emit", "loop"], ["new", "x", "--from", "loop"]):
        out = invoke(command, code=2, catch_exceptions=False).output
        assert "is a symbolic link loop" in out and "Traceback" not in out, command


def test_a_symbolic_link_loop_on_the_way_to_the_spec_or_its_parent_is_refused(tmp_path: Path) -> None:
    os.symlink("cycle_b", tmp_path / "cycle_a")
    os.symlink("cycle_a", tmp_path / "cycle_b")
    inside = tmp_path / "cycle_a" / "s.yaml"
    err = error_of(inside)
    assert (err.file, err.field) == (str(inside), "")
    assert err.message == f"cannot read file: {os.strerror(errno.ELOOP)}"
    child = write(tmp_path, "child.yaml", "block: basic\nextends: cycle_a\n")
    os.symlink("cycle_a", tmp_path / "cycle_a.yaml")
    err = error_of(child)
    assert (err.file, err.line, err.field) == (str(child), 2, "extends")
    assert err.message == f"'cycle_a' is not a usable file path ({os.strerror(errno.ELOOP)})"
    out = invoke(["validate", child], code=2, catch_exceptions=False).stderr
    assert out.startswith(f"error: {child}:2:1: extends: ")


def test_a_folder_given_as_a_spec_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet50").mkdir()  # a folder named like a shipped spec wins over it, and is refused
    with pytest.raises(LookupError, match="'resnet50' is a folder, not a spec file"):
        catalog.locate("resnet50")
    assert error_of("resnet50").message == "'resnet50' is a folder, not a spec file"
    os.symlink("resnet50", "link.yaml")  # also through a link
    assert error_of("link.yaml").message == "'link.yaml' is a folder, not a spec file"


def test_a_file_where_a_folder_is_expected_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "plain.yaml", "block: basic\nstages: 18\n")
    err = error_of(tmp_path / "plain.yaml" / "s.yaml")
    assert err.message == f"cannot read file: {os.strerror(errno.ENOTDIR)}"
    child = write(tmp_path, "child.yaml", "extends: plain.yaml/s.yaml\n")
    err = error_of(child)
    assert (err.line, err.field) == (1, "extends")
    assert err.message == "parent spec 'plain.yaml/s.yaml' not found"


BASE = "block: basic\nstages: 18\n"


def test_a_linked_spec_finds_its_parents_beside_the_link(tmp_path: Path) -> None:
    """Parents are looked up beside the path as given, as a shell user reads 'extends: base.yaml' (and
    as the file is shown in messages), and must lie in that folder: before, they were looked up there
    but required beside the link's target, so a linked spec could never extend anything."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    write(elsewhere, "child.yaml", "extends: base.yaml\nhead: {classes: 10}\n")
    os.symlink(elsewhere / "child.yaml", work / "child.yaml")
    write(work, "base.yaml", BASE)
    spec = load_spec(work / "child.yaml")
    assert (spec.name, spec.head.classes, [s.depth for s in spec.stages]) == ("child", 10, [2, 2, 2, 2])
    (work / "base.yaml").unlink()
    write(elsewhere, "base.yaml", BASE)  # beside the target only: not where the link's reader looks
    err = error_of(work / "child.yaml")
    assert (err.file, err.line, err.field) == (str(work / "child.yaml"), 1, "extends")
    assert err.message.startswith("parent spec 'base.yaml' not found")
    assert load_spec(elsewhere / "child.yaml").head.classes == 10  # the target itself, by its own path


def test_a_linked_parent_finds_its_own_parents_beside_the_link(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    (folder / "sub").mkdir(parents=True)
    write(folder / "sub", "real.yaml", "extends: grand.yaml\nhead: {classes: 7}\n")
    os.symlink("sub/real.yaml", folder / "parent.yaml")
    write(folder, "grand.yaml", BASE)
    child = write(folder, "child.yaml", "extends: parent.yaml\n")
    spec, positions = loader.load_spec_with_positions(child)
    assert spec.head.classes == 7
    assert positions.find(("block",)) == yamlsource.Pos(str(folder / "grand.yaml"), 1, 1)  # as shown
    # The real path of a parent still has to lie inside the spec folder, links followed.
    write(tmp_path, "outside.yaml", BASE)
    os.symlink(tmp_path, folder / "up")
    escape = write(folder, "escape.yaml", "extends: up/outside.yaml\n")
    assert error_of(escape).message == f"'up/outside.yaml' lies outside the spec folder {folder.resolve()}"


def test_a_spec_in_a_linked_folder_extends_as_before(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    write(real, "base.yaml", BASE)
    write(real, "child.yaml", "extends: base.yaml\nhead: {classes: 3}\n")
    os.symlink(real, tmp_path / "linked")
    assert load_spec(tmp_path / "linked" / "child.yaml").head.classes == 3


# -- memory: the input tensor counts, and every allocation is guarded -----------------------------------------


def test_an_input_over_the_activation_limit_on_its_own_is_refused_by_validate(tmp_path: Path) -> None:
    spec = write(tmp_path, "s.yaml", "block: basic\nstages: 18\ninput: {channels: 4096, size: 8192}\n")
    result = run_archgen(["validate", spec])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"error: {spec}:3:1: input: the input alone, 4096x8192x8192, is 274,877,906,944 elements for one "
        "sample, over the limit of 17,179,869,184 activation elements (64 GiB of float32): reduce input.size "
        "or input.channels\n"
    )
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(
            write(tmp_path, "t.yaml", "block: basic\nstages: 18\ninput: {channels: 4096}\n"), None, 4096
        )
    assert (info.value.file, info.value.field) == ("--input-size 4096", "input")


def test_a_small_network_on_a_huge_input_is_refused_for_the_input(tmp_path: Path) -> None:
    """The layers alone are far under the limit (a stride-16 stem leaves 8x128x128); the 4096x2048x2048
    input is 2**34 elements by itself, so the total passes the limit at the stem."""
    body = "block: basic\nstem: {width: 8, kernel: 3, stride: 16, pool: none}\nstages: [{depth: 1, width: 8}]\n"
    small = write(tmp_path, "small.yaml", body + "input: {channels: 64, size: 2048}\n")
    _, network = archgen.compile_spec(small)
    layers = sum(x.out_shape[0] * x.out_shape[1] * x.out_shape[2] for x in network.layers() if len(x.out_shape) == 3)
    assert layers < MAX_ACTIVATIONS // 1000
    huge = write(tmp_path, "huge.yaml", body + "input: {channels: 4096, size: 2048}\n")
    assert 4096 * 2048 * 2048 == MAX_ACTIVATIONS
    result = run_archgen(["validate", huge])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {huge}:4:25: input.size: 17,180,262,400 activation elements")
    assert (
        "up to the stem, over the limit of 17,179,869,184 (64 GiB of float32), the input's 17,179,869,184 included"
        in result.stderr
    )


def test_the_dummy_batch_of_build_is_allocated_inside_the_memory_guard(tmp_path: Path) -> None:
    """A tiny network on a 64x4096x4096 input passes the IR's limits (1.1 G elements); its dummy batch
    of 2 is 8 GiB of float32, which 2 GiB of data cannot hold: exit 3 and one line, not a traceback."""
    spec = write(
        tmp_path,
        "wide_input.yaml",
        "block: basic\ninput: {channels: 64, size: 4096}\nstem: {width: 8, kernel: 3, stride: 16, pool: none}\n"
        "stages: [{depth: 1, width: 8}]\nhead: {classes: 10}\n",
    )
    result = run_archgen(["build", spec], data_limit=2 << 30)
    assert result.returncode == 3, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: out of memory running wide_input on a batch of 2 at 4096x4096 (")


def test_a_failed_build_inside_bench_is_reported_once(tmp_path: Path) -> None:
    """bench's guard covers the backend's side (its random batch, the steps); the build inside it has
    its own guard, whose message passes as it is instead of being wrapped in a second one."""
    result = run_archgen(
        ["bench", "resnet18", "--set", "width_multiplier=8", "--input-size", "32", "--iters", "1", "--warmup", "0"],
        data_limit=2 << 30,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory building resnet18"), lines
    assert lines[0].count("out of memory") == 1, lines[0]


class _NoMemory:
    """Stands for numpy's Generator: every draw fails as a too-large allocation does."""

    def standard_normal(self, *args: Any, **kwargs: Any) -> Any:
        raise MemoryError("Unable to allocate 8.00 GiB for an array")


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_trace_batch_of_each_backend_is_guarded(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from archgen import registry

    impl = registry.get(backend)
    network = archgen.compile_spec(spec_path("resnet18"), input_size=32)[1]
    monkeypatch.setattr(np.random, "default_rng", lambda *args: _NoMemory())
    with pytest.raises(
        RunError, match=r"^out of memory running resnet18 on a batch of 2 at 32x32 \(Unable to allocate"
    ):
        impl.trace(None, network)


def test_compare_guards_what_it_allocates(monkeypatch: pytest.MonkeyPatch) -> None:
    from archgen import registry
    from archgen.runtime import compare

    network = archgen.compile_spec(spec_path("resnet18"), ["head.classes=10"], 32)[1]
    torch_backend = registry.get("torch")

    def no_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryError("cannot allocate memory")

    monkeypatch.setattr(torch_backend, "randomize", no_memory)
    with pytest.raises(
        RunError, match=r"^out of memory giving random weights to resnet18 in torch on a batch of 8 at 32x32"
    ):
        compare.compare_fused(network)
    monkeypatch.undo()
    monkeypatch.setattr(compare, "compare_models", no_memory)
    with pytest.raises(RunError, match=r"^out of memory running resnet18 in torch, unfused and fused, on a batch of 2"):
        compare.compare_fused(network)


def test_limits_are_counted_from_the_input() -> None:
    """The figures of the activation refusal include the input: ResNet-50 at 8192 px."""
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(spec_path("resnet50"), None, 8192)
    assert info.value.message.startswith("20,333,985,792 activation elements for one 8192x8192 sample up to layer1.2")
    assert "the input's 201,326,592 included" in info.value.message


def test_a_folder_of_specs_that_is_none_says_why(tmp_path: Path) -> None:
    """catalog.folder, for --specs: a file, a link loop or a missing path is a LookupError naming it."""
    write(tmp_path, "plain.yaml", BASE)
    os.symlink("loop", tmp_path / "loop")
    cases = {
        tmp_path / "plain.yaml": f"'{tmp_path / 'plain.yaml'}' is a file, not a folder of specs",
        tmp_path / "loop": f"'{tmp_path / 'loop'}' is a symbolic link loop: it never reaches a folder",
        tmp_path / "gone": f"folder '{tmp_path / 'gone'}' does not exist",
        tmp_path / "plain.yaml" / "x": f"folder '{tmp_path / 'plain.yaml' / 'x'}' does not exist",
    }
    for path, message in cases.items():
        with pytest.raises(LookupError) as info:
            catalog.folder(path)
        assert info.value.args[0] == message
    assert catalog.folder(tmp_path) == tmp_path


QUOTE = ["08", "0o17", "1e5", "-.5", "yes", "010", "1:30", "null", "a: b", ""]


@pytest.mark.parametrize(
    ("text", "plain"), [("basic", True), ("ResNet-50, as timm's", True), *((text, False) for text in QUOTE)]
)
def test_reads_back_tells_a_writer_which_strings_to_quote(text: str, plain: bool) -> None:
    """archgen new writes specs with PyYAML's dumper, which leaves '08' or '1e5' unquoted: YAML 1.1 reads
    them as text, archgen (as YAML 1.2) as a refused form or a number. reads_back says which to quote."""
    assert yamlsource.reads_back(text) is plain
    if not plain:  # quoted, every one reads back as text
        assert yamlsource.parse_yaml(f"v: '{text}'", "x.yaml")[0] == {"v": text}
