"""What a new user hits first in the spec language, through the CLI and the Python API alike.

- a typo in a short form (``stem: dep``) in a child of a shipped spec is blamed on the child, at the line
  that wrote it, never on the shipped parent whose field it replaced;
- small inputs: archgen refuses exactly what PyTorch refuses (no input size from 1 pixel up, for any
  network of the language), and the IR's shapes are PyTorch's and Keras' at the smallest sizes;
- a user's folder of specs: ``extends`` reaches any spec inside the project root (the nearest folder
  above holding ``.archgen``, ``.git`` or ``pyproject.toml``), never outside it, never an absolute path
  or a file that is no ``.yaml``; a bare name prefers a file beside the spec, and ``archgen:NAME`` is
  always the shipped spec (which the cycle message says);
- the Python API names an override as it was written (``head__clases=3``), not as a ``--set``;
- messages show values as YAML writes them (``true``, ``null``), an unknown tweak beside a contradicting
  one is reported too, a misspelt or mis-cased shipped spec gets a did-you-mean, and ``head.classes: 0``
  says that ``head: features`` is how to have no classifier.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, invoke, spec_path

import archgen
from archgen import SpecError
from archgen.compiler.resolve import Rules, avg_pool, conv, max_pool, pooled_size
from archgen.ir import AvgPool, MaxPool, Network
from archgen.language import catalog


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(source: Any, overrides: Any = None, input_size: Any = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        archgen.compile_spec(source, overrides, input_size)
    return info.value


def errors(args: list[object]) -> list[str]:
    """The ``error:`` lines of a CLI run that must exit 2."""
    result = invoke(args, code=2)
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


# -- 1. a short-form typo in a child of a shipped spec is the child's ------------------------------------------

SHORT_FORM_TYPOS = [
    ("stem", "dep", "unknown type 'dep'; expected 'classic', 'deep', 'none'; did you mean 'deep'?"),
    (
        "block",
        "bottlenek",
        "unknown type 'bottlenek'; expected 'basic', 'bottleneck', 'plain'; did you mean 'bottleneck'?",
    ),
    ("head", "featurs", "unknown type 'featurs'; expected 'classifier', 'features'; did you mean 'features'?"),
]


@pytest.mark.parametrize(("field", "typo", "message"), SHORT_FORM_TYPOS, ids=[t[0] for t in SHORT_FORM_TYPOS])
def test_a_short_form_typo_in_a_child_is_blamed_on_the_child(
    tmp_path: Path, field: str, typo: str, message: str
) -> None:
    """resnet50 extends resnet18, whose 'stem: {type: classic}' the child's 'stem: dep' replaced: the
    problem was once located at resnet18.yaml:4:8, by absolute path, and the user's file never named."""
    child = write(tmp_path, "mine.yaml", f"extends: resnet50\nhead: {{classes: 10}}\n{field}: {typo}\n")
    if field == "head":
        child = write(tmp_path, "mine.yaml", f"extends: resnet50\n{field}: {typo}\n")
    line = child.read_text().splitlines().index(f"{field}: {typo}") + 1
    err = error_of(child)
    assert [(p.file, p.line, p.column, p.field, p.message) for p in err.problems] == [
        (str(child), line, 1, f"{field}.type", message)
    ]
    assert errors(["validate", child]) == [f"error: {child}:{line}:1: {field}.type: {message}"]


def test_the_mapping_form_and_an_override_of_a_short_form_are_located_where_written(tmp_path: Path) -> None:
    child = write(tmp_path, "mine.yaml", "extends: resnet50\nblock: {type: bottlenek}\n")
    assert (error_of(child).line, error_of(child).column, error_of(child).field) == (2, 9, "block.type")
    # A short form given as an override: the override, with the field the file form names.
    err = error_of("resnet50", ["stem=dep"])
    assert (err.file, err.line, err.field) == ("--set stem=dep", None, "stem.type")
    assert errors(["summary", "resnet50", "--set", "stem=dep"])[0].startswith("error: --set stem=dep: stem.type: ")


def test_a_list_a_child_replaces_is_the_childs(tmp_path: Path) -> None:
    """A child's 'stages' replaces its parent's list whole: a width missing in it is the child's."""
    write(tmp_path, "base.yaml", "block: bottleneck\nstages:\n  - {depth: 1, width: 8}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nstages: [{depth: 1}]\n")
    err = error_of(child)
    assert (err.file, err.line, err.column, err.field) == (str(child), 2, 10, "stages.0.width")
    # A scalar over a parent's list likewise (a preset), and what the parent wrote stays the parent's.
    write(tmp_path, "deep.yaml", "block: bottleneck\nstages:\n  - {depth: 1, width: 8}\nnorm: {eps: 0}\n")
    child = write(tmp_path, "preset.yaml", "extends: deep.yaml\nstages: 50\n")
    err = error_of(child)
    assert (Path(err.file).name, err.line, err.field) == ("deep.yaml", 4, "norm.eps")


# -- 2. small inputs: refused exactly where PyTorch refuses -----------------------------------------------------

SMALL_SPECS = ["resnet50", "resnet50d", "resnetrs50", "resnet50v2", "keras_resnet50"]
# The pools each of them has, whose arithmetic differs from a conv's (ceil mode, -inf or zero padding).
POOLS = {
    "resnet50": {MaxPool},
    "resnet50d": {MaxPool, AvgPool},
    "resnetrs50": {AvgPool},
    "resnet50v2": {MaxPool},
    "keras_resnet50": {MaxPool},
}


@pytest.mark.torch
def test_resnet50_builds_at_16_pixels() -> None:
    """'archgen build resnet50 --input-size 16' was refused ("layer4.0.conv2: spatial size reaches zero (1x1
    input to a 3x3 conv, stride 2)"), though a 3x3/2 conv padded by 1 maps 1x1 to 1x1 and torchvision's
    resnet50 runs at 16 px (and at 1)."""
    result = invoke(["build", "resnet50", "--input-size", "16"])
    assert "ok: torch model matches the IR" in result.stdout
    _, network = archgen.compile_spec("resnet50", input_size=16)
    assert network.stages[-1].out_shape == (2048, 1, 1)
    assert archgen.compile_spec("resnet18", input_size=1)[1].output_shape == (1000,)


def ir_vs_torch(model: Any, network: Network, size: tuple[int, int]) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Every IR layer that is a module of the model: (the IR's output shape, the module's in a forward
    pass at ``size``, batch 1, eval mode)."""
    import torch

    modules = dict(model.named_modules())
    found: dict[str, Any] = {}
    hooks = [
        modules[layer.name].register_forward_hook(
            lambda m, i, o, name=layer.name: found.__setitem__(name, tuple(o.shape[1:]))
        )
        for layer in network.layers()
        if layer.name in modules
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.randn(1, network.input_shape[0], *size))
    finally:
        for hook in hooks:
            hook.remove()
    return {layer.name: (layer.out_shape, found.get(layer.name)) for layer in network.layers() if layer.name in modules}


@pytest.mark.torch
@pytest.mark.parametrize("name", SMALL_SPECS)
def test_the_irs_shapes_are_torchs_down_to_one_pixel(name: str) -> None:
    """At 16, 8, 2 and 1 px and a 1x3 strip, every layer's output shape in the IR is the one the PyTorch
    model computes, the ceil-mode average pool (ResNet-D), the stride-on-1x1 bottleneck (Keras V1) and the
    pre-activation and max-pool shortcuts (V2) included."""
    model = archgen.build(name, input_size=1)
    for size in [(16, 16), (8, 8), (2, 2), (1, 1), (1, 3)]:
        _, network = archgen.compile_spec(name, input_size=size)
        shapes = ir_vs_torch(model, network, size)
        assert len(shapes) == len(list(network.layers())), "every layer of the IR is a module, and checked"
        assert POOLS[name] <= {type(network.layer(n)) for n in shapes}
        wrong = {n: s for n, s in shapes.items() if s[0] != s[1]}
        assert not wrong, f"{name} at {size}: IR vs torch {wrong}"


@pytest.mark.torch
def test_the_reference_models_agree_at_one_pixel() -> None:
    """torchvision's resnet50 and timm's resnet50d and resnetrs50 (the names are theirs) give the IR's
    shapes at 1 px, module by module."""
    import timm
    import torchvision

    references = {
        "resnet50": torchvision.models.resnet50(),
        "resnet50d": timm.create_model("resnet50d"),
        "resnetrs50": timm.create_model("resnetrs50"),
    }
    for name, model in references.items():
        _, network = archgen.compile_spec(name, input_size=1)
        shapes = ir_vs_torch(model, network, (1, 1))
        assert len(shapes) > 100, name
        assert all(ir == ref for ir, ref in shapes.values()), name


@pytest.mark.torch
@pytest.mark.parametrize("name", ["resnet50", "resnet50d"])
def test_one_size_smaller_is_refused_as_torch_raises(name: str) -> None:
    """1 px is the smallest input torch takes for these networks; 0 px is the next size down: archgen
    refuses it (CLI and API), and torch raises on it."""
    import torch

    model = archgen.build(name, input_size=1)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 1, 1)).shape == (1, 1000)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, 0, 0))
    err = error_of(name, input_size=0)
    assert (err.file, err.field) == ("--input-size 0", "input.size") and "from 1 to 8192" in err.message
    err = error_of(name, ["input.size=0"])
    assert (err.file, err.field) == ("--set input.size=0", "input.size")


@pytest.mark.torch
def test_the_shape_arithmetic_refuses_exactly_what_torch_refuses() -> None:
    """Conv (dilated too), max pool and the ceil-mode average pool of every kernel, stride and input size
    the language can produce: the IR's output size is torch's and never empty (nothing refused), as torch
    never raises. The arithmetic itself (``pooled_size``) is torch's also where torch does refuse: an
    unpadded window larger than the input, whose output ``check_size`` refuses, as torch does."""
    import torch
    import torch.nn.functional as F

    from archgen.ir import NormOptions

    r = Rules(NormOptions(1e-5, 0.1), "relu", "never", (64, 64))
    checked = 0
    for n in range(1, 10):
        x = torch.zeros(1, 2, n, n)
        for kernel in range(1, 8):
            for stride in range(1, 5):
                for dilation in (1, 2):
                    layer = conv(r, "c", (2, n, n), 2, kernel, stride, bias=False, field=(), dilation=dilation)
                    ref = F.conv2d(x, torch.zeros(2, 2, kernel, kernel), None, stride, layer.padding, layer.dilation)
                    assert layer.out_shape == tuple(ref.shape[1:]), (n, kernel, stride, dilation)
                    checked += 1
            pool = avg_pool(r, "p", (2, n, n), min(kernel, 4))
            ref = F.avg_pool2d(x, pool.kernel, pool.stride, 0, ceil_mode=True, count_include_pad=False)
            assert pool.out_shape == tuple(ref.shape[1:])
        for kernel, stride, padding in [(3, 2, 1), (1, 2, 0), (1, 4, 0), (3, 1, 1)]:
            pool_ = max_pool(r, "m", (2, n, n), kernel, stride, padding, "neg_inf")
            assert pool_.out_shape == tuple(F.max_pool2d(x, kernel, stride, padding).shape[1:])
        # Unpadded, the window may not fit: torch raises exactly where pooled_size says "empty".
        for kernel in range(1, 8):
            for stride in range(1, 4):
                for ceil in (False, True):
                    size = pooled_size(n, kernel, stride, 0, ceil)
                    try:
                        out = F.avg_pool2d(x, kernel, stride, 0, ceil_mode=ceil).shape[-1]
                    except RuntimeError:
                        out = None
                    assert (out is None) == (size < 1) and (out is None or out == size), (n, kernel, stride, ceil)
    assert checked == 9 * 7 * 4 * 2


@pytest.mark.keras
@pytest.mark.parametrize("name", ["resnet50d", "keras_resnet50"])
def test_keras_takes_one_pixel_with_the_irs_shapes(name: str) -> None:
    """Keras' explicit padding, its -inf/zero padded max pool and the ceil-mode average pool give the IR's
    shapes at 1 px and on a 1x3 strip, at every stage boundary (Keras is channels-last)."""
    try:
        import torch  # noqa: F401  (torch before tensorflow: tests/conftest.py)
    except ModuleNotFoundError:
        pass
    keras = pytest.importorskip("keras")
    import numpy as np

    for size in [(1, 1), (1, 3)]:
        _, network = archgen.compile_spec(name, input_size=size)
        model = archgen.build_network(network, "keras")
        points = ["stem", *(s.name for s in network.stages)]
        probe = keras.Model(model.inputs[0], [model.get_layer(p).output for p in points] + [model.output])
        outs = probe(np.zeros((1, *size, 3), dtype="float32"), training=False)
        expected = [network.stem[-1].out_shape, *(s.out_shape for s in network.stages), network.output_shape]
        for point, out, shape in zip([*points, "output"], outs, expected, strict=True):
            got = tuple(out.shape[1:])
            got = (got[-1], *got[:-1]) if len(got) == 3 else got
            assert got == shape, (name, size, point)


# -- 3. a user's folder of specs: the project root --------------------------------------------------------------

R50D_SE = "extends: resnet50d\nblock: {se: {ratio: 0.0625}}\n"


@pytest.mark.parametrize("marker", [".git", "pyproject.toml", ".archgen"])
def test_extends_reaches_a_spec_in_a_folder_above_inside_the_project(tmp_path: Path, marker: str) -> None:
    project = tmp_path / "project"
    if marker == ".git":
        (project / marker).mkdir(parents=True)  # a repository (a worktree has a .git file: either marks it)
    else:
        write(project, marker, "")
    parent = write(project / "experiments", "r50d_se.yaml", R50D_SE)
    child = write(project / "experiments" / "sub", "v3.yaml", "extends: ../r50d_se.yaml\nhead: {classes: 10}\n")
    spec, network = archgen.compile_spec(child)
    assert (spec.name, spec.head.classes, spec.block.se is not None) == ("v3", 10, True)
    assert network.params == archgen.compile_spec(parent, ["head.classes=10"])[1].params
    assert "ok: " in invoke(["validate", child]).stdout
    # From a folder beside: any spec of the project, by its path from the child.
    other = write(project / "models", "mine.yaml", "extends: ../experiments/sub/v3.yaml\nact: silu\n")
    assert archgen.load_spec(other).head.classes == 10
    # Never outside the project, nor by an absolute path (even one inside it), nor a file that is no spec.
    write(tmp_path, "outside.yaml", "block: basic\nstages: 18\n")
    above = write(project / "experiments", "above.yaml", "extends: ../../outside.yaml\n")
    err = error_of(above)
    assert err.field == "extends" and err.message.startswith(
        f"'../../outside.yaml' lies outside the project root {project.resolve()} (it holds {marker})"
    )
    absolute = write(project / "experiments", "absolute.yaml", f"extends: {parent}\n")
    assert "' is an absolute path: 'extends' takes a path relative to this file" in error_of(absolute).message
    write(project, "notes.txt", "block: basic\nstages: 18\n")
    text = write(project / "experiments", "text.yaml", "extends: ../notes.txt\n")
    assert error_of(text).message == "parent spec '../notes.txt' is not a .yaml file: 'extends' reads spec files only"


def test_without_a_project_root_the_spec_folder_bounds_extends_and_the_message_says_how_to_widen(
    tmp_path: Path,
) -> None:
    write(tmp_path / "experiments", "r50d_se.yaml", R50D_SE)
    child = write(tmp_path / "experiments" / "sub", "v3.yaml", "extends: ../r50d_se.yaml\n")
    err = error_of(child)
    folder = child.parent.resolve()
    assert err.message == (
        f"'../r50d_se.yaml' lies outside the spec folder {folder}: 'extends' reaches this folder and below it, "
        "and shipped specs by name; to reach a folder above, mark your project's root folder with an empty "
        ".archgen file (a .git or pyproject.toml marks it too)"
    )
    assert errors(["validate", child]) == [f"error: {child}:1:1: extends: {err.message}"]
    write(tmp_path, ".archgen", "")
    assert archgen.load_spec(child).name == "v3"


def test_a_link_leading_out_of_the_project_stays_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project, ".archgen", "")
    write(tmp_path, "outside.yaml", "block: basic\nstages: 18\n")
    os.symlink(tmp_path / "outside.yaml", project / "link.yaml")
    child = write(project / "sub", "child.yaml", "extends: ../link.yaml\n")
    assert (
        error_of(child).message
        == f"'../link.yaml' lies outside the project root {project.resolve()} (it holds .archgen)"
    )


def test_archgen_new_writes_a_parent_above_inside_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "experiments", "r50d_se.yaml", R50D_SE)
    (tmp_path / "experiments" / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    invoke(["new", "v3", "--from", "experiments/r50d_se.yaml", "-o", "experiments/sub/v3.yaml"])
    assert "extends: ../r50d_se.yaml\n" in (tmp_path / "experiments" / "sub" / "v3.yaml").read_text()


def test_a_spec_named_like_a_shipped_one_is_told_how_to_extend_it(tmp_path: Path) -> None:
    """'extends: resnet50d' in resnet50d.yaml names the file itself: the cycle message says that a bare
    name prefers the file beside it, and that archgen:resnet50d is the shipped spec."""
    mine = write(tmp_path, "resnet50d.yaml", "extends: resnet50d\nhead: {classes: 10}\n")
    err = error_of(mine)
    assert (err.file, err.line, err.field) == (str(mine), 1, "extends")
    assert err.message == (
        "'extends' cycle: resnet50d.yaml -> resnet50d.yaml; a bare name means the file of that name beside this "
        "one before the shipped spec: write 'extends: archgen:resnet50d' to extend the shipped resnet50d"
    )
    assert errors(["validate", mine]) == [f"error: {mine}:1:1: extends: {err.message}"]
    mine.write_text("extends: archgen:resnet50d\nhead: {classes: 10}\n")
    spec, network = archgen.compile_spec(mine)
    assert (spec.name, spec.tweaks, network.params) == ("resnet50d", ["B", "C", "D"], 23_547_754)
    assert "23,547,754 params" in invoke(["validate", mine]).stdout
    # A cycle through names that are no shipped spec's says nothing more.
    write(tmp_path, "a.yaml", "extends: b\n")
    assert error_of(write(tmp_path, "b.yaml", "extends: a\n")).message == "'extends' cycle: b.yaml -> a.yaml -> b.yaml"


def test_archgen_colon_name_is_the_shipped_spec_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "resnet50d", "block: basic\nstages: 18\n")  # a file of that name is at hand
    assert archgen.load_spec("resnet50d").block.type == "basic"
    assert archgen.load_spec("archgen:resnet50d").block.type == "bottleneck"
    assert archgen.load_spec({"extends": "archgen:resnet50d"}).name == "resnet50d"
    assert "25,576,264 params" in invoke(["validate", "archgen:resnet50d"]).stdout
    message = catalog.unknown_shipped("resnt50d")
    assert "did you mean 'resnet50d'?" in message
    assert errors(["validate", "archgen:resnt50d"]) == [f"error: {message}"]
    child = write(tmp_path, "child.yaml", "extends: archgen:resnt50d\n")
    assert (error_of(child).field, error_of(child).message) == ("extends", message)
    schema = json.loads((ROOT / "schema" / "archgen-spec.schema.json").read_text())
    assert "archgen:NAME" in schema["properties"]["extends"]["description"]


# -- 4. the Python API names overrides as they were written -----------------------------------------------------


def test_keyword_overrides_are_named_as_written() -> None:
    with pytest.raises(SpecError) as info:
        archgen.build("resnet18", head__clases=3)
    err = info.value
    assert (err.file, err.line, err.field) == ("head__clases=3", None, "head.clases")
    assert str(err) == "head__clases=3: head.clases: unknown field 'clases'; did you mean 'classes'?"
    with pytest.raises(SpecError) as info:
        archgen.build("resnet18", num_classes=0)  # timm's keyword, as the field it sets
    assert (info.value.file, info.value.field) == ("num_classes=0", "head.classes")
    with pytest.raises(SpecError) as info:
        archgen.build("resnet18", stem__widths__0=16)
    assert str(info.value) == (
        "stem__widths__0=16: stem.widths.0: 'stem.widths' is not set, so it has no item 0: set all of it "
        "(stem__widths=[...])"
    )


def test_mapping_overrides_are_named_as_written() -> None:
    for call in (
        lambda: archgen.build("resnet18", overrides={"head.clases": 3}),
        lambda: archgen.compile_spec("resnet18", {"head.clases": 3}),
        lambda: archgen.load_spec("resnet18", {"head.clases": 3}),
    ):
        with pytest.raises(SpecError) as info:
            call()
        assert str(info.value).startswith("overrides={'head.clases': 3}: head.clases: unknown field 'clases'")
    # '--set' strings are the command line's form, and named so wherever they come from.
    assert error_of("resnet18", ["head.clases=3"]).file == "--set head.clases=3"


@pytest.mark.torch
def test_keywords_win_over_overrides_of_the_same_field() -> None:
    model = archgen.build("resnet18", overrides=["head.classes=5"], head__classes=7, input_size=32)
    assert model.fc.out_features == 7
    model = archgen.build("resnet18", overrides={"head.classes": 5, "act": "silu"}, num_classes=3, input_size=32)
    assert model.fc.out_features == 3


# -- 5. the smaller things -----------------------------------------------------------------------------------


def test_an_unknown_tweak_beside_a_contradicting_one_is_reported_too(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.yaml", "extends: resnet50\ntweaks: [D, E]\nblock: {type: bottleneck, shortcut: conv}\nact: swish\n"
    )
    err = error_of(path)
    assert [(p.line, p.column, p.field) for p in err.problems] == [
        (2, 13, "tweaks.1"),
        (3, 27, "block.shortcut.type"),  # at the shortcut that contradicts it, not at 'tweaks'
        (4, 1, "act"),
    ]
    assert err.problems[0].message == "expected 'B', 'C' or 'D'; received 'E'"
    assert err.problems[1].message == (
        "tweak D means shortcut.type: avgpool, but this file sets block.shortcut.type: conv"
    )
    assert len(errors(["validate", path])) == 3


YAML_VALUES = [
    ("stem: true\n", "stem", "expected a mapping; received true"),
    ("stem: {type: true}\n", "stem.type", "expected 'classic', 'deep', 'none'; received true"),
    ("block: {type: null}\n", "block.type", "expected 'basic', 'bottleneck', 'plain'; received null"),
    ("input: {size: [224, true]}\n", "input.size", "or [height, width] of them; received [224, true]"),
    ("input: {size: [224, null]}\n", "input.size", "received [224, null]"),
    ("tweaks: [true]\n", "tweaks.0", "expected 'B', 'C' or 'D'; received true"),
    ("stages: null\n", "stages", "expected a list; received null"),
    ("head: {dropout: .inf}\n", "head.dropout", "received .inf"),
    ("block: {type: basic, preact: null}\n", "block.preact", "expected true or false; received null"),
]


@pytest.mark.parametrize(("text", "field", "message"), YAML_VALUES, ids=[v[0].strip() for v in YAML_VALUES])
def test_received_values_are_shown_as_yaml_writes_them(tmp_path: Path, text: str, field: str, message: str) -> None:
    base = "" if text.startswith(("block", "stages")) else "block: basic\n"
    rest = "stages: 18\n" if not text.startswith("stages") else "block: basic\n"
    path = write(tmp_path, "s.yaml", f"{base}{rest}{text}")
    err = error_of(path)
    shown = [p for p in err.problems if p.field == field]
    assert shown and message in shown[0].message, str(err)
    assert "True" not in str(err) and "None" not in str(err)
    assert f"{field}: " in errors(["validate", path])[0]


def test_a_tweak_contradicting_a_boolean_shows_it_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "block: bottleneck\nstages: 50\ntweaks: [C]\nstem: {norm_act: true, width: 16}\n")
    assert error_of(path).message.endswith("this file sets stem.width: 16")
    path = write(tmp_path, "t.yaml", "block: bottleneck\nstages: 50\ntweaks: [C]\nstem: {type: true}\n")
    assert "this file sets stem.type: true" in str(error_of(path))


def test_a_shipped_spec_by_another_case_or_path_gets_a_did_you_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # outside the checkout: specs/resnet50.yaml is not here
    err = error_of("RESNET50")
    assert err.message == catalog.unknown_name("RESNET50") and "did you mean 'resnet50'?" in err.message
    assert errors(["validate", "RESNET50"]) == [f"error: {err.message}"]
    err = error_of("specs/resnet50.yaml")
    assert err.message == (
        "file 'specs/resnet50.yaml' does not exist; did you mean the shipped spec 'resnet50'? (a shipped spec is "
        "found by its name from any folder: resnet50)"
    )
    assert err.message in errors(["build", "specs/resnet50.yaml"])[0]
    assert "did you mean the shipped spec 'resnet50'?" in errors(["validate", "specs/ResNet50.yaml"])[0]
    # Nothing of that name: as before.
    assert "cannot read file" in error_of("specs/nothing_like_it.yaml").message
    # extends: specs/resnet50.yaml in a user's folder
    child = write(tmp_path, "mine.yaml", "extends: specs/resnet50.yaml\n")
    assert error_of(child).message == (
        "parent spec 'specs/resnet50.yaml' not found; did you mean the shipped spec 'resnet50' (extends: resnet50, "
        "or archgen:resnet50)?"
    )


def test_zero_classes_says_how_to_have_no_classifier(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "extends: resnet18\nhead: {classes: 0}\n")
    hint = "for a network without a classifier, write head: features (it returns feature maps)"
    err = error_of(path)
    assert err.message == f"expected a number greater than 0; received 0; {hint}"
    assert errors(["validate", path]) == [f"error: {path}:2:8: head.classes: {err.message}"]
    assert error_of("resnet18", ["head.classes=-1"]).message.endswith(hint)
    spec = archgen.load_spec(write(tmp_path, "f.yaml", "extends: resnet18\nhead: features\n"))
    assert spec.head.type == "features"  # the way the hint names
    assert archgen.load_spec(spec_path("resnet18"), ["head.classes=1"]).head.classes == 1  # 1 still is a classifier


def test_a_short_form_of_the_same_type_leaves_the_parents_fields_to_the_parent(tmp_path: Path) -> None:
    """'block: bottleneck' over a parent's bottleneck merges (only the type is written): the parent's
    fields and their problems stay the parent's."""
    base = write(tmp_path, "base.yaml", "block: {type: bottleneck, groups: 0}\nstages: 50\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nblock: bottleneck\n")
    err = error_of(child)
    assert (err.file, err.line, err.field) == (str(base), 1, "block.groups")
