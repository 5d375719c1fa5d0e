"""Every kind of layer and of part, through every consumer of the IR.

The IR's unions (``AnyLayer``, ``BlockPart``, ``StemPart``, ``HeadPart``) are closed, and every ``match``
over them ends in ``assert_never``: the type checker lists the consumers a new kind needs. These tests
hold the same at run time, kind by kind: a sample of each kind goes through each consumer (the words of
summary, graph and diff, the checkpoint layout of port, both backends' weight layouts and stem/head
writers), and each kind of part is made by the resolver for some shipped spec and drawn, tabulated and
compared. A kind added to a union without a sample here fails the first test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, get_args

import numpy as np
import pytest
from archgen.backends.keras import backend as keras_backend
from archgen.backends.keras import emit as keras_emit
from archgen.backends.torch import emit as torch_emit

import archgen
from archgen import describe
from archgen.compiler.resolve import stride_of
from archgen.ir import (
    Act,
    AnyLayer,
    AnyPart,
    AvgPool,
    BlurPool,
    Conv,
    Dropout,
    DropPath,
    GlobalPool,
    GroupNorm,
    Linear,
    MaxPool,
    Network,
    Norm,
    NormAct,
    ZeroPad,
)
from archgen.runtime import weights
from archgen.tools import graph, summary
from archgen.tools.diff import diff

SAMPLES: dict[type, AnyLayer] = {
    Conv: Conv(
        name="s.conv",
        in_shape=(4, 8, 8),
        out_shape=(6, 4, 4),
        params=6 * 2 * 9 + 6,
        flops=16 * 6 * 2 * 9,
        in_ch=4,
        out_ch=6,
        kernel=3,
        stride=2,
        padding=1,
        groups=2,
        bias=True,
    ),
    Norm: Norm(
        name="s.bn", in_shape=(6, 4, 4), out_shape=(6, 4, 4), params=12, stats=12, channels=6, eps=1e-5, momentum=0.1
    ),
    GroupNorm: GroupNorm(
        name="s.gn", in_shape=(6, 4, 4), out_shape=(6, 4, 4), params=12, channels=6, groups=3, eps=1e-5
    ),
    NormAct: NormAct(name="s.frn", in_shape=(6, 4, 4), out_shape=(6, 4, 4), params=18, fn="frn", channels=6, eps=1e-5),
    Act: Act(name="s.act", in_shape=(6, 4, 4), out_shape=(6, 4, 4), fn="silu"),
    MaxPool: MaxPool(name="s.pool", in_shape=(6, 4, 4), out_shape=(6, 2, 2), kernel=3, stride=2, padding=1),
    AvgPool: AvgPool(name="s.avg", in_shape=(6, 4, 4), out_shape=(6, 2, 2), kernel=2, stride=2),
    BlurPool: BlurPool(
        name="s.aa", in_shape=(6, 4, 4), out_shape=(6, 2, 2), flops=4 * 6 * 9, channels=6, kernel=3, stride=2, padding=1
    ),
    ZeroPad: ZeroPad(name="s.downsample.0", in_shape=(4, 5, 5), out_shape=(6, 3, 3), in_ch=4, out_ch=6, stride=2),
    GlobalPool: GlobalPool(name="global_pool", in_shape=(6, 2, 2), out_shape=(6,)),
    Dropout: Dropout(name="dropout", in_shape=(6,), out_shape=(6,), rate=0.25),
    DropPath: DropPath(name="s.drop_path", in_shape=(6, 4, 4), out_shape=(6, 4, 4), rate=0.05),
    Linear: Linear(name="fc", in_shape=(6,), out_shape=(3,), params=21, flops=18, in_features=6, out_features=3),
}
KINDS = get_args(AnyLayer)
# A conv across the channels of a pooled map (nn.Conv1d(1, 1, 5)): the Conv kind with one spatial dimension.
CONV1D = Conv(
    name="s.se.conv",
    in_shape=(1, 64),
    out_shape=(1, 64),
    params=5,
    flops=64 * 5,
    in_ch=1,
    out_ch=1,
    kernel=5,
    padding=2,
    dims=1,
)
# Layers only a block holds: the stem and head writers of both backends refuse them by name (the sample
# average pool is a ResNet-D shortcut's, ceil mode; a stem's anti-aliasing one is floor mode).
BLOCK_ONLY = {AvgPool, DropPath, ZeroPad}
FLOOR_AVG = AvgPool(
    name="maxpool", in_shape=(6, 5, 5), out_shape=(6, 2, 2), kernel=2, stride=2, ceil_mode=False, count_include_pad=True
)


def test_every_kind_of_layer_has_a_sample() -> None:
    assert set(SAMPLES) == set(KINDS)
    assert all(type(layer) is kind for kind, layer in SAMPLES.items())


WORDS: dict[str, Callable[[Any], str]] = {
    "summary": describe.op_text,
    "graph": describe.layer_text,
    "graph node": lambda x: graph._layer_node(x).lines[0].text,
}


@pytest.mark.parametrize("consumer", list(WORDS))
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_kind_has_words(kind: type, consumer: str) -> None:
    text = WORDS[consumer](SAMPLES[kind])
    assert isinstance(text, str) and text.strip()


def test_the_words_name_what_differs() -> None:
    """Two layers of one kind that differ in what they do are told apart (kernel, stride, groups, rate)."""
    conv = SAMPLES[Conv]
    assert describe.op_text(conv) == "Conv2d 3x3/2 g2 +bias"
    assert describe.layer_text(conv) == "conv 3x3/2 4→6, 2 groups, bias"
    assert describe.op_text(SAMPLES[DropPath]) == "DropPath 0.05"
    assert describe.layer_text(SAMPLES[Act]) == "silu" and describe.op_text(SAMPLES[Act]) == "SiLU"
    assert (
        describe.op_text(SAMPLES[AvgPool]) == "AvgPool2d 2x2/2 ceil"
        and describe.op_text(FLOOR_AVG) == "AvgPool2d 2x2/2"
    )
    zero = dataclasses.replace(SAMPLES[BlurPool], pad_mode="zero")
    assert describe.op_text(SAMPLES[BlurPool]) == "BlurPool2d 3x3/2"
    assert describe.op_text(zero) == "BlurPool2d 3x3/2 zero-padded"
    assert describe.op_text(SAMPLES[GroupNorm]) == "GroupNorm 3" and describe.layer_text(SAMPLES[GroupNorm]) == "gn 3"
    evo = dataclasses.replace(SAMPLES[NormAct], fn="evonorm_s0", groups=3)
    assert describe.op_text(SAMPLES[NormAct]) == "FilterResponseNorm+TLU" and describe.op_text(evo) == "EvoNormS0 3"
    std = dataclasses.replace(conv, std_eps=1e-8)
    assert describe.op_text(std) == "StdConv2d 3x3/2 g2 +bias" and describe.layer_text(std).startswith("std conv 3x3/2")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_the_checkpoint_layout_has_a_tensor_for_every_weight(kind: type) -> None:
    layer = SAMPLES[kind]
    shapes = weights.tensor_shapes(layer)
    assert bool(shapes) == layer.weighted
    trainable = {k: v for k, v in shapes.items() if not k.startswith("running_")}
    assert sum(int(np.prod(v)) for v in trainable.values()) == layer.params
    assert sum(int(np.prod(v)) for k, v in shapes.items() if k.startswith("running_")) == layer.stats


def test_a_1d_conv_has_its_own_words_and_layout() -> None:
    assert describe.op_text(CONV1D) == "Conv1d 5"
    assert describe.layer_text(CONV1D) == "conv 5 1→1"
    assert weights.tensor_shapes(CONV1D) == {"weight": (1, 1, 5)}
    keras_kernel = np.arange(5, dtype=np.float32).reshape(5, 1, 1)  # Conv1D: (width, in, out)
    torch_weight = keras_backend._to_torch(CONV1D, [keras_kernel])["weight"]
    assert torch_weight.shape == (1, 1, 5) and torch_weight.ravel().tolist() == [0, 1, 2, 3, 4]


WEIGHTED = [SAMPLES[k] for k in KINDS if SAMPLES[k].weighted] + [CONV1D]


@pytest.mark.parametrize("layer", WEIGHTED, ids=lambda x: f"{x.kind}{getattr(x, 'dims', '')}")
def test_the_keras_weight_layout_round_trips(layer: AnyLayer) -> None:
    rng = np.random.default_rng(0)
    tensors = {k: rng.standard_normal(v).astype(np.float32) for k, v in weights.tensor_shapes(layer).items()}
    back = keras_backend._to_torch(layer, keras_backend._from_torch(layer, tensors))
    assert set(back) == set(tensors)
    for key, value in tensors.items():
        np.testing.assert_array_equal(back[key], value)


@pytest.mark.parametrize("kind", [k for k in KINDS if not SAMPLES[k].weighted], ids=lambda k: k.__name__)
def test_the_keras_weight_layout_refuses_a_layer_without_weights(kind: type) -> None:
    with pytest.raises(ValueError, match="hold no weights"):
        keras_backend._to_torch(SAMPLES[kind], [])


@pytest.mark.parametrize("writer", ["torch", "keras"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_the_stem_and_head_writers_know_every_kind(kind: type, writer: str) -> None:
    write = torch_emit.module if writer == "torch" else keras_emit.apply
    layer = SAMPLES[kind]
    if kind in BLOCK_ONLY:
        with pytest.raises(ValueError, match="in a stem or head"):
            write(layer, "relu")
    else:
        assert write(layer, "relu").strip()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_kind_has_a_stride(kind: type) -> None:
    layer = SAMPLES[kind]
    assert stride_of(layer) == (2 if kind in (Conv, MaxPool, AvgPool, BlurPool, ZeroPad) else 1)


def test_the_stem_writers_take_an_anti_aliasing_pool() -> None:
    """A stem's pools of anti-aliasing: the floor-mode 2x2 average (timm's resnetaa), the blur pool."""
    assert torch_emit.module(FLOOR_AVG, "relu") == "nn.AvgPool2d(2)"
    assert keras_emit.apply(FLOOR_AVG, "relu") == 'x = layers.AveragePooling2D(2, 2, name="maxpool")(x)'
    assert torch_emit.module(SAMPLES[BlurPool], "relu") == 'BlurPool2d(6, 2, 3, "reflect")'
    assert keras_emit.apply(SAMPLES[BlurPool], "relu") == 'x = BlurPool2D(2, 3, "reflect", name="s_aa")(x)'


# -- parts ------------------------------------------------------------------------------------------------------
# A shipped spec (with overrides) whose network has each kind of part.
PART_EXAMPLES: dict[str, tuple[str, list[str]]] = {
    "ConvUnit": ("resnet18", []),
    "Attention": ("seresnet50", []),
    "AntiAlias": ("resnetblur18", []),
    "StochasticDepth": ("resnet50d", ["drop_path.rate=0.1"]),
    "Shortcut": ("resnet50d", []),
    "PostAct": ("resnet50", []),
    "StemConvs": ("resnet50", []),
    "StemPool": ("resnetrs50", []),
    "FinalNorm": ("resnet50v2", []),
    "Classifier": ("resnet50", []),
    "Softmax": ("keras_resnet50", []),
}


def _parts(network: Network) -> list[object]:
    return [*network.stem_parts, *network.block_parts(), *network.head_parts]


def test_every_kind_of_part_has_an_example() -> None:
    assert set(PART_EXAMPLES) == {k.__name__ for k in get_args(AnyPart)}


@pytest.mark.parametrize("kind", list(PART_EXAMPLES))
def test_every_kind_of_part_is_made_and_reported(kind: str) -> None:
    name, overrides = PART_EXAMPLES[kind]
    _, network = archgen.compile_spec(name, overrides, input_size=64)
    parts = [p for p in _parts(network) if type(p).__name__ == kind]
    assert parts, f"{name} {overrides} has no {kind}"
    # Every layer of the network is in exactly one part, in forward order.
    assert [x.name for p in _parts(network) for x in p.layers] == [x.name for x in network.layers()]
    # The reports: each layer of the part has a summary row and a node or line in the block diagram.
    rows = {r.name for r in summary.layer_rows(network)}
    assert {x.name for p in parts for x in p.layers} <= rows
    dot = graph.graph_dot(network, "block")
    assert network.name in dot
    _, plain = archgen.compile_spec("resnet18", input_size=64)
    assert diff(plain, network).identical is (name == "resnet18" and not overrides)
