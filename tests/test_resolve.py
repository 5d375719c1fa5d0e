"""The IR that ``archgen.resolve`` builds, checked against what is known without it: the layouts of
torchvision, timm and keras.applications, the papers' figures, and sums done by hand. Imports no
framework (tests/test_without_frameworks.py runs it with every framework hidden)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import SPEC_FILES, spec_path

import archgen
from archgen.compiler.resolve import drop_rates, make_divisible, pooled_size, round_down
from archgen.ir import (
    Act,
    AvgPool,
    BlockDesign,
    BlurPool,
    Conv,
    ConvSlot,
    Dropout,
    DropPath,
    DropPathOptions,
    GlobalPool,
    GroupNorm,
    InitOptions,
    Linear,
    MaxPool,
    Network,
    Norm,
    NormAct,
    NormOptions,
    SEDesign,
    ShortcutDesign,
)


def network(name: str, overrides: object = None, input_size: int | None = None) -> Network:
    return archgen.compile_spec(spec_path(name), overrides, input_size=input_size)[1]  # type: ignore[arg-type]


def local_names(net: Network, block: str) -> list[tuple[str, type]]:
    """The layers of one block: (name inside the block, IR type), in order."""
    prefix = f"{block}."
    return [(x.name.removeprefix(prefix), type(x)) for x in net.layers() if x.name.startswith(prefix)]


# -- block designs --------------------------------------------------------------------------------------------


def test_resnet50_is_torchvisions_bottleneck_with_the_stride_on_the_3x3() -> None:
    net = network("resnet50")
    assert [(s.name, s.mid_chs, s.stride, s.depth) for s in net.stages] == [
        ("layer1", 64, 1, 3),
        ("layer2", 128, 2, 4),
        ("layer3", 256, 2, 6),
        ("layer4", 512, 2, 3),
    ]
    design = net.stages[0].design
    assert design == BlockDesign(
        kind="bottleneck",
        preact=False,
        convs=(
            ConvSlot(1, "in_chs", "mid_chs", kernel=1, strided=False),
            ConvSlot(2, "mid_chs", "mid_chs", kernel=3, strided=True),  # V1.5: stride_at 3x3
            ConvSlot(3, "mid_chs", "out_chs", kernel=1, strided=False, after_stride=True),
        ),
        shortcut=ShortcutDesign("conv", bias=False, norm=True),
        attn=None,
        zero_init=None,  # torchvision's zero_init_residual defaults to False
        stride_last=False,
    )
    assert all(s.design == design for s in net.stages)
    assert design.residual and design.last == 3
    assert design.shortcut is not None and design.shortcut.project_on_stride and not design.shortcut.pooled
    # timm's module order: the residual branch, the shortcut, then the activation after the addition.
    assert local_names(net, "layer1.0") == [
        ("conv1", Conv),
        ("bn1", Norm),
        ("act1", Act),
        ("conv2", Conv),
        ("bn2", Norm),
        ("act2", Act),
        ("conv3", Conv),
        ("bn3", Norm),
        ("downsample.0", Conv),
        ("downsample.1", Norm),
        ("act3", Act),
    ]
    assert [name for name, _ in local_names(net, "layer1.1")] == [
        "conv1",
        "bn1",
        "act1",
        "conv2",
        "bn2",
        "act2",
        "conv3",
        "bn3",
        "act3",
    ]
    conv1, conv2, conv3 = (net.layer(f"layer2.0.conv{i}") for i in (1, 2, 3))
    assert isinstance(conv1, Conv) and isinstance(conv2, Conv) and isinstance(conv3, Conv)
    assert (conv1.in_ch, conv1.out_ch, conv1.kernel, conv1.stride) == (256, 128, 1, 1)
    assert (conv2.in_ch, conv2.out_ch, conv2.kernel, conv2.stride, conv2.padding) == (128, 128, 3, 2, 1)
    assert (conv3.in_ch, conv3.out_ch, conv3.kernel, conv3.stride) == (128, 512, 1, 1)
    assert conv2.in_shape == (128, 56, 56) and conv2.out_shape == (128, 28, 28)
    projection = net.layer("layer2.0.downsample.0")
    assert isinstance(projection, Conv) and (projection.kernel, projection.stride, projection.bias) == (1, 2, False)
    assert projection.in_shape == (256, 56, 56) and projection.out_shape == (512, 28, 28)
    norm = net.layer("layer2.0.downsample.1")
    assert isinstance(norm, Norm) and norm.channels == 512


def test_resnet50d_takes_the_stride_in_an_avgpool_shortcut() -> None:
    net = network("resnet50d")
    design = net.stages[1].design
    assert design.shortcut == ShortcutDesign("avgpool", bias=False, norm=True)
    assert design.shortcut.pooled and not design.shortcut.project_on_stride
    assert design.zero_init == "bn3"  # init.zero_init_last: the last norm of the residual branch
    pool = net.layer("layer2.0.downsample.0")
    assert isinstance(pool, AvgPool)
    assert (pool.kernel, pool.stride, pool.padding, pool.ceil_mode, pool.count_include_pad) == (2, 2, 0, True, False)
    assert pool.in_shape == (256, 56, 56) and pool.out_shape == (256, 28, 28)
    projection = net.layer("layer2.0.downsample.1")
    assert isinstance(projection, Conv) and (projection.kernel, projection.stride) == (1, 1)
    assert (projection.in_ch, projection.out_ch) == (256, 512)
    assert isinstance(net.layer("layer2.0.downsample.2"), Norm)
    # layer1 keeps the size: its pool slot is an Identity (no layer), the projection keeps index 1 (timm).
    with pytest.raises(KeyError):
        net.layer("layer1.0.downsample.0")
    assert isinstance(net.layer("layer1.0.downsample.1"), Conv)
    # Tweak C: the deep stem of three 3x3 convs, 32, 32, 64 wide, the first strided.
    stem_convs = [x for x in net.stem if isinstance(x, Conv)]
    assert [(x.name, x.out_ch, x.kernel, x.stride) for x in stem_convs] == [
        ("conv1.0", 32, 3, 2),
        ("conv1.3", 32, 3, 1),
        ("conv1.6", 64, 3, 1),
    ]


def test_resnet50v2_is_preact_with_the_stride_last_and_biases_only_where_no_norm_follows() -> None:
    net = network("resnet50v2")
    design = net.stages[0].design
    assert design.preact and design.stride_last and design.kind == "bottleneck"
    # conv_bias: unnormed. In a pre-activation block a norm follows conv1 and conv2 (bn2, bn3), not conv3.
    assert [slot.bias for slot in design.convs] == [False, False, True]
    assert design.shortcut == ShortcutDesign("maxpool", bias=True, norm=False)
    assert design.zero_init is None
    # The stride sits on the last block of a stage (keras.applications' stack2), stages 2, 2, 2, 1.
    assert [[b.stride for b in s.blocks] for s in net.stages] == [[1, 1, 2], [1, 1, 1, 2], [1] * 5 + [2], [1, 1, 1]]
    # The first block projects (channels change) without a pool or a norm; the last strides by a 1x1 max pool.
    assert local_names(net, "layer1.0") == [
        ("bn1", Norm),
        ("act1", Act),
        ("conv1", Conv),
        ("bn2", Norm),
        ("act2", Act),
        ("conv2", Conv),
        ("bn3", Norm),
        ("act3", Act),
        ("conv3", Conv),
        ("downsample.1", Conv),
    ]
    projection = net.layer("layer1.0.downsample.1")
    assert isinstance(projection, Conv) and projection.bias and (projection.in_ch, projection.out_ch) == (64, 256)
    pool = net.layer("layer1.2.downsample.0")
    assert isinstance(pool, MaxPool) and (pool.kernel, pool.stride, pool.padding) == (1, 2, 0)
    assert pool.in_shape == (256, 56, 56) and pool.out_shape == (256, 28, 28)
    for name, bias in (("layer1.0.conv1", False), ("layer1.0.conv2", False), ("layer1.0.conv3", True)):
        conv = net.layer(name)
        assert isinstance(conv, Conv) and conv.bias is bias, name
    # stem.norm_act false: the stem conv has no norm after it, so it has a bias; the head adds the final norm.
    stem_conv = net.layer("conv1")
    assert isinstance(stem_conv, Conv) and stem_conv.bias
    assert [(x.name, type(x)) for x in net.head] == [
        ("post_bn", Norm),
        ("post_act", Act),
        ("global_pool", GlobalPool),
        ("fc", Linear),
        ("softmax", Act),
    ]


def test_resnext50_32x4d_groups_the_3x3() -> None:
    net = network("resnext50_32x4d")
    # torchvision: width = int(planes * base_width / 64) * groups = int(64 * 4 / 64) * 32 = 128.
    assert [s.mid_chs for s in net.stages] == [128, 256, 512, 1024]
    assert [slot.groups for slot in net.stages[0].design.convs] == [1, 32, 1]
    conv2 = net.layer("layer1.0.conv2")
    assert isinstance(conv2, Conv)
    assert (conv2.in_ch, conv2.out_ch, conv2.groups, conv2.kernel) == (128, 128, 32, 3)
    assert conv2.params == 128 * (128 // 32) * 3 * 3 == 4608
    assert net.stages[0].out_shape == (256, 56, 56)


def test_wide_resnet50_2_doubles_the_inner_width() -> None:
    assert [s.mid_chs for s in network("wide_resnet50_2").stages] == [128, 256, 512, 1024]


def test_se_widths_and_design_of_seresnet50() -> None:
    net = network("seresnet50")
    assert net.stages[0].design.attn == SEDesign(ratio=0.0625, divisor=8, rounding="nearest", bias=True, act="relu")
    # timm: make_divisible(channels / 16, 8): 256 / 16 = 16, 2048 / 16 = 128.
    for name, reduced, channels in (("layer1.0.se", 16, 256), ("layer4.2.se", 128, 2048)):
        fc1, fc2 = net.layer(f"{name}.fc1"), net.layer(f"{name}.fc2")
        assert isinstance(fc1, Conv) and isinstance(fc2, Conv)
        assert (fc1.in_ch, fc1.out_ch, fc2.out_ch, fc1.kernel) == (channels, reduced, channels, 1)
        gate = net.layer(f"{name}.gate")
        assert isinstance(gate, Act) and gate.fn == "sigmoid"


def test_plain_blocks_have_no_shortcut() -> None:
    net = network("imagenette_cnn")
    assert net.stem == ()
    design = net.stages[0].design
    assert design.kind == "plain" and design.shortcut is None and not design.residual and not net.residual
    assert [(s.in_shape[1], s.out_shape[0], s.out_shape[1]) for s in net.stages] == [
        (128, 16, 64),
        (64, 32, 32),
        (32, 64, 16),
        (16, 128, 8),
        (8, 256, 4),
    ]


# -- network options --------------------------------------------------------------------------------------------


def test_network_options_resolved_from_the_spec() -> None:
    net = network("resnet50")
    assert net.act == "relu"
    assert net.norm == NormOptions(eps=1e-5, momentum=0.1)  # PyTorch's BatchNorm2d defaults
    assert net.drop_path == DropPathOptions(rate=0.0, schedule="linear", depths=(3, 4, 6, 3))
    assert net.init == InitOptions(conv="kaiming_normal", mode="fan_out", zero_init_last=False)
    assert net.classes == 1000 and net.output_shape == (1000,)
    keras = network("keras_resnet50")
    assert keras.norm == NormOptions(eps=1.001e-5, momentum=0.01)  # Keras' momentum 0.99 in PyTorch's convention
    norm = keras.layer("bn1")
    assert isinstance(norm, Norm) and (norm.eps, norm.momentum) == (1.001e-5, 0.01)
    assert network("resnet50d").init.zero_init_last
    assert network("resnet18", {"head.classes": 10}).classes == 10


def test_a_features_head_has_no_classes_and_returns_the_last_feature_map() -> None:
    net = network("resnet50", {"head": "features"})
    assert net.classes is None and net.head == ()
    assert net.output_shape == (2048, 7, 7)


def test_head_dropout_and_pool() -> None:
    net = network("resnetrs50")
    dropout = net.layer("dropout")
    assert isinstance(dropout, Dropout) and dropout.rate == 0.25 and dropout.in_shape == (2048,)
    pool = net.layer("global_pool")
    assert isinstance(pool, GlobalPool) and pool.pool == "avg" and pool.out_shape == (2048,)
    fc = net.layer("fc")
    assert isinstance(fc, Linear) and (fc.in_features, fc.out_features, fc.params) == (2048, 1000, 2_049_000)


# -- drop path --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depths", "rate", "schedule", "expected"),
    [
        ([2, 2], 0.3, "linear", [[0.0, 0.1], [0.2, 0.3]]),  # 0 to 0.3 over 4 blocks: steps of 0.3 / 3
        ([2, 2], 0.3, "per_stage", [[0.2, 0.2], [0.3, 0.3]]),  # 0.3 * (s + 2) / 3
        ([2, 2], 0.3, "uniform", [[0.3, 0.3], [0.3, 0.3]]),
        ([3, 1], 0.2, "per_stage", [[0.2 * 2 / 3] * 3, [0.2]]),
        ([1], 0.3, "linear", [[0.3]]),  # one block gets the full rate (no division by zero)
        ([1], 0.3, "per_stage", [[0.3]]),  # 0.3 * 2 / 2
        ([2, 3], 0.0, "linear", [[0.0, 0.0], [0.0, 0.0, 0.0]]),
    ],
)
def test_drop_rates(depths: list[int], rate: float, schedule: str, expected: list[list[float]]) -> None:
    got = drop_rates(depths, rate, schedule)
    assert [len(row) for row in got] == depths
    assert got == [pytest.approx(row) for row in expected]


def test_drop_path_layers_follow_the_schedule() -> None:
    net = network("resnet50", ["drop_path.rate=0.15"], input_size=32)
    blocks = [b for s in net.stages for b in s.blocks]
    expected = [0.15 * i / 15 for i in range(16)]
    assert [b.drop_path for b in blocks] == pytest.approx(expected)
    layers = [x for x in net.layers() if isinstance(x, DropPath)]
    assert [x.name for x in layers] == [f"{b.name}.drop_path" for b in blocks]
    assert [x.rate for x in layers] == pytest.approx(expected)
    assert net.drop_path == DropPathOptions(rate=0.15, schedule="linear", depths=(3, 4, 6, 3))
    assert not any(isinstance(x, DropPath) for x in network("resnet50", input_size=32).layers())


# -- shape rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        (25.6, 8, 24),  # 256 * 0.1: 25.6 + 4 = 29.6 -> 24
        (204.8, 8, 208),  # 2048 * 0.1: 208.8 -> 208
        (19.2, 8, 16),  # 64 * 0.3
        (12, 8, 16),  # halfway rounds up
        (11.9, 8, 8),
        (3, 8, 8),  # never below the divisor
        (100, 16, 96),  # 108 // 16 * 16
        (64, 8, 64),
    ],
)
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    assert make_divisible(value, divisor) == expected


@pytest.mark.parametrize(("value", "divisor", "expected"), [(25.6, 8, 24), (204.8, 1, 204), (5, 8, 8), (31.9, 8, 24)])
def test_round_down(value: float, divisor: int, expected: int) -> None:
    assert round_down(value, divisor) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((224, 7, 2, 3), 112),  # the stem conv: (224 + 6 - 7) // 2 + 1
        ((112, 3, 2, 1), 56),  # the stem max pool
        ((7, 3, 2, 1), 4),  # (7 + 2 - 3) // 2 + 1
        ((5, 3, 2, 1), 3),
        ((5, 1, 2, 0), 3),  # a strided 1x1: (5 - 1) // 2 + 1
        ((5, 2, 2, 0), 2),  # floor mode drops the last pixel
        ((56, 3, 1, 1), 56),
    ],
)
def test_pooled_size_floor_mode(args: tuple[int, int, int, int], expected: int) -> None:
    assert pooled_size(*args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((5, 2, 2, 0), 3),  # ceil((5 - 2) / 2) + 1: the last window holds the last pixel alone
        ((9, 2, 2, 0), 5),
        ((4, 2, 2, 0), 2),  # even sizes: as floor mode
        ((1, 2, 2, 0), 1),
        ((6, 3, 2, 1), 4),  # ceil((6 + 2 - 3) / 2) + 1 = 4; its last window starts at 5, inside the input
        ((5, 2, 2, 1), 3),  # ceil(5 / 2) + 1 = 4, but window 4 would start at 6, in the padding: dropped
    ],
)
def test_pooled_size_ceil_mode(args: tuple[int, int, int, int], expected: int) -> None:
    assert pooled_size(*args, ceil_mode=True) == expected


def test_avgpool_shortcut_on_an_odd_size_keeps_the_last_pixel() -> None:
    net = network("resnet50d", input_size=72)  # layer3 gets 9x9
    pool = net.layer("layer4.0.downsample.0")
    assert isinstance(pool, AvgPool) and pool.in_shape == (1024, 5, 5) and pool.out_shape == (1024, 3, 3)
    assert net.layer("layer4.0.conv2").out_shape == (512, 3, 3)  # the residual branch agrees


# -- counts -----------------------------------------------------------------------------------------------------


def test_resnet50_counts_are_torchvisions() -> None:
    net = network("resnet50")
    assert net.params == 25_557_032 and net.stats == 53_120
    # Multiply-accumulates of the convs and the fc at 224 px (torchvision's "4.089 GFLOPS").
    assert net.flops == 4_089_184_256


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_layer_counts_what_its_shape_says(path: Path) -> None:
    _, net = archgen.compile_spec(path)
    names = [x.name for x in net.layers()]
    assert len(names) == len(set(names)), "layer names are unique"
    convs = 0
    for layer in net.layers():
        match layer:
            case Conv(in_ch=c, out_ch=o, kernel=k, stride=s, groups=g, bias=bias, dims=d):
                convs += 1
                assert layer.params == o * (c // g) * k**d + (o if bias else 0), layer.name
                assert layer.padding == k // 2, layer.name
                sizes = tuple(pooled_size(n, k, s, k // 2) for n in layer.in_shape[1:])
                assert len(sizes) == d, layer.name
                assert layer.in_shape[0] == c and layer.out_shape == (o, *sizes), layer.name
                assert layer.flops == math.prod(sizes) * o * (c // g) * k**d and layer.stats == 0, layer.name
            case Norm(channels=c):
                assert layer.params == layer.stats == 2 * c and layer.in_shape == layer.out_shape, layer.name
                assert layer.in_shape[0] == c and layer.flops == 0, layer.name
            case Linear(in_features=i, out_features=o, bias=bias):
                assert layer.params == i * o + (o if bias else 0) and layer.flops == i * o, layer.name
            case GroupNorm(channels=c):
                assert layer.params == 2 * c and layer.stats == layer.flops == 0, layer.name
                assert layer.in_shape == layer.out_shape and layer.in_shape[0] == c, layer.name
            case NormAct(channels=c):  # scale, shift and tau (frn) or v (evonorm_s0) per channel
                assert layer.params == 3 * c and layer.stats == layer.flops == 0, layer.name
                assert layer.in_shape == layer.out_shape and layer.in_shape[0] == c, layer.name
            case BlurPool(channels=c, kernel=k, stride=s, padding=p):  # a depthwise conv of a fixed filter
                sizes = tuple(pooled_size(n, k, s, p) for n in layer.in_shape[1:])
                assert p == (s - 1 + k - 1) // 2 and layer.out_shape == (c, *sizes), layer.name
                assert layer.params == layer.stats == 0 and layer.flops == math.prod(sizes) * c * k * k, layer.name
            case _:
                assert layer.params == layer.stats == layer.flops == 0, layer.name
    assert convs > 0
    assert net.params == sum(x.params for x in net.layers())


def test_resolve_of_a_loaded_spec_is_compile_spec() -> None:
    spec = archgen.load_spec(spec_path("resnet50d"))
    assert archgen.resolve(spec) == archgen.compile_spec(spec_path("resnet50d"))[1]
    assert archgen.resolve(spec, input_size=64).input_shape == (3, 64, 64)


# -- looking layers up ------------------------------------------------------------------------------------------


def test_layer_by_name() -> None:
    net = network("resnet50d")
    conv = net.layer("layer3.5.conv2")
    assert isinstance(conv, Conv) and conv.name == "layer3.5.conv2" and conv.out_ch == 256
    assert net.layer("fc") is net.head[-1]
    for name in ("layer5.0.conv1", "layer1.0.conv4", "conv1", ""):
        with pytest.raises(KeyError, match=f"no layer '{name}' in the network 'resnet50d'"):
            net.layer(name)


# -- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "shape"),
    [
        (
            "block:\n  type: basic\n  shortcut: identity\nstages: 18\n",
            3,
            "block.shortcut.type",
            "64->128 channels, stride 2",
        ),
        (
            "block: basic\nstages:\n  - {depth: 2, width: 64}\n"
            "  - depth: 2\n    width: 128\n    block: {shortcut: identity}\n",
            6,
            "stages.1.block.shortcut.type",
            "64->128 channels, stride 2",
        ),
        (  # a bottleneck changes the channels in its first block already (64 -> 256)
            "block: {type: bottleneck, shortcut: {type: identity}}\nstages: 50\n",
            1,
            "block.shortcut.type",
            "64->256 channels, stride 1",
        ),
        (  # the same channels, but a stride
            "block: {type: basic, shortcut: identity}\nstages:\n  - {depth: 1, width: 64, stride: 2}\n",
            1,
            "block.shortcut.type",
            "64->64 channels, stride 2",
        ),
    ],
    ids=["top-level", "stage-block", "bottleneck", "stride-only"],
)
def test_an_identity_shortcut_that_must_change_shape_is_refused(
    tmp_path: Path, text: str, line: int, field: str, shape: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(archgen.SpecError) as info:
        archgen.compile_spec(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    assert f"an identity shortcut cannot change shape ({shape})" in err.message


def test_an_identity_shortcut_where_no_block_changes_shape_resolves() -> None:
    overrides = {
        "block.shortcut": "identity",
        "stages": [{"depth": 2, "width": 64}, {"depth": 2, "width": 64, "stride": 1}],
    }
    net = network("resnet18", overrides)
    assert net.stages[0].design.shortcut == ShortcutDesign("identity")
    assert not any(".downsample." in x.name for x in net.layers())


# -- dilation (output_stride) ---------------------------------------------------------------------------------


def conv_at(net: Network, name: str) -> Conv:
    layer = net.layer(name)
    assert isinstance(layer, Conv)
    return layer


def test_output_stride_8_dilates_the_last_two_stages_as_torchvision_does() -> None:
    """torchvision's replace_stride_with_dilation=[False, True, True]: layer3 and layer4 keep 28x28
    at 224 px; the first block of a stage keeps the previous dilation in its strided 3x3."""
    plain, net = network("resnet50"), network("resnet50", {"output_stride": 8})
    assert [(s.stride, s.dilation, s.first_dilation, s.out_shape[1]) for s in net.stages] == [
        (1, 1, 1, 56),
        (2, 1, 1, 28),
        (1, 2, 1, 28),
        (1, 4, 2, 28),
    ]
    assert net.params == plain.params and net.stats == plain.stats
    assert [(f.reduction, f.shape[1:]) for f in net.feature_info] == [
        (2, (112, 112)),
        (4, (56, 56)),
        (8, (28, 28)),
        (8, (28, 28)),
        (8, (28, 28)),
    ]
    for name, dilation in [
        ("layer3.0.conv2", 1),
        ("layer3.1.conv2", 2),
        ("layer3.5.conv2", 2),
        ("layer4.0.conv2", 2),
        ("layer4.2.conv2", 4),
    ]:
        conv = conv_at(net, name)
        assert (conv.dilation, conv.padding, conv.stride) == (dilation, dilation, 1), name
        assert conv.out_shape == (conv.out_ch, 28, 28)
    assert conv_at(net, "layer3.1.conv2").flops == 256 * 256 * 9 * 28 * 28
    # 1x1 convs have nothing to dilate; the projection keeps its 1x1 at stride 1.
    assert conv_at(net, "layer4.0.conv1").dilation == 1
    assert (conv_at(net, "layer3.0.downsample.0").stride, conv_at(net, "layer3.0.downsample.0").dilation) == (1, 1)


def test_output_stride_16_dilates_only_the_last_stage() -> None:
    net = network("resnet50", {"output_stride": 16})
    assert [(s.stride, s.dilation) for s in net.stages] == [(1, 1), (2, 1), (2, 1), (1, 2)]
    assert net.stages[-1].out_shape == (2048, 14, 14)
    assert net.output_shape == (1000,)


def test_output_stride_at_or_above_the_networks_own_changes_no_layer() -> None:
    plain = network("resnet50")
    for value in (32, 16):
        cifar = network("resnet50", {"output_stride": value, "stem.stride": 1, "stem.pool": "none"})
        if value == 32:
            assert list(network("resnet50", {"output_stride": 32}).layers()) == list(plain.layers())
        # a stride-1 stem without pool: the stages reach 8x, under either value
        assert [s.dilation for s in cifar.stages] == [1, 1, 1, 1]


def test_a_basic_block_dilates_its_second_conv_in_the_first_block() -> None:
    """timm's BasicBlock: conv1 takes first_dilation (the previous), conv2 the stage's."""
    net = network("resnet18", {"output_stride": 8})
    assert [conv_at(net, f"layer3.0.conv{i}").dilation for i in (1, 2)] == [1, 2]
    assert [conv_at(net, f"layer4.0.conv{i}").dilation for i in (1, 2)] == [2, 4]
    assert [conv_at(net, f"layer4.1.conv{i}").dilation for i in (1, 2)] == [4, 4]


def test_an_original_bottleneck_strided_on_its_1x1_dilates_its_3x3_with_the_stage() -> None:
    net = network("keras_resnet50", {"output_stride": 16})
    assert conv_at(net, "layer4.0.conv2").dilation == 2  # after the stride's 1x1: the stage's dilation


def test_a_resnet_d_shortcut_in_a_dilated_stage_averages_2x2_at_stride_1_as_timm() -> None:
    net = network("resnet50d", {"output_stride": 8}, input_size=64)
    for stage in ("layer3", "layer4"):
        pool = net.layer(f"{stage}.0.downsample.0")
        assert isinstance(pool, AvgPool)
        assert (pool.kernel, pool.stride, pool.pad_after, pool.ceil_mode) == (2, 1, 1, False)
        assert pool.out_shape == pool.in_shape == (pool.in_shape[0], 8, 8)
        assert isinstance(net.layer(f"{stage}.0.downsample.1"), Conv)
    layer2 = net.layer("layer2.0.downsample.0")
    assert isinstance(layer2, AvgPool) and (layer2.kernel, layer2.stride, layer2.pad_after) == (2, 2, 0)
    # blocks that keep their shape have no shortcut layers, dilated or not
    assert not any(x.name.startswith("layer3.1.downsample") for x in net.layers())


def test_stride_last_stages_keep_the_previous_dilation_up_to_their_last_block() -> None:
    net = network("resnet50v2", {"output_stride": 8}, input_size=64)  # strides 2, 2, 2, 1, on last blocks
    plan = [(s.stride, s.dilation, s.first_dilation) for s in net.stages]
    assert plan == [(2, 1, 1), (1, 2, 1), (1, 4, 2), (1, 4, 4)]
    assert [(b.first_dilation, b.dilation) for b in net.stages[1].blocks] == [(1, 1)] * 3 + [(1, 2)]
    assert [(b.first_dilation, b.dilation) for b in net.stages[2].blocks] == [(2, 2)] * 5 + [(2, 4)]
    assert [conv_at(net, f"layer2.3.conv{i}").dilation for i in (1, 2, 3)] == [1, 1, 1]  # the 3x3 is the strided one
    assert conv_at(net, "layer3.0.conv2").dilation == 2


@pytest.mark.parametrize("spec", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_spec_takes_output_stride_8_with_its_parameters_unchanged(spec: Path) -> None:
    plain = archgen.compile_spec(spec, input_size=64)[1]
    net = archgen.compile_spec(spec, {"output_stride": 8}, input_size=64)[1]
    assert (net.params, net.stats) == (plain.params, plain.stats)
    assert net.feature_info[-1].reduction == min(8, plain.feature_info[-1].reduction)
    assert net.stages[-1].out_shape[1] == 64 // net.feature_info[-1].reduction


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stem.stride": 16}, "the stem alone reduces the input 32x, past output_stride 8"),
        (
            {"stages": [{"depth": 1, "width": 64}, {"depth": 1, "width": 64, "stride": 4}]},
            "stage strides [1, 4] after a 4x stem cannot give output_stride 8 (they reach 4x, then dilate)",
        ),
    ],
    ids=["stem", "stages"],
)
def test_an_output_stride_the_network_cannot_reach_is_refused(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    path = tmp_path / "dense.yaml"
    path.write_text("extends: resnet18\noutput_stride: 8\n")
    with pytest.raises(archgen.SpecError) as info:
        archgen.compile_spec(path, overrides)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 2, "output_stride"), str(err)
    assert message in err.message


def test_output_stride_takes_8_16_or_32_only(tmp_path: Path) -> None:
    path = tmp_path / "dense.yaml"
    path.write_text("extends: resnet18\noutput_stride: 12\n")
    with pytest.raises(archgen.SpecError) as info:
        archgen.load_spec(path)
    assert (info.value.line, info.value.field) == (2, "output_stride")
    assert "8" in info.value.message and "16" in info.value.message and "32" in info.value.message


# -- features heads with out_indices --------------------------------------------------------------------------


def test_out_indices_end_the_network_at_the_last_stage_taken() -> None:
    head = {"head": {"type": "features", "out_indices": [1, 2]}}
    net, full = network("resnet50", head), network("resnet50")
    assert [s.name for s in net.stages] == ["layer1", "layer2"]
    assert net.head == () and net.classes is None
    assert net.out_indices == (1, 2)
    assert net.output_shapes == ((256, 56, 56), (512, 28, 28))
    stem_and_two = sum(x.params for x in full.stem) + sum(sum(x.params for x in s.layers) for s in full.stages[:2])
    assert net.params == stem_and_two
    assert net.boundaries()["output.1"] == (512, 28, 28)


def test_out_indices_count_the_stem_first_and_negatives_from_the_end() -> None:
    net = network("resnet50", {"head": {"type": "features", "out_indices": [-1, 0]}})
    assert net.out_indices == (0, 4)
    assert net.output_shapes == ((64, 112, 112), (2048, 7, 7))
    stemless = network("resnet18", {"stem": "none", "head": {"type": "features", "out_indices": [0]}}, 32)
    assert stemless.out_indices == (0,) and [s.name for s in stemless.stages] == ["layer1"]


def test_a_pre_activation_net_with_out_indices_builds_no_final_norm() -> None:
    net = network("resnet50v2", {"head": {"type": "features", "out_indices": [4]}})
    assert net.head == ()
    assert not any(x.name.startswith("post_") for x in net.layers())
    kept = network("resnet50v2", {"head": "features"})  # without out_indices: the last map, normalised
    assert [x.name for x in kept.head] == ["post_bn", "post_act"]


def test_blocks_before_the_end_keep_the_whole_specs_drop_path_rates() -> None:
    overrides = {"drop_path.rate": 0.15, "head": {"type": "features", "out_indices": [1, 2]}}
    net = network("resnet50", overrides, input_size=32)
    assert [b.drop_path for s in net.stages for b in s.blocks] == pytest.approx([0.15 * i / 15 for i in range(7)])
    assert net.drop_path.depths == (3, 4, 6, 3)


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([5], "this network has 5 feature maps (the stem and 4 stages), so indices from -5 to 4"),
        ([-6, 1], "indices from -5 to 4"),
        ([1, -4], "name a feature map twice"),
        ([0], "take no stage's map"),
    ],
)
def test_out_indices_that_do_not_name_stage_maps_are_refused(tmp_path: Path, indices: list[int], message: str) -> None:
    path = tmp_path / "dense.yaml"
    path.write_text(f"extends: resnet50\nhead:\n  type: features\n  out_indices: {indices}\n")
    with pytest.raises(archgen.SpecError) as info:
        archgen.compile_spec(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 4, "head.out_indices"), str(err)
    assert message in err.message


# -- attention: attn is the union of kinds, se the spelling of one ---------------------------------------------
@pytest.mark.parametrize(
    "spelling",
    [
        "block.attn={type: se, ratio: 0.25, rounding: floor, divisor: 4, act: silu}",
        "block.attn={ratio: 0.25, rounding: floor, divisor: 4, act: silu}",  # se, the default kind
    ],
)
def test_attn_se_is_the_same_network_as_se(spelling: str) -> None:
    by_se = network("resnet50", ["block.se={ratio: 0.25, rounding: floor, divisor: 4, act: silu}"])
    by_attn = network("resnet50", [spelling])
    assert list(by_attn.layers()) == list(by_se.layers())
    assert by_attn.stages[0].design == by_se.stages[0].design
    # 256 * 0.25 = 64 (floor to a multiple of 4); the gate is the module's last layer
    assert by_attn.layer("layer1.0.se.fc1").out_shape[0] == 64
    assert by_attn.layer("layer1.0.se.act").fn == "silu"


def test_a_bare_attention_type_takes_its_defaults() -> None:
    assert network("resnet50", ["block.attn=se"]).stages[0].design.attn == SEDesign(0.0625, 8, "nearest", True, "relu")


def test_se_and_attn_together_are_refused() -> None:
    with pytest.raises(archgen.SpecError) as err:
        network("seresnet50", ["block.attn=se"])
    problem = err.value.problems[0]
    assert problem.field == "block" and "se and attn both given" in problem.message
    assert "received" not in problem.message


def test_an_unknown_attention_type_is_named() -> None:
    with pytest.raises(archgen.SpecError) as err:
        network("resnet50", ["block.attn={type: sx}"])
    problem = err.value.problems[0]
    assert problem.field == "block.attn.type" and "unknown type 'sx'" in problem.message


def test_a_spec_without_attn_resolves_to_the_same_digest_as_before_the_field() -> None:
    """attn is left out of the resolved form where unset: adding the field changed no spec's digest."""
    spec, _ = archgen.compile_spec(spec_path("seresnet50"))
    assert "attn" not in spec.model_dump(mode="json")["block"]
    spec, _ = archgen.compile_spec(spec_path("resnet50"), ["block.attn=se"])
    assert spec.model_dump(mode="json")["block"]["attn"]["type"] == "se"
