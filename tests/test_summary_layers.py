"""``archgen summary --layers``: one row per layer from the IR, held to the section summary and to
torchvision's and timm's own modules.

The reference figures come from the reference libraries (every named module's parameter count, its
output shape from a forward hook, its FLOPs from torch's FlopCounterMode), never from archgen; the
sums are checked against what ``archgen summary --json`` prints per section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from helpers import ROOT, SPEC_FILES, invoke, spec_path

import archgen
from archgen.tools.summary import LayerRow, layer_rows, layer_totals, layers_json

pytestmark = pytest.mark.torch


def _rows(name: str, input_size: int | None = None) -> list[LayerRow]:
    _, network = archgen.compile_spec(spec_path(name), input_size=input_size)
    return layer_rows(network)


# -- the sums ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_layer_rows_sum_to_the_sections_and_totals(path) -> None:
    _, network = archgen.compile_spec(path)
    rows = layer_rows(network)
    sections = network.to_json()["sections"]
    assert [s["name"] for s in sections] == list(dict.fromkeys(r.section for r in rows))
    for section in sections:
        members = [r for r in rows if r.section == section["name"]]
        assert sum(r.params for r in members) == section["params"], section["name"]
        assert sum(r.stats for r in members) == section["stats"], section["name"]
        assert sum(r.flops for r in members) == section["flops"], section["name"]
        assert members[-1].out_shape == tuple(section["output"]), section["name"]
    totals = layer_totals(network, rows)
    assert (totals.params, totals.stats, totals.flops) == (network.params, network.stats, network.flops)
    # Every layer once, in the IR's order, an addition per residual block and a scaling per SE.
    assert [r.name for r in rows if r.module] == [x.name for x in network.layers()]
    blocks = [b for s in network.stages for b in s.blocks if b.design.residual]
    assert [r.name for r in rows if r.kind == "add"] == [f"{b.name}.add" for b in blocks]
    se = [b for b in blocks if b.design.attn is not None]
    assert [r.name for r in rows if r.kind == "scale"] == [f"{b.name}.se.scale" for b in se]
    assert all(r.activations == math.prod(r.out_shape) for r in rows if r.module)
    assert not any(r.params or r.stats or r.flops or r.activations for r in rows if not r.module)


def test_the_cli_rows_sum_to_what_summary_prints() -> None:
    plain = json.loads(invoke(["summary", spec_path("seresnet50"), "--json"]).output)
    data = json.loads(invoke(["summary", spec_path("seresnet50"), "--json", "--layers"]).output)
    assert data["flops_unit"] == "MACs"
    for section in plain["sections"]:
        members = [r for r in data["layers"] if r["section"] == section["name"]]
        for key in ("params", "stats", "flops"):
            assert sum(r[key] for r in members) == section[key], (section["name"], key)
    totals = data["totals"]
    assert totals["params"] == plain["params"] == 28_088_024  # timm seresnet50 (the brief's table)
    assert totals["flops"] == plain["flops"] and totals["flops_2_per_mac"] == 2 * plain["flops"]
    assert totals["activations"] == sum(r["activations"] for r in data["layers"])
    assert totals["activation_bytes"] == 4 * totals["activations"]
    assert totals["input_bytes"] == 3 * 224 * 224 * 4
    assert totals["total_bytes"] == 4 * (3 * 224 * 224 + totals["activations"] + plain["params"] + plain["stats"])


def test_the_cli_table_lists_every_layer_grouped_by_section() -> None:
    out = invoke(["summary", spec_path("resnet50"), "--layers"]).output
    lines = out.splitlines()
    _, network = archgen.compile_spec(spec_path("resnet50"))
    for layer in network.layers():  # every module path, whole (never cut short by the table)
        assert any(line.split()[:1] == [layer.name] for line in lines), layer.name
    assert "FLOPs (MACs)" in out and "…" not in out
    for section in ("stem", "layer1", "layer2", "layer3", "layer4", "head"):
        assert any(line.split()[:1] == [section] for line in lines), section
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert "25,557,032" in total and "4.089 G" in total  # torchvision's num_params and GFLOPs
    assert next(line for line in lines if line.split()[:1] == ["input"]).split()[1:] == ["150,528", "588", "KiB"]
    row = next(line for line in lines if line.split()[:1] == ["layer2.0.conv2"])
    assert row.split()[1:4] == ["Conv2d", "3x3/2", "128x28x28"]  # ResNet-B: the stride on the 3x3
    assert next(line for line in lines if line.split()[:1] == ["layer1.0.add"]).split()[1:3] == ["add", "(residual)"]
    # The docs' sample is this output on a terminal, trimmed (into a pipe, its rules are ASCII).
    marker = "$ archgen summary resnet50 --layers\n"
    docs = [p.read_text() for p in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))]
    sample = next(d for d in docs if marker in d).split(marker)[1].split("```")[0]
    sample = sample.translate(str.maketrans({"─": "-", "│": "|"}))
    printed = {line.rstrip() for line in lines}
    assert [line for line in sample.splitlines() if line not in ("", "...") and line not in printed] == []


def test_ops_name_what_the_layer_does() -> None:
    rows = {r.name: r for r in _rows("resnext50_32x4d")}
    assert rows["layer1.0.conv2"].op == "Conv2d 3x3 g32"
    rows = {r.name: r for r in _rows("resnet50d")}
    assert rows["layer2.0.downsample.0"].op == "AvgPool2d 2x2/2 ceil"
    assert rows["conv1.0"].op == "Conv2d 3x3/2"
    rows = {r.name: r for r in _rows("keras_resnet50")}
    assert rows["maxpool"].op == "MaxPool2d 3x3/2 zero-padded" and rows["conv1"].op == "Conv2d 7x7/2 +bias"
    assert rows["softmax"].op == "Softmax"
    rows = {r.name: r for r in _rows("seresnet50")}
    assert rows["layer1.0.se.fc1"].op == "SE: Conv2d 1x1 +bias" and rows["layer1.0.se.gate"].op == "SE gate: Sigmoid"
    assert rows["layer1.0.se.scale"].out_shape == (256, 56, 56) and not rows["layer1.0.se.scale"].module
    # A pre-activation block ends with its addition; a post-activation one with the act after it.
    v2 = [r.name for r in _rows("resnet50v2") if r.block == "layer1.0"]
    assert v2[-1] == "layer1.0.add" and v2[:2] == ["layer1.0.bn1", "layer1.0.act1"]


def test_layers_json_keeps_the_plain_summary() -> None:
    _, network = archgen.compile_spec(spec_path("resnet18"), input_size=32)
    data = layers_json(network)
    assert {k: data[k] for k in network.to_json()} == network.to_json()
    first = data["layers"][0]
    assert first == {
        "name": "conv1",
        "kind": "conv",
        "module": True,
        "op": "Conv2d 7x7/2",
        "section": "stem",
        "block": None,
        "output": [64, 16, 16],
        "params": 64 * 3 * 7 * 7,
        "stats": 0,
        "flops": 64 * 3 * 7 * 7 * 16 * 16,
        "activations": 64 * 16 * 16,
    }


# -- against the reference libraries ------------------------------------------------------------------------------
def _expected_op(module: Any) -> str | None:
    """The op text a reference module's own attributes call for (None: a module without a row)."""
    from torch import nn

    if isinstance(module, nn.Conv2d):
        (k, _), (s, _), (d, _) = module.kernel_size, module.stride, module.dilation
        text = f"Conv2d {k}x{k}" + (f"/{s}" if s != 1 else "")
        text += (f" g{module.groups}" if module.groups != 1 else "") + (f" d{d}" if d != 1 else "")
        return text + (" +bias" if module.bias is not None else "")
    if isinstance(module, nn.MaxPool2d):
        return f"MaxPool2d {module.kernel_size}x{module.kernel_size}/{module.stride}"
    if isinstance(module, nn.AvgPool2d):
        return f"AvgPool2d {module.kernel_size}x{module.kernel_size}/{module.stride}" + (
            " ceil" if module.ceil_mode else ""
        )
    kind = type(module).__name__
    if kind == "SelectAdaptivePool2d":  # timm's classifier pool (and flatten)
        return f"GlobalPool {module.pool_type}"
    return kind if kind in ("BatchNorm2d", "ReLU", "Sigmoid", "Linear") else None  # timm has its own Sigmoid


def _compare(model: Any, rows: list[LayerRow], size: int, prefix: str) -> set[str]:
    """Every named module of ``model`` against the rows: a module with a row of its name has that row's
    params, output shape, FLOPs and op; any other module (a container, or a leaf without weights) has
    the sums of the rows under its path. Returns the names matched one to one."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(module: Any, args: Any, output: Any) -> None:
            shapes[name] = tuple(output.shape[1:])

        return record

    for name, module in model.named_modules():
        module.register_forward_hook(hook(name))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    flops = {k.removeprefix(prefix): sum(v.values()) for k, v in counter.get_flop_counts().items()}
    by_name = {r.name: r for r in rows if r.module}
    matched = set()
    for name, module in model.named_modules():
        params = sum(p.numel() for p in module.parameters())
        macs = flops.get(name if name else prefix.rstrip("."), 0)
        if name in by_name:
            row = by_name[name]
            matched.add(name)
            assert row.params == params, name
            assert row.out_shape == shapes[name], name
            assert 2 * row.flops == macs, name
            expected = _expected_op(module)
            assert expected is not None and row.op.removeprefix("SE: ").removeprefix("SE gate: ") == expected, name
            continue
        under = [r for r in rows if not name or r.name.startswith(f"{name}.")]
        assert sum(r.params for r in under) == params, name
        assert 2 * sum(r.flops for r in under) == macs, name
        if under and name in shapes:
            assert under[-1].out_shape == shapes[name], name
        if name.count(".") == 1 and name.startswith("layer"):  # a block: its addition has its shape
            assert next(r for r in under if r.kind == "add").out_shape == shapes[name], name
    return matched


def test_rows_match_torchvision_resnet50_module_by_module() -> None:
    import torch
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.resnet50().eval()
    rows = _rows("resnet50")
    matched = _compare(model, rows, 224, "ResNet.")
    # Every module holding weights has its own row (torchvision's relu is one module per block,
    # used three times, which archgen splits into act1..act3 as timm does).
    weighted = {n for n, m in model.named_modules() if not list(m.children()) and list(m.parameters())}
    assert weighted <= matched and len(weighted) == 53 + 53 + 1  # convs, norms, fc
    assert {r.name for r in rows if r.kind == "conv"} | {"fc"} <= matched
    # torchinfo's activation total: the outputs of every leaf module call, summed.
    total = 0

    def count(module: Any, args: Any, output: Any) -> None:
        nonlocal total
        total += output.numel()

    for module in model.modules():
        if not list(module.children()):
            module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    _, network = archgen.compile_spec(spec_path("resnet50"))
    assert layer_totals(network).activations == total


@pytest.mark.parametrize("name", ["resnet50d", "seresnet50"])
def test_rows_match_timm_module_by_module(name: str) -> None:
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    rows = _rows(name, input_size=160)
    matched = _compare(model, rows, 160, "ResNet.")
    # timm names every activation (act1..act3, se.act, se.gate) as archgen does: every module row is
    # one of its modules.
    assert {r.name for r in rows if r.module} == matched
