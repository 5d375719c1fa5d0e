"""Norms other than batch norm: group norm (``norm: {type: group}``; timm's ``resnet50_gn``) through the
pipeline.

The registry tests (test_zoo: counts, strict load and equal outputs; test_keras and test_emit through the
design list) cover the shipped ``resnet50_gn``; here are the spelling and what it refuses, the Keras port
of a timm checkpoint (gamma and beta, no running statistics), fuse's refusal, and the reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from archgen.backends.torch.randomize import randomize_
from helpers import assert_ports_to_keras, invoke

import archgen
from archgen.errors import OptionError
from archgen.ir import GroupNorm, Norm
from archgen.tools.diff import diff
from archgen.tools.summary import layer_rows

pytestmark = [pytest.mark.torch, pytest.mark.keras]

SIZE = 64


def test_every_norm_of_resnet50_gn_is_a_group_norm_as_timms() -> None:
    _, network = archgen.compile_spec("resnet50_gn", input_size=SIZE)
    reference = timm.create_model("resnet50_gn")
    theirs = {
        n: (m.num_groups, m.num_channels, m.eps)
        for n, m in reference.named_modules()
        if isinstance(m, torch.nn.GroupNorm)
    }
    ours = {x.name: (x.groups, x.channels, x.eps) for x in network.layers() if isinstance(x, GroupNorm)}
    assert ours == theirs and len(ours) == 53
    assert not [x for x in network.layers() if isinstance(x, Norm)] and network.stats == 0


def test_the_spelling_and_what_is_refused(tmp_path: Path) -> None:
    _, bare = archgen.compile_spec("resnet50", ["norm=group"], input_size=SIZE)
    _, full = archgen.compile_spec("resnet50", ["norm={type: group, groups: 32, eps: 1.0e-5}"], input_size=SIZE)
    assert bare.norm == full.norm and (bare.norm.kind, bare.norm.groups) == ("group", 32)
    _, batch = archgen.compile_spec("resnet50", ["norm={eps: 1.0e-3}"], input_size=SIZE)  # no type: batch norm
    assert (batch.norm.kind, batch.norm.eps) == ("batch", 1e-3)
    spec = tmp_path / "gn.yaml"
    spec.write_text("extends: archgen:resnet50\nnorm:\n  type: group\n  groups: 48\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert (
        f"{spec}:4:" in result.output and "norm.groups" in result.output and "48 groups do not divide" in result.output
    )
    spec.write_text("extends: archgen:resnet50\nnorm: {type: group, momentum: 0.1}\n", encoding="utf-8")
    result = invoke(["validate", spec], code=2)
    assert "norm.momentum" in result.output and "Traceback" not in result.output


def test_fuse_refuses_a_group_norm_network() -> None:
    with pytest.raises(OptionError, match="group norm"):
        archgen.build("resnet50_gn", fuse=True, input_size=SIZE)
    assert "group norm" in invoke(["emit", "resnet50_gn", "--fuse", "-o", "-"], code=2).output


def test_a_timm_checkpoint_ports_to_keras_and_compare_agrees(tmp_path: Path) -> None:
    reference = timm.create_model("resnet50_gn")
    randomize_(reference, (3, SIZE, SIZE), seed=0).eval()
    assert_ports_to_keras(reference, "resnet50_gn", SIZE, tmp_path)


def test_the_reports_name_the_norm() -> None:
    _, network = archgen.compile_spec("resnet50_gn", input_size=SIZE)
    _, plain = archgen.compile_spec("resnet50", input_size=SIZE)
    rows = {r.name: r.op for r in layer_rows(network)}
    assert rows["bn1"] == "GroupNorm 32" and rows["layer1.0.downsample.1"] == "GroupNorm 32"
    changes = [c.text() for c in diff(plain, network).changes]
    assert "norm: batch -> group (32 groups)" in changes and not [c for c in changes if "momentum" in c]
