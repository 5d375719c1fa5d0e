"""Spec -> IR: every layer named, shaped and counted, without any framework.

Small pure functions, one per rule: shapes (``pooled_size``), layer factories
(``conv``, ``norm``, ...), block designs (``block_design``: what a block is made
of, decided once), the layers of a block rendered from its design
(``block_layers``, into typed parts), the feature taps, the drop-path schedule, the size budget. A rule that
refuses a network raises ``Refused`` with the field path it concerns;
``resolve`` maps that path to file, line and column in one place (``_locate``).

Names are module paths of the reference the spec's ``naming`` names (``archgen.ir.naming``), so that
its checkpoints load into the PyTorch backend unchanged: torchvision's (stem ``conv1``/``bn1``/``act1``/
``maxpool``, stages ``layer1..``, blocks ``conv1, bn1, act1, ...``, shortcut ``downsample.N``, SE
``se.fc1/fc2``, head ``global_pool``/``fc``) or timm's resnetv2 (``stem.conv``, ``stages.0.blocks.0.norm1``,
``downsample.conv``, ``norm``, ``head.fc``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, assert_never, cast

from ..errors import Problem, SpecError, dotted
from ..ir import (
    NAMINGS,
    Act,
    AntiAlias,
    AntiAliasDesign,
    AnyLayer,
    Attention,
    AttentionDesign,
    AvgPool,
    Block,
    BlockDesign,
    BlockPart,
    BlurPool,
    Classifier,
    Conv,
    ConvSlot,
    ConvUnit,
    Dropout,
    DropPath,
    DropPathOptions,
    EcaDesign,
    FeatureInfo,
    FinalNorm,
    FreezeOptions,
    GlobalPool,
    GroupNorm,
    HeadPart,
    InitOptions,
    Layer,
    Linear,
    MaxPool,
    Naming,
    Network,
    Norm,
    NormAct,
    NormOptions,
    PostAct,
    SEDesign,
    Shape,
    Shortcut,
    ShortcutDesign,
    Softmax,
    Stage,
    StemConvs,
    StemPart,
    StemPool,
    StochasticDepth,
    ZeroPad,
    part_layers,
)
from ..language.spec import (
    MAX_INPUT_SIZE,
    AntiAliasSpec,
    AttentionSpec,
    AvgAntiAlias,
    BasicBlock,
    BatchNormSpec,
    BlurAntiAlias,
    BottleneckBlock,
    ClassicStem,
    ClassifierHead,
    DeepStem,
    EcaAttention,
    EvoNormS0Spec,
    FeaturesHead,
    FilterResponseNormSpec,
    GroupNormSpec,
    NormSpec,
    NoStem,
    PlainBlock,
    SEAttention,
    Spec,
)
from ..language.yamlsource import Path_, Pos, Positions

# Refused from the IR's counts, before any framework allocates anything (docs/refused.md).
# Both are fixed figures, not this machine's memory, so a spec is valid everywhere or nowhere.
MAX_PARAMS = 4_000_000_000  # 16 GB of float32 weights
# Activations of one sample: the input and every layer's output, summed (what a training step keeps
# for the backward pass: the first conv's weight gradient needs the input); 2**34 elements are 64 GiB
# in float32. ResNet-RS-420 at 320 px: 377 M.
MAX_ACTIVATIONS = 2**34

BlockSpec = BasicBlock | BottleneckBlock | PlainBlock


class Refused(Exception):
    """A rule refuses the network: the message, and the field path it concerns (located by ``resolve``)."""

    def __init__(self, message: str, field: Path_) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Rules:
    """What every layer factory needs from the spec: the norm, the activation, the conv-bias rule and
    the input size (named in messages)."""

    norm: NormOptions
    act: str
    conv_bias: str  # never | always | unnormed
    hw: tuple[int, int]
    channels: int = 3  # of the input
    naming: Naming = NAMINGS["torchvision"]
    std_eps: float | None = None  # weight-standardised convs (the spec's weight_std)

    @property
    def input_elements(self) -> int:
        return self.channels * self.hw[0] * self.hw[1]

    @property
    def after_norm(self) -> str:
        """The activation after a norm: the network's, or none where the norm is its own (frn, evonorm_s0)."""
        return "identity" if self.norm.is_act else self.act

    def bias(self, normed: bool) -> bool:
        """Whether a conv has a bias: always, or only where no norm follows it (keras.applications V2)."""
        return self.conv_bias == "always" or (self.conv_bias == "unnormed" and not normed)

    @property
    def size(self) -> str:
        return "x".join(str(v) for v in self.hw)


def spec_digest(resolved: dict[str, Any]) -> str:
    """sha256 of the resolved spec's JSON data (canonical form): identifies what was compiled."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- shape rules ------------------------------------------------------------------------------------------------
def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never below it."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def round_down(value: float, divisor: int) -> int:
    """The multiple of ``divisor`` at or below ``value``, never below ``divisor``."""
    return max(divisor, int(value) // divisor * divisor)


def pooled_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """Output size of a conv or pool, exactly as PyTorch computes it."""
    span = size + 2 * padding - (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def scaled_width(width: int, multiplier: float) -> int:
    return width if multiplier == 1.0 else make_divisible(width * multiplier)


def check_size(r: Rules, name: str, hw: tuple[int, int], out: tuple[int, int], what: str, stride: int) -> None:
    """Refuse a layer whose output would be empty, as PyTorch does ("Output size is too small"): the
    output size is ``pooled_size``'s, PyTorch's own arithmetic, which Keras' explicit padding and the
    ceil-mode average pool reproduce. A stride larger than the map is no reason: a 3x3/2 conv padded by
    1 maps 1x1 to 1x1, in both frameworks.

    Every layer of the language pads by ``kernel // 2`` (a pool's windows start inside the map), so no
    output is ever empty and any input size from 1 is accepted; the check guards a layer that would not."""
    (h, w), (oh, ow) = hw, out
    if oh < 1 or ow < 1:
        raise Refused(
            f"{name}: spatial size reaches zero ({h}x{w} input to {what}, stride {stride}); "
            f"the {r.size} input is too small for this network's downsampling",
            ("input", "size"),
        )


# -- layer factories --------------------------------------------------------------------------------------------
def conv(
    r: Rules,
    name: str,
    shape: Shape,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    *,
    bias: bool,
    field: Path_,
    dilation: int = 1,
    standardize: bool = True,
) -> Conv:
    """A conv padded by ``dilation * (kernel // 2)``; weight-standardised where the spec says so, unless
    ``standardize`` is false (attention's convs)."""
    c, h, w = shape
    if c % groups or out_ch % groups:
        raise Refused(f"{name}: {groups} groups do not divide {c} input / {out_ch} output channels", field)
    dilation = dilation if kernel > 1 else 1  # a 1x1 conv has nothing to dilate
    pad = dilation * (kernel // 2)
    span = dilation * (kernel - 1) + 1  # the kernel's extent on the input
    oh, ow = pooled_size(h, span, stride, pad), pooled_size(w, span, stride, pad)
    check_size(r, name, (h, w), (oh, ow), f"a {kernel}x{kernel} conv", stride)
    weights = out_ch * (c // groups) * kernel * kernel
    if standardize and r.std_eps is not None and (c // groups) * kernel * kernel == 1:
        raise Refused(
            f"{name}: a {kernel}x{kernel} conv of {c // groups} input channel per group has one weight per output "
            "channel, which weight standardisation makes 0 (timm's StdConv2d fails on it): give it more input "
            "channels, or leave weight_std out",
            ("weight_std",),
        )
    return Conv(
        name=name,
        in_shape=shape,
        out_shape=(out_ch, oh, ow),
        params=weights + (out_ch if bias else 0),
        flops=oh * ow * weights,
        in_ch=c,
        out_ch=out_ch,
        kernel=kernel,
        stride=stride,
        padding=pad,
        groups=groups,
        bias=bias,
        dilation=dilation,
        std_eps=r.std_eps if standardize else None,
    )


def norm(r: Rules, name: str, shape: Shape) -> Norm | GroupNorm | NormAct:
    c = shape[0]
    kind = r.norm.kind
    if kind in ("group", "evonorm_s0") and c % r.norm.groups:
        raise Refused(f"{name}: {r.norm.groups} groups do not divide its {c} channels", ("norm", "groups"))
    if kind == "group":
        return GroupNorm(
            name=name, in_shape=shape, out_shape=shape, params=2 * c, channels=c, groups=r.norm.groups, eps=r.norm.eps
        )
    if kind == "frn" or kind == "evonorm_s0":
        # the third parameter (tau, v) per channel besides the scale and shift; a few elementwise ops, no MACs
        groups = r.norm.groups if kind == "evonorm_s0" else 1
        return NormAct(
            name=name, in_shape=shape, out_shape=shape, params=3 * c, fn=kind, channels=c, eps=r.norm.eps, groups=groups
        )
    return Norm(
        name=name,
        in_shape=shape,
        out_shape=shape,
        params=2 * c,
        stats=2 * c,
        channels=c,
        eps=r.norm.eps,
        momentum=r.norm.momentum,
    )


def act(name: str, shape: Shape, fn: str) -> Act:
    return Act(name=name, in_shape=shape, out_shape=shape, fn=fn)


def max_pool(r: Rules, name: str, shape: Shape, kernel: int, stride: int, padding: int, pad_value: str) -> MaxPool:
    c, h, w = shape
    out = pooled_size(h, kernel, stride, padding), pooled_size(w, kernel, stride, padding)
    check_size(r, name, (h, w), out, "a max pool", stride)
    value: Literal["neg_inf", "zero"] = "zero" if pad_value == "zero" else "neg_inf"
    return MaxPool(
        name=name, in_shape=shape, out_shape=(c, *out), kernel=kernel, stride=stride, padding=padding, pad_value=value
    )


def avg_pool(r: Rules, name: str, shape: Shape, stride: int, ceil_mode: bool = True) -> AvgPool:
    """A stride x stride average, windows from the top-left. Ceil mode (ResNet-D shortcuts): a last partial
    window averages its real pixels only. Floor mode (PyTorch's ``AvgPool2d(stride)``, timm's average-pool
    anti-aliasing): it is dropped."""
    c, h, w = shape
    out = pooled_size(h, stride, stride, 0, ceil_mode), pooled_size(w, stride, stride, 0, ceil_mode)
    check_size(r, name, (h, w), out, "an avg pool" if ceil_mode else "an anti-aliasing avg pool", stride)
    return AvgPool(
        name=name,
        in_shape=shape,
        out_shape=(c, *out),
        kernel=stride,
        stride=stride,
        ceil_mode=ceil_mode,
        count_include_pad=not ceil_mode,
    )


def zero_pad(r: Rules, name: str, shape: Shape, out_ch: int, stride: int, field: Path_) -> ZeroPad:
    """Option A: every ``stride``-th pixel (ceil(size / stride) of them, the strided conv's count) and zero
    channels up to ``out_ch``."""
    c, h, w = shape
    if out_ch < c:
        raise Refused(f"{name}: a zero_pad shortcut cannot reduce {c} channels to {out_ch}; use conv", field)
    out = (out_ch, -(-h // stride), -(-w // stride))
    return ZeroPad(name=name, in_shape=shape, out_shape=out, in_ch=c, out_ch=out_ch, stride=stride)


def same_avg_pool(name: str, shape: Shape) -> AvgPool:
    """timm's 2x2 stride-1 "same" average (AvgPool2dSame) of a ResNet-D shortcut in a dilated stage:
    a zero row and column appended, counted in the average; the map keeps its size."""
    return AvgPool(name=name, in_shape=shape, out_shape=shape, kernel=2, stride=1, ceil_mode=False, pad_after=1)


def blur_pool(r: Rules, name: str, shape: Shape, kernel: int, stride: int, pad_mode: str) -> BlurPool:
    """timm's ``BlurPool2d``: padded by ``(stride - 1 + kernel - 1) // 2`` (its get_padding), a depthwise
    binomial blur, strided. A reflected border needs more pixels than the padding, as PyTorch's ``F.pad``."""
    c, h, w = shape
    pad = (stride - 1 + kernel - 1) // 2
    if pad_mode == "reflect" and min(h, w) <= pad:
        raise Refused(
            f"{name}: a blur pool reflects a border of {pad} pixel{'s' if pad > 1 else ''}, which needs a larger "
            f"map; the {r.size} input leaves {h}x{w} here (a larger input, or anti_alias padding: zero)",
            ("input", "size"),
        )
    oh, ow = pooled_size(h, kernel, stride, pad), pooled_size(w, kernel, stride, pad)
    check_size(r, name, (h, w), (oh, ow), "a blur pool", stride)
    mode: Literal["reflect", "zero"] = "zero" if pad_mode == "zero" else "reflect"
    return BlurPool(
        name=name,
        in_shape=shape,
        out_shape=(c, oh, ow),
        flops=oh * ow * c * kernel * kernel,  # a depthwise conv of a fixed filter
        channels=c,
        kernel=kernel,
        stride=stride,
        padding=pad,
        pad_mode=mode,
    )


def anti_alias_design(spec: AntiAliasSpec) -> AntiAliasDesign:
    match spec:
        case AvgAntiAlias():
            return AntiAliasDesign("avg")
        case BlurAntiAlias():
            return AntiAliasDesign("blur", spec.kernel, spec.padding)
        case _:
            assert_never(spec)


def anti_alias_layer(r: Rules, name: str, shape: Shape, design: AntiAliasDesign, stride: int) -> AvgPool | BlurPool:
    """The layer that takes a stride after the layer that had it, by kind."""
    match design.kind:
        case "avg":
            return avg_pool(r, name, shape, stride, ceil_mode=False)
        case "blur":
            return blur_pool(r, name, shape, design.kernel, stride, design.padding)
        case _:
            assert_never(design.kind)


# -- sections ---------------------------------------------------------------------------------------------------
def stem_parts(spec: Spec, r: Rules, shape: Shape) -> list[StemPart]:
    """The stem's convs by its kind, then its pool."""
    stem = spec.stem
    match stem:
        case ClassicStem():
            convs = classic_stem(spec, r, shape, stem)
        case DeepStem():
            convs = deep_stem(spec, r, shape, stem)
        case NoStem():
            return []
        case _:
            assert_never(stem)
    pool = stem_pool(r, convs.layers[-1].out_shape, stem)
    return [convs] if pool is None else [convs, pool]


def _stem_norm_act(r: Rules, layers: list[AnyLayer], stem: ClassicStem | DeepStem) -> None:
    if stem.norm_act:
        n = r.naming
        if isinstance(stem, DeepStem):
            count = len(stem.widths)
            norm_name, act_name = n.deep_stem_layer("norm", count, count), n.deep_stem_layer("act", count, count)
        else:
            norm_name, act_name = n.in_stem(n.stem_norm), n.in_stem(n.stem_act)
        layers.append(norm(r, norm_name, layers[-1].out_shape))
        layers.append(act(act_name, layers[-1].out_shape, r.after_norm))


def classic_stem(spec: Spec, r: Rules, shape: Shape, stem: ClassicStem) -> StemConvs:
    """One large strided conv (``conv1``), its norm and activation."""
    width = scaled_width(stem.width, spec.width_multiplier)
    bias = r.bias(stem.norm_act)
    name = r.naming.in_stem(r.naming.stem_conv)
    layers: list[AnyLayer] = [conv(r, name, shape, width, stem.kernel, stem.stride, bias=bias, field=("stem",))]
    _stem_norm_act(r, layers, stem)
    return StemConvs(layers=tuple(layers), kind="classic")


def deep_stem(spec: Spec, r: Rules, shape: Shape, stem: DeepStem) -> StemConvs:
    """3x3 convs (the Sequential ``conv1``, or ``stem.conv1..``), norm + act between them, the first strided."""
    layers: list[AnyLayer] = []
    named = r.naming.deep_stem_layer
    widths = [scaled_width(w, spec.width_multiplier) for w in stem.widths]
    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        cur = layers[-1].out_shape if layers else shape
        stride = stem.stride if i == 0 else 1
        normed = not last or stem.norm_act
        n = len(widths)
        layers.append(conv(r, named("conv", i + 1, n), cur, width, 3, stride, bias=r.bias(normed), field=("stem",)))
        if not last:
            layers.append(norm(r, named("norm", i + 1, n), layers[-1].out_shape))
            layers.append(act(named("act", i + 1, n), layers[-1].out_shape, r.after_norm))
    _stem_norm_act(r, layers, stem)
    return StemConvs(layers=tuple(layers), kind="deep")


def stem_pool(r: Rules, shape: Shape, stem: ClassicStem | DeepStem) -> StemPool | None:
    """The stem's downsampling after its convs (the module ``maxpool``), by kind; anti-aliased as timm's
    ResNet does it (an average pool replaces the max pool; a blur follows a stride-1 max pool or conv)."""
    aa = None if stem.anti_alias is None else anti_alias_design(stem.anti_alias)
    at = r.naming.stem_pool_layer
    match stem.pool:
        case "max" if aa is not None and aa.kind == "avg":
            return StemPool(layers=(avg_pool(r, at(), shape, 2, ceil_mode=False),), kind="avg")
        case "max" if aa is not None:
            pool = max_pool(r, at(0), shape, 3, 1, 1, stem.pool_padding)
            return StemPool(layers=(pool, anti_alias_layer(r, at(1), shape, aa, 2)), kind="max")
        case "max":
            return StemPool(layers=(max_pool(r, at(), shape, 3, 2, 1, stem.pool_padding),), kind="max")
        case "conv":  # ResNet-RS: a strided 3x3 conv, norm, act
            layers: list[AnyLayer] = [
                conv(r, at(0), shape, shape[0], 3, 1 if aa else 2, bias=r.bias(True), field=("stem",))
            ]
            if aa is not None:
                layers.append(anti_alias_layer(r, at(1), shape, aa, 2))
            layers.append(norm(r, at(len(layers)), layers[-1].out_shape))
            layers.append(act(at(len(layers)), layers[-1].out_shape, r.after_norm))
            return StemPool(layers=tuple(layers), kind="conv")
        case "none":
            return None
        case _:
            assert_never(stem.pool)


def stride_of(layer: AnyLayer) -> int:
    match layer:
        case Conv() | MaxPool() | AvgPool() | BlurPool() | ZeroPad():
            return layer.stride
        case Norm() | GroupNorm() | NormAct() | Act() | GlobalPool() | Dropout() | DropPath() | Linear():
            return 1
        case _:
            assert_never(layer)


def stem_tap(parts: list[StemPart], naming: Naming) -> FeatureInfo | None:
    """The stem's feature map as timm takes it: after its convs (``act1``), before its pool."""
    convs = next((p for p in parts if isinstance(p, StemConvs)), None)
    if convs is None:
        return None
    last = convs.layers[-1]
    reduction = math.prod(stride_of(x) for x in convs.layers)
    return FeatureInfo(last.out_shape[0], reduction, naming.group(last.name), last.out_shape)


def drop_rates(depths: list[int], rate: float, schedule: str) -> list[list[float]]:
    """The stochastic-depth rate of every block, stage by stage.

    linear: from 0 (first block) to ``rate`` (last), a one-block network getting the full rate (timm's
    divides by zero there); per_stage: ``rate * (s + 2) / (stages + 1)`` (Keras ResNet-RS); uniform.
    """
    total, stages = sum(depths), len(depths)
    rates: list[list[float]] = []
    index = 0
    for s, depth in enumerate(depths):
        row = []
        for _ in range(depth):
            if schedule == "uniform":
                row.append(rate)
            elif schedule == "per_stage":
                row.append(rate * (s + 2) / (stages + 1))
            else:
                row.append(rate * index / (total - 1) if total > 1 else rate)
            index += 1
        rates.append(row)
    return rates


def block_design(block: BlockSpec, r: Rules, zero_init_last: bool) -> BlockDesign:
    """What every block of a stage is made of, decided once for the IR, the emitter and every backend."""
    stride_last = block.stride_block == "last"
    if isinstance(block, PlainBlock):
        slot = ConvSlot(1, "in_chs", "out_chs", block.kernel, True, 1, r.bias(True))
        return BlockDesign("plain", False, (slot,), None, stride_last=stride_last, naming=r.naming)
    preact = block.preact
    # In a pre-activation block the last conv feeds the addition directly: no norm follows it.
    last_bias = r.bias(normed=not preact)
    first: Literal["first_chs", "mid_chs"] = "first_chs" if block.reduce_first > 1 else "mid_chs"
    if isinstance(block, BottleneckBlock):
        at_1x1 = block.stride_at == "1x1"
        convs: tuple[ConvSlot, ...] = (
            ConvSlot(1, "in_chs", first, 1, at_1x1, 1, r.bias(True)),
            ConvSlot(2, first, "mid_chs", 3, not at_1x1, block.groups, r.bias(True), after_stride=at_1x1),
            ConvSlot(3, "mid_chs", "out_chs", 1, False, 1, last_bias, after_stride=True),
        )
    else:
        convs = (
            ConvSlot(1, "in_chs", first, 3, True, 1, r.bias(True)),
            ConvSlot(2, first, "out_chs", 3, False, 1, last_bias, after_stride=True),
        )
    sc = block.shortcut
    normed = not preact and sc.type != "zero_pad"  # option A projects nothing
    shortcut = ShortcutDesign(sc.type, bias=r.bias(normed=normed), norm=normed, kernel=sc.kernel, always=sc.always)
    spec_attn = block.attention()
    attn = None if spec_attn is None else attention_design(spec_attn)
    n = len(convs)
    names = r.naming
    zero = (names.block_conv(n) if preact else names.block_norm(n)) if zero_init_last else None
    aa = None if block.anti_alias is None else anti_alias_design(block.anti_alias)
    return BlockDesign(
        block.type, preact, convs, shortcut, attn, aa, block.reduce_first, zero, stride_last, naming=names
    )


def mid_channels(block: BlockSpec, width: int, name: str, field: Path_) -> int:
    """The inner width of a block: a bottleneck's ``int(width * base_width / 64 * width_factor) * groups``."""
    if not isinstance(block, BottleneckBlock):
        return width
    per_group = int(width * block.base_width / 64 * block.width_factor)
    if per_group < 1:
        culprit = "width_factor" if block.width_factor < 1 else "base_width" if block.base_width < 64 else ""
        raise Refused(
            f"{name}: the inner width per group, int({width} * base_width {block.base_width} / 64 * "
            f"width_factor {block.width_factor}), is 0 channels; raise width, base_width or width_factor",
            (*field, "block", culprit) if culprit else (*field, "width"),
        )
    return per_group * block.groups


# -- attention: one design and one part per kind --------------------------------------------------------------
def attention_design(spec: AttentionSpec) -> AttentionDesign:
    """The IR's design of a spec's attention variant."""
    match spec:
        case SEAttention():
            return SEDesign(spec.ratio, spec.divisor, spec.rounding, spec.bias, spec.act)
        case EcaAttention():
            return EcaDesign(spec.kernel, spec.gamma, spec.beta)
        case _:
            assert_never(spec)


def attention_part(r: Rules, name: str, shape: Shape, design: AttentionDesign, field: Path_) -> Attention:
    """The layers of one block's attention module ``name``, on the branch's output ``shape``."""
    match design:
        case SEDesign():
            return se_part(r, name, shape, design, field)
        case EcaDesign():
            return eca_part(name, shape, design)
        case _:
            assert_never(design)


def se_part(r: Rules, name: str, shape: Shape, se: SEDesign, field: Path_) -> Attention:
    """Squeeze-excitation: global average, 1x1 conv to the rounded ``channels * ratio``, act, 1x1 conv back,
    sigmoid gate."""
    c = shape[0]
    rounding = make_divisible if se.rounding == "nearest" else round_down
    rd = rounding(c * se.ratio, se.divisor)
    one = (c, 1, 1)
    fc1 = conv(r, f"{name}.fc1", one, rd, 1, bias=se.bias, field=field, standardize=False)
    fc2 = conv(r, f"{name}.fc2", fc1.out_shape, c, 1, bias=se.bias, field=field, standardize=False)
    layers = (fc1, act(f"{name}.act", fc1.out_shape, se.act), fc2, act(f"{name}.gate", one, "sigmoid"))
    return Attention(layers=layers, design=se)


def eca_part(name: str, shape: Shape, eca: EcaDesign) -> Attention:
    """ECA: global average, a 1-D conv of ``kernel`` across the channels (a (1, C) sequence), sigmoid gate."""
    c, k = shape[0], eca.kernel_for(shape[0])
    seq = (1, c)
    layer = Conv(
        name=f"{name}.conv",
        in_shape=seq,
        out_shape=seq,
        params=k,
        flops=c * k,
        in_ch=1,
        out_ch=1,
        kernel=k,
        padding=(k - 1) // 2,
        dims=1,
    )
    return Attention(layers=(layer, act(f"{name}.gate", seq, "sigmoid")), design=eca)


def shortcut_layers(
    r: Rules,
    name: str,
    design: BlockDesign,
    shape: Shape,
    out: Shape,
    stride: int,
    field: Path_,
    dilations: tuple[int, int] = (1, 1),
) -> list[AnyLayer]:
    """The shortcut's layers of the block ``name`` where it changes shape (none where it keeps it), by its kind.

    ``dilations``: the block's, up to its stride and after it (output_stride)."""
    dilation = dilations[1]
    sc = design.shortcut
    assert sc is not None  # residual blocks only
    if stride == 1 and shape[0] == out[0] and not sc.always:
        return []
    where = (*field, "block", "shortcut", "type")
    match sc.kind:
        case "conv":
            # timm's down_kernel_size: the kernel where the block strides or dilates, dilated as the block's
            # first conv; a 1x1 elsewhere.
            wide = stride > 1 or dilation > 1
            kernel, at = (sc.kernel, dilations[0]) if wide else (1, 1)
            layers = _projection(r, name, False, shape, out[0], stride, sc, where, kernel, at)
        case "avgpool" | "maxpool":
            layers = pooled_shortcut(r, name, sc, shape, out[0], stride, dilation, where)
        case "zero_pad":
            layers = [zero_pad(r, f"{name}.{r.naming.shortcut_layer('pool', False)}", shape, out[0], stride, where)]
        case "identity":
            raise Refused(
                f"{name}.{r.naming.shortcut}: an identity shortcut cannot change shape "
                f"({shape[0]}->{out[0]} channels, stride {stride}); "
                "use conv, avgpool or maxpool",
                where,
            )
        case _:
            assert_never(sc.kind)
    here = f"{name}.{r.naming.shortcut}"
    if layers[-1].out_shape != out and design.anti_alias is not None:
        raise Refused(
            f"{here}: the shortcut gives {layers[-1].out_shape} but the anti-aliased residual branch gives "
            f"{out}: "
            "an average pool drops the last row and column of an odd map, and a blur of even size pads unevenly "
            "(timm's models fail there too); use an input whose maps stay even, such as a multiple of 32",
            (*field, "block", "anti_alias"),
        )
    if layers[-1].out_shape != out:
        raise Refused(
            f"{here}: shortcut gives {layers[-1].out_shape} but the residual branch gives {out}",
            where,
        )
    return layers


def _projection(
    r: Rules,
    name: str,
    pooled: bool,
    shape: Shape,
    out_ch: int,
    stride: int,
    sc: ShortcutDesign,
    where: Path_,
    kernel: int = 1,
    dilation: int = 1,
) -> list[AnyLayer]:
    """The shortcut's conv (1x1, or its kernel) of the block ``name`` (after the pool of a pooled kind),
    strided where the kind has no pool to take the stride, then its norm."""
    at = f"{name}."
    conv_name = at + r.naming.shortcut_layer("conv", pooled)
    projection = conv(r, conv_name, shape, out_ch, kernel, stride, bias=sc.bias, field=where, dilation=dilation)
    if not sc.norm:
        return [projection]
    return [projection, norm(r, at + r.naming.shortcut_layer("norm", pooled), projection.out_shape)]


def pooled_shortcut(
    r: Rules, name: str, sc: ShortcutDesign, shape: Shape, out_ch: int, stride: int, dilation: int, where: Path_
) -> list[AnyLayer]:
    """The pool that takes the stride (an Identity where the block keeps its size), then a 1x1 projection
    where the channels change. In a dilated stage (the stride turned into dilation) an
    average-pool shortcut that projects still averages, 2x2 at stride 1, as timm's does."""
    layers: list[AnyLayer] = []
    pool_name = f"{name}.{r.naming.shortcut_layer('pool', True)}"
    if stride > 1:
        pool = (
            avg_pool(r, pool_name, shape, stride)
            if sc.kind == "avgpool"
            else max_pool(r, pool_name, shape, 1, stride, 0, "neg_inf")
        )
        layers.append(pool)
        shape = pool.out_shape
    elif dilation > 1 and sc.kind == "avgpool":
        layers.append(same_avg_pool(pool_name, shape))
    if shape[0] != out_ch:
        layers += _projection(r, name, True, shape, out_ch, 1, sc, where)
    return layers


def block_layers(
    r: Rules,
    name: str,
    design: BlockDesign,
    shape: Shape,
    mid: int,
    out_ch: int,
    stride: int,
    rate: float,
    drop_path: bool,
    field: Path_,
    dilations: tuple[int, int] = (1, 1),
) -> Block:
    """The layers of one block, rendered from its design (the templates render the same design).

    ``dilations``: of the convs up to the strided one, and of those after it (output_stride)."""
    channels = {"in_chs": shape[0], "first_chs": mid // design.reduce_first, "mid_chs": mid, "out_chs": out_ch}
    if channels["first_chs"] < 1:
        raise Refused(
            f"{name}: the first conv's width, {mid} // reduce_first {design.reduce_first}, is 0 channels",
            (*field, "block", "reduce_first"),
        )
    p = f"{name}."
    names = r.naming
    parts: list[BlockPart] = []
    cur = shape
    # timm's rule: where the block is strided, or a dilated stage took its stride, the anti-aliasing layer
    # follows the strided conv (then at stride 1); elsewhere there is none.
    aa = design.anti_alias if stride > 1 or dilations[0] != dilations[1] else None
    for slot in design.convs:
        last = slot.index == design.last
        unit: list[AnyLayer] = []
        if design.preact:
            i = slot.index
            unit += [norm(r, p + names.block_norm(i), cur), act(p + names.block_act(i), cur, r.after_norm)]
        layer = conv(
            r,
            p + names.block_conv(slot.index),
            cur,
            channels[slot.out_chs],
            slot.kernel,
            stride if slot.strided and aa is None else 1,
            slot.groups,
            bias=slot.bias,
            field=(*field, "block", "groups"),
            dilation=dilations[1] if slot.after_stride else dilations[0],
        )
        unit.append(layer)
        cur = layer.out_shape
        if not design.preact:
            unit.append(norm(r, p + names.block_norm(slot.index), cur))
            if not (last and design.residual):  # a residual block's last act follows the addition
                unit.append(act(p + names.block_act(slot.index), cur, r.after_norm))
        parts.append(ConvUnit(layers=tuple(unit), index=slot.index))
        if slot.strided and aa is not None:
            pool = anti_alias_layer(r, f"{p}aa", cur, aa, stride)
            parts.append(AntiAlias(layers=(pool,), design=aa))
            cur = pool.out_shape
    if design.residual:
        assert design.shortcut is not None  # residual designs have one
        if design.attn is not None:
            parts.append(attention_part(r, p + "se", cur, design.attn, (*field, "block")))
        if drop_path:
            drop = DropPath(name=p + "drop_path", in_shape=cur, out_shape=cur, rate=rate)
            parts.append(StochasticDepth(layers=(drop,)))
        shortcut = shortcut_layers(r, name, design, shape, cur, stride, field, dilations)
        parts.append(Shortcut(layers=tuple(shortcut), design=design.shortcut))
        if not design.preact:
            parts.append(PostAct(layers=(act(p + names.block_act(design.last), cur, r.act),)))
    rate = rate if design.residual else 0.0
    return Block(name, design, shape, cur, stride, tuple(parts), rate, dilations[0], dilations[1])


def head_parts(spec: Spec, r: Rules, shape: Shape, preact: bool) -> list[HeadPart]:
    parts: list[HeadPart] = []
    names = r.naming
    if isinstance(spec.head, FeaturesHead) and spec.head.out_indices is not None:
        return parts  # the maps feature_info lists, as they leave their modules
    if preact:  # a pre-activation network ends with the norm + act its last block left out
        final = (norm(r, names.final_norm, shape), act(names.final_act, shape, r.after_norm))
        parts.append(FinalNorm(layers=final))
    head = spec.head
    if not isinstance(head, ClassifierHead):
        return parts
    c, k = shape[0], head.classes
    pool_name = names.in_head(names.global_pool)
    layers: list[AnyLayer] = [GlobalPool(name=pool_name, in_shape=shape, out_shape=(c,), pool=head.pool)]
    if head.dropout > 0:
        layers.append(Dropout(name=names.in_head(names.dropout), in_shape=(c,), out_shape=(c,), rate=head.dropout))
    layers.append(
        Linear(
            name=names.in_head(names.fc),
            in_shape=(c,),
            out_shape=(k,),
            params=c * k + k,
            flops=c * k,
            in_features=c,
            out_features=k,
            conv=head.fc == "conv",
        )
    )
    parts.append(Classifier(layers=tuple(layers)))
    if head.activation == "softmax":
        parts.append(Softmax(layers=(act(names.in_head(names.softmax), (k,), "softmax"),)))
    return parts


# -- the size budget --------------------------------------------------------------------------------------------
def spend(
    totals: tuple[int, int], layers: list[Layer] | tuple[Layer, ...], where: str, field: Path_, r: Rules
) -> tuple[int, int]:
    """(params, activations) after ``layers``; refused as soon as either passes its limit. The
    activations start from the input's elements (``input_totals``).

    Checked block by block, so a network far over a limit is refused after building the few blocks
    that pass it, not all of them.
    """
    params = totals[0] + sum(x.params for x in layers)
    activations = totals[1] + sum(math.prod(x.out_shape) for x in layers)
    if params > MAX_PARAMS:
        raise Refused(f"{_figure(params)} parameters up to {where}, over the limit of {MAX_PARAMS:,}", field)
    if activations > MAX_ACTIVATIONS:
        raise Refused(
            f"{_figure(activations)} activation elements for one {r.size} sample up to {where}, over the limit "
            f"of {MAX_ACTIVATIONS:,} ({MAX_ACTIVATIONS * 4 >> 30} GiB of float32), the input's "
            f"{_figure(r.input_elements)} included: reduce the input size, depths or widths",
            ("input", "size"),
        )
    return params, activations


def input_totals(r: Rules) -> tuple[int, int]:
    """The totals ``spend`` starts from: no parameters, and the input's elements, which the backends
    also allocate (a dummy or random batch) and a training step keeps. An input over the limit on its
    own is refused at ``input`` (4096 channels of 8192x8192 are 256 G elements, a TiB of float32)."""
    if r.input_elements > MAX_ACTIVATIONS:
        raise Refused(
            f"the input alone, {r.channels}x{r.size}, is {_figure(r.input_elements)} elements for one sample, "
            f"over the limit of {MAX_ACTIVATIONS:,} activation elements ({MAX_ACTIVATIONS * 4 >> 30} GiB of "
            "float32): reduce input.size or input.channels",
            ("input",),
        )
    return 0, r.input_elements


def _figure(n: int) -> str:
    """A count as people read it: 4,123,456,789, or 9.0e+12 when longer than that."""
    return f"{n:,}" if n < 10**13 else f"{n:.1e}"


# -- the walk ---------------------------------------------------------------------------------------------------
def _input_hw(input_size: object) -> tuple[int, int]:
    """Validate an input size given outside the spec (``--input-size``, ``compile_spec(input_size=)``)."""
    sides = list(input_size) if isinstance(input_size, list | tuple) else [input_size] * 2
    if len(sides) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIZE for v in sides
    ):
        raise SpecError(
            Problem(
                f"--input-size {input_size!r}",
                None,
                None,
                "input.size",
                f"expected an integer from 1 to {MAX_INPUT_SIZE}, or (height, width) of them; received {input_size!r}",
            )
        )
    return cast(int, sides[0]), cast(int, sides[1])  # checked above: ints


def _locate(refusal: Refused, positions: Positions | None, size_from: str | None) -> SpecError:
    """The one place a refused field path becomes file, line and field.

    A stage's block is the top-level block merged with the stage's own, so a block field is reported
    where it was written: in the stage's own block if it wrote it, else at the top-level ``block``.
    """
    path = refusal.field
    if path[:1] == ("stages",) and len(path) > 3 and path[2] == "block":
        if not (positions and positions.exact(path)):
            path = ("block", *path[3:])
    pos = positions.find(path) if positions else None
    if path in (("input",), ("input", "size")) and size_from:
        pos = Pos(size_from, None, None)  # the input size given outside the spec made it too large
    return SpecError(
        Problem(
            pos.file if pos else "<spec>",
            pos.line if pos else None,
            pos.column if pos else None,
            dotted(path),
            refusal.message,
        )
    )


def stage_strides(stem_stride: int, strides: list[int], output_stride: int | None) -> list[tuple[int, int]]:
    """(stride, dilation) of every stage: a stage that would take the network's stride past
    ``output_stride`` keeps its resolution and dilates by its stride instead (timm's rule)."""
    net, dilation, out = stem_stride, 1, []
    if output_stride is not None and net > output_stride:
        raise Refused(
            f"the stem alone reduces the input {net}x, past output_stride {output_stride}", ("output_stride",)
        )
    for stride in strides:
        if output_stride is not None and net * stride > output_stride:
            dilation *= stride
            out.append((1, dilation))
        else:
            net *= stride
            out.append((stride, dilation))
    if output_stride is not None and net < output_stride < stem_stride * math.prod(strides):
        raise Refused(
            f"stage strides {strides} after a {stem_stride}x stem cannot give output_stride {output_stride} "
            f"(they reach {net}x, then dilate)",
            ("output_stride",),
        )
    return out


def out_indices(spec: Spec, has_stem: bool) -> tuple[int, ...] | None:
    """A features head's out_indices, made ascending and non-negative (refused where one does not exist)."""
    head = spec.head
    if not isinstance(head, FeaturesHead) or head.out_indices is None:
        return None
    count = len(spec.stages) + (1 if has_stem else 0)
    field: Path_ = ("head", "out_indices")
    if any(not -count <= i < count for i in head.out_indices):
        raise Refused(
            f"out_indices {head.out_indices}: this network has {count} feature maps "
            f"({'the stem and ' if has_stem else ''}{len(spec.stages)} stages), "
            f"so indices from {-count} to {count - 1}",
            field,
        )
    picked = [i + count if i < 0 else i for i in head.out_indices]
    if len(set(picked)) != len(picked):
        raise Refused(f"out_indices {head.out_indices} name a feature map twice", field)
    if has_stem and picked == [0]:
        raise Refused("out_indices take no stage's map (0 is the stem's); take at least one stage", field)
    return tuple(sorted(picked))


def freeze_options(spec: Spec, r: Rules, stem: list[StemPart], stages: list[Stage]) -> FreezeOptions:
    """The modules a frozen stem and stages are (their weights take no gradient), and the norms' mode."""
    freeze = spec.freeze
    if freeze is None:
        return FreezeOptions()
    if freeze.norm != "train" and r.norm.kind != "batch":
        raise Refused(
            f"freeze.norm {freeze.norm} keeps batch norms' running statistics fixed; this network's norm is "
            f"{r.norm.kind}, which has none (freeze.stages still freezes its weights)",
            ("freeze", "norm"),
        )
    modules: tuple[str, ...] = ()
    if freeze.stages is not None:
        if freeze.stages > len(spec.stages):
            raise Refused(
                f"freeze.stages {freeze.stages}: this network has {len(spec.stages)} stages (0 freezes the stem alone)",
                ("freeze", "stages"),
            )
        groups = dict.fromkeys(r.naming.group(x.name) for x in part_layers(tuple(stem)))
        modules = (*groups, *(s.name for s in stages[: freeze.stages]))
    return FreezeOptions(modules, freeze.norm)


def norm_options(spec: NormSpec) -> NormOptions:
    match spec:
        case BatchNormSpec():
            return NormOptions(spec.eps, spec.momentum)
        case GroupNormSpec():
            return NormOptions(spec.eps, 0.0, "group", spec.groups)
        case FilterResponseNormSpec():
            return NormOptions(spec.eps, 0.0, "frn")
        case EvoNormS0Spec():
            return NormOptions(spec.eps, 0.0, "evonorm_s0", spec.groups)
        case _:
            assert_never(spec)


def _network(spec: Spec, hw: tuple[int, int]) -> Network:
    std = spec.weight_std.eps if spec.weight_std is not None else None
    r = Rules(norm_options(spec.norm), spec.act, spec.conv_bias, hw, spec.input.channels, NAMINGS[spec.naming], std)
    shape: Shape = (spec.input.channels, *hw)
    totals = input_totals(r)
    stem = stem_parts(spec, r, shape)
    totals = spend(totals, part_layers(tuple(stem)), "the stem", ("stem",), r)
    tap = stem_tap(stem, r.naming)
    features = [tap] if tap is not None else []
    shape = stem[-1].layers[-1].out_shape if stem else shape
    depths = [s.depth for s in spec.stages]
    rates = drop_rates(depths, spec.drop_path.rate, spec.drop_path.schedule)
    taken = out_indices(spec, bool(stem))
    # A features head with out_indices ends the network at the last stage it takes (timm's features_only).
    built = len(spec.stages) if taken is None else taken[-1] + (0 if stem else 1)
    strides = [s.stride if s.stride is not None else (1 if i == 0 else 2) for i, s in enumerate(spec.stages)]
    stem_stride = math.prod(stride_of(x) for x in part_layers(tuple(stem)))
    reduction = stem_stride
    plan = stage_strides(stem_stride, strides, spec.output_stride)
    stages: list[Stage] = []
    previous = 1  # the dilation before this stage
    for s, stage_spec in enumerate(spec.stages[:built]):
        block_spec = spec.stage_block(s)
        field: Path_ = ("stages", s)
        design = block_design(block_spec, r, spec.init.zero_init_last)
        if r.norm.is_act and not design.preact:
            raise Refused(
                f"norm {r.norm.kind} is its own activation, so it takes the place of a norm + activation pair; "
                f"stage {s}'s {design.kind} blocks are not pre-activation (a post-activation block's last norm has "
                "no activation after it): set block.preact: true, or use batch or group norm",
                ("norm", "type"),
            )
        stride, dilation = plan[s]
        width = scaled_width(stage_spec.width, spec.width_multiplier)
        name = r.naming.stage_name(s)
        mid = mid_channels(block_spec, width, r.naming.block_name(name, 0), field)
        out_ch = width if isinstance(block_spec, PlainBlock) else width * block_spec.expansion
        strided = stage_spec.depth - 1 if design.stride_last else 0
        stage_in, blocks = shape, []
        for i in range(stage_spec.depth):
            # Blocks before the one where the stride would be keep the previous dilation; it keeps it
            # up to its strided conv (first_dilation), and everything after takes the stage's.
            dilations = (previous if i <= strided else dilation, previous if i < strided else dilation)
            block = block_layers(
                r,
                r.naming.block_name(name, i),
                design,
                shape,
                mid,
                out_ch,
                stride if i == strided else 1,
                rates[s][i],
                spec.drop_path.rate > 0,
                field,
                dilations,
            )
            totals = spend(totals, block.layers, block.name, field, r)
            blocks.append(block)
            shape = block.out_shape
        stages.append(Stage(name, design, tuple(blocks), stage_in, shape, mid, stride, dilation, previous))
        reduction *= stride
        features.append(FeatureInfo(shape[0], reduction, name, shape))
        previous = dilation
    head = head_parts(spec, r, shape, stages[-1].design.preact)
    spend(totals, part_layers(tuple(head)), "the head", ("head",), r)
    head_spec = spec.head
    freeze = freeze_options(spec, r, stem, stages)
    resolved = spec.model_dump(mode="json")
    return Network(
        name=spec.name,
        input_shape=(spec.input.channels, *hw),
        stem_parts=tuple(stem),
        stages=tuple(stages),
        head_parts=tuple(head),
        act=spec.act,
        norm=r.norm,
        drop_path=DropPathOptions(spec.drop_path.rate, spec.drop_path.schedule, tuple(depths)),
        init=InitOptions(spec.init.conv, spec.init.mode, spec.init.zero_init_last),
        classes=head_spec.classes if isinstance(head_spec, ClassifierHead) else None,
        digest=spec_digest(resolved),
        description=spec.description,
        resolved=resolved,
        out_indices=taken,
        output_stride=spec.output_stride,
        feature_info=tuple(features),
        naming=r.naming,
        freeze=freeze,
    )


def resolve(spec: Spec, positions: Positions | None = None, input_size: int | tuple[int, int] | None = None) -> Network:
    """Compile a validated spec into the IR. Raises SpecError for impossible networks."""
    hw = spec.input.hw if input_size is None else _input_hw(input_size)
    try:
        return _network(spec, hw)
    except Refused as refusal:
        raise _locate(refusal, positions, None if input_size is None else f"--input-size {input_size}") from None
