"""``archgen graph``: the diagram of every shipped spec, its two levels of detail, its rendering by
graphviz (and without it), the committed README image, and its refusals.

Framework-free: it runs where no deep-learning framework is installed (tests/test_without_frameworks.py).
Expected figures come from the reference architectures (torchvision's ResNet-50: 25,557,032 params,
4.089 GMACs; its layer names and shapes), worked out by hand, or from the spec files' own stage lists.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pygraphviz
import pytest
from helpers import ROOT, SPEC_FILES, hide_modules, invoke, run_archgen, spec_path

import archgen
from archgen.ir import NAMINGS

IMAGE = ROOT / "docs" / "images" / "resnet50d.svg"
SVG = "{http://www.w3.org/2000/svg}"


def graph(tmp_path: Path, spec: object, *args: str, name: str = "g.dot") -> str:
    out = tmp_path / name
    result = invoke(["graph", spec, "-o", out, *args])
    assert f"wrote {out}" in result.output
    return out.read_text(encoding="utf-8") if name.endswith(".dot") else ""


def label(dot: str, node: str) -> str:
    """The label of a node of the DOT text (an HTML-like label: <...>)."""
    found = re.search(rf'^\s*"{re.escape(node)}" \[label=<(.*?)>, ', dot, re.M)
    assert found, f"no node {node} in\n{dot}"
    return re.sub(r"(<[^>]+>)+", " | ", found.group(1))  # markup to separators: the text remains


def edges(dot: str) -> set[tuple[str, str, str]]:
    """(source, target, attributes) of every edge."""
    return {(a, b, attrs or "") for a, b, attrs in re.findall(r'^\s*"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?;$', dot, re.M)}


def nodes(dot: str) -> set[str]:
    return set(re.findall(r'^\s*"([^"]+)" \[label=', dot, re.M))


# -- every shipped spec -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_shipped_spec_draws_its_stem_stages_and_head(path: Path, tmp_path: Path) -> None:
    spec = archgen.load_spec(path)  # the spec's own stage list: what the diagram must show
    dot = graph(tmp_path, path)
    pygraphviz.AGraph(string=dot)  # valid DOT (graphviz's own parser)
    assert dot.startswith(f"// archgen graph of {spec.name} ")
    naming = NAMINGS[spec.naming]  # layer1, ... or stages.0, ...
    for i, stage in enumerate(spec.stages):
        name = naming.stage_name(i)
        text = label(dot, name)
        assert re.match(rf" \| {re.escape(name)}: [a-z -]+ × {stage.depth} \| ", text), text
        assert "params · " in text and " FLOPs" in text
    assert f'"{naming.stage_name(len(spec.stages))}"' not in dot
    assert ("stem" in nodes(dot)) == (spec.stem.type != "none")
    assert f"{spec.head.classes} " in label(dot, "output")  # every shipped spec is a classifier
    assert "head: classifier" in label(dot, "head")


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_detail_block_draws_every_block_once_first_block_in_full(path: Path, tmp_path: Path) -> None:
    spec = archgen.load_spec(path)
    dot = graph(tmp_path, path, "--detail", "block")
    pygraphviz.AGraph(string=dot)
    naming = NAMINGS[spec.naming]
    for i, stage in enumerate(spec.stages):
        first_block = naming.block_name(naming.stage_name(i), 0)  # layer1.0, or stages.0.blocks.0
        at = re.escape(first_block.rpartition(".")[0])
        drawn = {int(b) for b in re.findall(rf'subgraph "cluster_{at}\.(\d+)"', dot)}
        summed: list[int] = []
        for first, last in re.findall(rf"<B>{at}\.(\d+)(?: – {at}\.(\d+))?</B><BR/>\d+ blocks? as ", dot):
            summed += range(int(first), int(last or first) + 1)
        assert 0 in drawn and f"{first_block}.{naming.block_conv(1)}" in nodes(dot)
        assert sorted([*drawn, *summed]) == list(range(stage.depth)), (drawn, summed)


# -- what a stage and a block show ------------------------------------------------------------------------------
def test_resnet50_stage_figures_are_torchvisions(tmp_path: Path) -> None:
    dot = graph(tmp_path, "resnet50")
    title = re.search(r"label=<<B>resnet50</B><BR/>(.*?)>, fontname", dot)
    assert title and "25,557,032 params · 4.089 G FLOPs" in title.group(1)
    assert "3x224x224" in label(dot, "input")
    assert "stem: classic | conv 7x7/2: 64, bn, relu | max pool 3x3/2 | out 64x56x56" in label(dot, "stem")
    # layer1: 64*64 + 64*64*9 + 64*256 + 64*256 (projection) + BN, then two 256-64-256 blocks
    layer1 = label(dot, "layer1")
    assert "channels 64 → 64 → 256" in layer1 and "stride 1" in layer1 and "215,808 params" in layer1
    assert "shortcut (conv): conv 1x1 64→256 + bn (layer1.0)" in layer1
    layer3 = label(dot, "layer3")
    assert "layer3: bottleneck × 6" in layer3 and "channels 512 → 256 → 1024" in layer3
    assert "stride 2 at layer3.0.conv2 (3x3)" in layer3 and "out 1024x14x14" in layer3  # ResNet V1.5
    assert "global avg pool | fc 2048→1000" in label(dot, "head") and "1000 logits" in label(dot, "output")
    chain = ["input", "stem", "layer1", "layer2", "layer3", "layer4", "head", "output"]
    assert {(a, b, "") for a, b in itertools.pairwise(chain)} <= edges(dot)


def test_resnet50_block_detail_has_the_layers_of_a_bottleneck(tmp_path: Path) -> None:
    dot = graph(tmp_path, "resnet50", "--detail", "block")
    for i, (mid, depth) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        p, c_in = f"layer{i}.0.", 64 if i == 1 else 2 * mid
        for layer in ("conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3", "add", "act3"):
            assert p + layer in nodes(dot), p + layer
            assert f"layer{i}.1.{layer}" in nodes(dot)  # the first identity block, drawn too
        assert f"conv 1x1 {c_in}→{mid}" in label(dot, p + "conv1")
        assert f"conv 3x3{'/2' if i > 1 else ''} {mid}→{mid}" in label(dot, p + "conv2")
        assert f"conv 1x1 {mid}→{4 * mid}" in label(dot, p + "conv3")
        assert f"conv 1x1{'/2' if i > 1 else ''} {c_in}→{4 * mid}" in label(dot, p + "downsample.0")
        assert f"layer{i}.1.downsample.0" not in nodes(dot)
        e = edges(dot)
        assert (f"layer{i}", p + "conv1", "") in e and (f"layer{i}", p + "downsample.0", "style=dashed") in e
        assert (p + "bn3", p + "add", "") in e and (p + "downsample.1", p + "add", "style=dashed") in e
        assert (p + "add", p + "act3", "") in e and (p + "act3", f"layer{i}.1.conv1", "") in e
        assert (p + "act3", f"layer{i}.1.add", 'label="identity", style=dashed') in e
        rest = f"{depth - 2} block{'s' if depth > 3 else ''} as layer{i}.1"
        assert rest in label(dot, f"layer{i}.2.rest")
    assert "layer4.2.act3" not in nodes(dot)
    assert ("layer4.2.rest", "head", "") in edges(dot)


def test_preactivation_blocks_take_a_projecting_shortcut_after_act1(tmp_path: Path) -> None:
    # resnet50v2 (keras.applications): the stride on the last block of a stage, a 1x1 max-pool shortcut.
    dot = graph(tmp_path, "resnet50v2", "--detail", "block")
    e = edges(dot)
    assert ("layer1.0.act1", "layer1.0.downsample.1", "style=dashed") in e  # the projection: from bn1 + act1
    assert ("layer1.1.add", "layer1.2.downsample.0", "style=dashed") in e  # the pool: from the block input
    assert "max pool 1x1/2" in label(dot, "layer1.2.downsample.0")
    assert "conv 3x3/2 64→64" in label(dot, "layer1.2.conv2")
    assert ("layer1.2.conv3", "layer1.2.add", "") in e and ("layer1.2.add", "layer2", "") in e  # no act after it
    assert "layer1: pre-act bottleneck × 3" in label(dot, "layer1")
    # layer3 (6 blocks): the projecting first, the first identity one, the strided last; 3 in between.
    assert "3 blocks as layer3.1" in label(dot, "layer3.2.rest")
    assert "layer3.5.conv2" in nodes(dot)
    assert "post_bn" not in nodes(dot) and "bn, relu" in label(dot, "head")  # the final norm + act


def test_se_drop_path_dilation_and_taps(tmp_path: Path) -> None:
    dot = graph(tmp_path, "seresnet50", "--detail", "block")
    assert "SE ratio 0.0625 (256→16→256)" in label(dot, "layer1")  # timm: make_divisible(256 / 16, 8)
    assert "256→16→256" in label(dot, "layer1.0.se") and ("layer1.0.bn3", "layer1.0.se", "") in edges(dot)
    overrides = ["--set", "drop_path.rate=0.1", "--set", "output_stride=16"]
    dot = graph(tmp_path, "resnet50", *overrides, "--input-size", "160")
    assert "3x160x160" in label(dot, "input")
    # linear over 16 blocks: 0.1 * i / 15 for i = 0..2 (layer1) and 13..15 (layer4)
    assert "drop path 0–0.0133" in label(dot, "layer1") and "drop path 0.0867–0.1" in label(dot, "layer4")
    assert "stride 1, dilation 2 (from 1 in layer4.0)" in label(dot, "layer4")
    assert "out 2048x10x10" in label(dot, "layer4")  # 160 / 16
    dot = graph(tmp_path, "resnet50d", "--set", "head={type: features, out_indices: [0, 1, 3]}")
    assert "act1 64x112x112" in label(dot, "output.0") and "layer3 1024x14x14" in label(dot, "output.2")
    e = edges(dot)
    assert {("stem", "output.0", "style=dashed"), ("layer3", "output.2", "style=dashed")} <= e
    assert "layer4" not in nodes(dot) and "head" not in nodes(dot)  # the network ends where its last tap is
    dot = graph(tmp_path, "imagenette_cnn", "--detail", "block")
    assert "stem" not in nodes(dot) and ("input", "layer1", "") in edges(dot)
    assert "layer5.0.add" not in nodes(dot) and "conv 3x3/2 128→256" in label(dot, "layer5.0.conv1")


def test_the_dot_text_is_identical_on_every_run(tmp_path: Path) -> None:
    assert graph(tmp_path, "resnet50d", "--detail", "block") == graph(tmp_path, "resnet50d", "--detail", "block")


# -- rendering --------------------------------------------------------------------------------------------------
def test_svg_png_and_pdf_are_rendered(tmp_path: Path) -> None:
    graph(tmp_path, "resnet18", name="r18.svg")
    root = ET.parse(tmp_path / "r18.svg").getroot()
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for i in range(1, 5):
        assert f"layer{i}: basic × 2" in texts
    assert {"stem: classic", "head: classifier", "1000 logits", "input"} <= set(texts)
    graph(tmp_path, "resnet18", "--detail", "block", name="r18.png")
    png = (tmp_path / "r18.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 300  # IHDR width
    graph(tmp_path, "resnet18", name="r18.PDF")
    assert (tmp_path / "r18.PDF").read_bytes()[:5] == b"%PDF-"


def _drawn(svg: bytes) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """An SVG element by element without its coordinates (which the local fonts' metrics move)."""
    geometry = {"x", "y", "cx", "cy", "rx", "ry", "points", "d", "width", "height", "viewBox", "transform"}
    return [
        (el.tag, tuple(sorted((k, v) for k, v in el.attrib.items() if k not in geometry)), (el.text or "").strip())
        for el in ET.fromstring(svg).iter()
    ]


def test_the_committed_readme_image_is_what_the_command_draws(tmp_path: Path) -> None:
    assert f"]({IMAGE.relative_to(ROOT)})" in (ROOT / "README.md").read_text(encoding="utf-8")
    graph(tmp_path, "resnet50d", name="now.svg")
    now, committed = (tmp_path / "now.svg").read_bytes(), IMAGE.read_bytes()
    assert _drawn(now) == _drawn(committed), f"stale: run archgen graph resnet50d -o {IMAGE.relative_to(ROOT)}"


# -- without pygraphviz: dot on PATH, or a clear refusal --------------------------------------------------------
FAKE_DOT = """#!{python}
import os, sys
source = sys.stdin.read()
if os.environ.get("FAKE_DOT_FAIL"):
    sys.exit("Error: <stdin>: syntax error in line 1")
said = " ".join(sys.argv[1:]) + " " + str(len(source))
sys.stdout.write('<svg xmlns="http://www.w3.org/2000/svg"><text>' + said + '</text></svg>')
"""


def test_without_pygraphviz_the_dot_on_path_renders(tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path / "hidden", ["pygraphviz"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text(FAKE_DOT.format(python=sys.executable))
    (bin_dir / "dot").chmod(0o755)
    out = tmp_path / "r18.svg"
    done = run_archgen(["graph", "resnet18", "-o", out], hidden=hidden, env={"PATH": str(bin_dir)})
    assert done.returncode == 0, done.stderr
    source = len(graph(tmp_path, "resnet18"))  # characters, as the fake reads them
    assert ET.fromstring(out.read_bytes()).findtext(f"{SVG}text") == f"-Tsvg {source}"  # the DOT, on stdin
    out.write_text("old")
    failing = {"PATH": str(bin_dir), "FAKE_DOT_FAIL": "1"}
    done = run_archgen(["graph", "resnet18", "-o", out], hidden=hidden, env=failing)
    assert done.returncode == 3 and "syntax error in line 1" in done.stderr and "Traceback" not in done.stderr
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "g.dot", "hidden", "r18.svg"]  # no temporary file


def test_without_graphviz_svg_is_refused_and_dot_is_written(tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path / "hidden", ["pygraphviz"])
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_archgen(["graph", "resnet18", "-o", tmp_path / "r18.svg"], hidden=hidden, env={"PATH": str(empty)})
    assert done.returncode == 2, done.stderr
    assert "error: writing .svg needs graphviz's layout engine: pip install 'archgen[graph]'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r18.svg").exists()
    done = run_archgen(["graph", "resnet18", "-o", tmp_path / "r18.dot"], hidden=hidden, env={"PATH": str(empty)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r18.dot").read_text().startswith("// archgen graph of resnet18 ")


# -- refusals and writes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resnet18", "-o", "{tmp}/g.jpg"], "names the format: .svg, .png, .pdf or .dot; 'g.jpg' has '.jpg'"),
        (["resnet18", "-o", "{tmp}/graph"], "'graph' has no suffix"),
        (["resnet18", "-o", "{tmp}/missing/g.svg"], "the output's folder '{tmp}/missing' does not exist"),
        (["resnet18", "-o", "{tmp}"], "is a directory"),
        (["resnet18", "-o", "{tmp}/g.svg", "--detail", "layer"], "'layer' is not one of 'stage', 'block'"),
        (["resnet18", "-o", "{tmp}/g.svg", "--set", "stages.9.depth=3"], "error: --set stages.9.depth=3: "),
        (["resnet18", "-o", "{tmp}/g.svg", "--input-size", "0"], "0 is not in the range 1<=x<=8192"),
        (["{tmp}/bad.yaml", "-o", "{tmp}/g.svg"], "error: {tmp}/bad.yaml:3:8: head.clases: unknown field 'clases'"),
        (["nosuchspec", "-o", "{tmp}/g.svg"], "nosuchspec"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.yaml").write_text("block: bottleneck\nstages: 50\nhead: {clases: 10}\n")
    before = sorted(tmp_path.iterdir())
    result = invoke(["graph", *(a.format(tmp=tmp_path) for a in args)], code=2)
    assert message.format(tmp=tmp_path) in result.output
    assert "Traceback" not in result.output and sorted(tmp_path.iterdir()) == before


def test_a_file_is_replaced_keeping_its_mode_and_left_alone_on_error(tmp_path: Path) -> None:
    out = tmp_path / "r18.svg"
    out.write_text("old")
    os.chmod(out, 0o640)
    bad = tmp_path / "bad.yaml"
    bad.write_text("block: basic\nstages: 18\nhead: {classes: 0}\n")
    invoke(["graph", bad, "-o", out], code=2)
    assert out.read_text() == "old"
    invoke(["graph", spec_path("resnet18"), "-o", out])
    assert ET.parse(out).getroot().tag == f"{SVG}svg" and stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "r18.svg"]  # no temporary file left
