"""The spec language: pydantic models, the single source of the JSON Schema.

Every model forbids unknown keys. Variants (stem, block, head) are
discriminated unions on ``type``; a bare string is shorthand for
``{type: <string>}``. ``stages`` may be a depth preset (an integer such as 50)
that expands to the standard four-stage layout. A stage's ``block`` is merged
over the top-level ``block`` before validation, with the same rules as
``extends`` (see ``merge.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    StrictBool,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from .activations import CHOSEN, chosen_text
from .merge import merge
from .yamlsource import yaml_text

# Upper bounds of the integers of the language (docs/refused.md): far beyond any published
# ResNet, and small enough that every figure derived from them stays a sane number; what a
# network may cost is then decided on the IR's counts (resolve.py: parameters, activations).
MAX_CHANNELS = 65_536  # any width, group count, base width or SE divisor
MAX_DEPTH = 1_000  # blocks per stage (ResNet-1202 has 200)
MAX_KERNEL = 31
MAX_STRIDE = 32
MAX_EXPANSION = 64
MAX_INPUT_SIZE = 8_192  # pixels per side, as --input-size
MAX_CLASSES = 1_000_000
MAX_FEATURES = 17  # feature maps: the stem's and one per stage (at most 16)

# Names reach emitted source as identifiers and string literals: ASCII identifiers only.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Activation = Literal["relu", "relu6", "silu", "gelu", "leaky_relu", "elu", "mish", "hardswish", "tanh"]
if set(get_args(Activation)) != set(CHOSEN):  # the table in activations.py is the one list
    raise ImportError(f"spec.Activation {get_args(Activation)} differs from activations.CHOSEN {CHOSEN}")
# Integers are strict: YAML `true`, `"3"` or `3.0` are wrong types, not 1, 3 and 3.
Count = Annotated[int, Strict(), Field(gt=0)]
Side = Annotated[Count, Field(le=MAX_INPUT_SIZE)]
Stride = Annotated[Count, Field(le=MAX_STRIDE)]
# Numbers are strict too: an integer or a float, never a boolean or a string (`"0.1"` is text, as
# `"3"` is for an integer). yamlsource.py reads a plain `1e-5` as the float YAML 1.2 makes it.
Real = Annotated[float, Strict()]
Fraction = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]

# Depths of the four standard stages, by network depth (torchvision, timm, ResNet-RS). A depth counts the
# weighted layers of one block type: 10 and 18 are basic-block networks, 14, 26 and 50 up bottleneck ones.
DEPTH_PRESETS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    14: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    26: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
    270: (4, 29, 53, 4),
    350: (4, 36, 72, 4),
    420: (4, 44, 87, 4),
}
PRESET_WIDTHS = (64, 128, 256, 512)


def expand_stages(value: Any) -> Any:
    """Turn a depth preset (``stages: 50``) into the explicit list of stages."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in DEPTH_PRESETS:
            allowed = ", ".join(str(k) for k in DEPTH_PRESETS)
            raise ValueError(f"unknown depth preset {value}; expected one of {allowed}")
        return [
            {"depth": d, "width": w, "stride": 1 if i == 0 else 2}
            for i, (d, w) in enumerate(zip(DEPTH_PRESETS[value], PRESET_WIDTHS, strict=True))
        ]
    return value


def _shown(value: Any, limit: int = 80) -> str:
    """A received value in a message, as YAML writes it (``[224, true]``), at most ``limit`` characters."""
    text = yaml_text(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _typed_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


def _typed(default: str) -> BeforeValidator:
    """Accept ``"deep"`` for ``{type: deep}``, and a mapping without ``type`` as the default variant."""

    def fill(value: Any) -> Any:
        value = _typed_shorthand(value)
        if isinstance(value, dict) and "type" not in value:
            value = {"type": default, **value}
        return value

    return BeforeValidator(fill)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(StrictModel):
    """What the network is built for: channels and spatial size (int or [h, w])."""

    channels: Count = Field(3, le=4096, description="Channels of the input image (1 to 4096).", examples=[3, 1])
    size: Side | tuple[Side, Side] = Field(
        224,
        description="Spatial size: one integer for a square input, or [height, width]; 1 to 8192 each. "
        "--input-size overrides it.",
        examples=[224, [128, 96]],
    )

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union."""
        pair = isinstance(value, list | tuple)
        items = list(value) if pair else [value]
        fits = all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIZE for v in items)
        if not fits or (pair and len(items) != 2):
            shown = f"; received {_shown(value)}" if pair else ""  # scalars get "received" from the loader
            raise ValueError(f"expected an integer from 1 to {MAX_INPUT_SIZE}, or [height, width] of them{shown}")
        return value

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else (self.size[0], self.size[1])


class BatchNormSpec(StrictModel):
    """Batch norm. ``momentum`` uses PyTorch's convention (weight of the new
    batch statistic); Keras' momentum is ``1 - momentum``."""

    type: Literal["batch"] = Field(
        description="batch: batch norm, statistics of the batch in training and running averages in eval. "
        "The default norm type.",
        examples=["batch"],
    )
    eps: Real = Field(
        1e-5,
        gt=0.0,
        lt=1.0,
        description="Added to the variance before the square root (0 < eps < 1; Keras' own default is 1e-3).",
        examples=[1e-5, 1.001e-5],
    )
    momentum: Real = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Weight of the new batch statistic in the running averages, in PyTorch's convention "
        "(0 < momentum <= 1); Keras' momentum is 1 - momentum.",
        examples=[0.1, 0.01],
    )


class GroupNormSpec(StrictModel):
    """Group norm (Wu and He, 2018; timm's resnet50_gn, BiT): each sample's channels in groups, normalised by
    their own mean and variance, then scaled and shifted per channel; no running statistics."""

    type: Literal["group"] = Field(
        description="group: group norm, each sample normalised over groups of channels (no running statistics, "
        "the same in training and eval; nothing for fuse to fold).",
        examples=["group"],
    )
    groups: Count = Field(
        32,
        le=MAX_CHANNELS,
        description="Number of channel groups; it must divide the channels of every norm (timm's GroupNorm: 32).",
        examples=[32, 16],
    )
    eps: Real = Field(
        1e-5,
        gt=0.0,
        lt=1.0,
        description="Added to the variance before the square root (0 < eps < 1).",
        examples=[1e-5],
    )


class FilterResponseNormSpec(StrictModel):
    """Filter response normalisation with its thresholded linear unit (Singh and Krishnan, 2019; timm's
    FilterResponseNormTlu2d): a norm that is its own activation."""

    type: Literal["frn"] = Field(
        description="frn: each sample's channel divided by its root mean square over the map, scaled, shifted, "
        "then max(x, tau) (a learned threshold per channel): the norm is its own activation, so the one after "
        "it is left out (pre-activation blocks only, where every norm is followed by one).",
        examples=["frn"],
    )
    eps: Real = Field(
        1e-5,
        gt=0.0,
        lt=1.0,
        description="Added to the mean square before the square root (0 < eps < 1; timm's: 1e-5).",
        examples=[1e-5, 1e-6],
    )


class EvoNormS0Spec(StrictModel):
    """EvoNorm-S0 (Liu et al., 2020; timm's EvoNorm2dS0): a norm that is its own activation."""

    type: Literal["evonorm_s0"] = Field(
        description="evonorm_s0: x * sigmoid(v * x) divided by the group's standard deviation (each sample's "
        "channels in groups), scaled and shifted per channel: the norm is its own activation, so the one after "
        "it is left out (pre-activation blocks only, where every norm is followed by one).",
        examples=["evonorm_s0"],
    )
    groups: Count = Field(
        32,
        le=MAX_CHANNELS,
        description="Number of channel groups of the standard deviation; it must divide the channels of every "
        "norm (timm's: 32).",
        examples=[32, 16],
    )
    eps: Real = Field(
        1e-5,
        gt=0.0,
        lt=1.0,
        description="Added to the variance before the square root (0 < eps < 1; timm's: 1e-5).",
        examples=[1e-5],
    )


# The norm layers of a network: one variant per kind, found by its ``type``; a mapping without one is batch norm.
NormSpec = BatchNormSpec | GroupNormSpec | FilterResponseNormSpec | EvoNormS0Spec
Norm = Annotated[
    Annotated[NormSpec, Field(discriminator="type")],
    _typed("batch"),
]


class AvgAntiAlias(StrictModel):
    """Anti-aliased downsampling by averaging (timm's ``aa_layer=nn.AvgPool2d``, the ``resnetaa`` models):
    the strided layer runs at stride 1 and a stride x stride average pool takes the stride."""

    type: Literal["avg"] = Field(
        description="avg: a stride x stride average pool (no padding, floor mode) takes the stride after the "
        "layer that had it (timm's resnetaa models).",
        examples=["avg"],
    )


class BlurAntiAlias(StrictModel):
    """Blur-pool anti-aliasing (Zhang, "Making Convolutional Networks Shift-Invariant Again", 2019; timm's
    ``BlurPool2d``): a fixed binomial blur of each channel, strided, after the layer that had the stride."""

    type: Literal["blur"] = Field(
        description="blur: a fixed binomial blur of each channel takes the stride (BlurPool, timm's resnetblur "
        "models); no weights.",
        examples=["blur"],
    )
    kernel: Count = Field(
        3,
        ge=2,
        le=MAX_KERNEL,
        description="Size of the binomial filter (3: [1, 2, 1] / 4 each way); padded by "
        "(stride - 1 + kernel - 1) // 2.",
        examples=[3, 5],
    )
    padding: Literal["reflect", "zero"] = Field(
        "reflect",
        description="How the blur pads the map: reflect (timm's default; the map needs more pixels than the "
        "padding) or zero (timm's blurpc).",
        examples=["reflect", "zero"],
    )


# Anti-aliased downsampling: one variant per kind, found by its ``type``.
AntiAliasSpec = AvgAntiAlias | BlurAntiAlias
AntiAlias = Annotated[
    Annotated[AntiAliasSpec, Field(discriminator="type")],
    BeforeValidator(_typed_shorthand),
]


def _without_defaults(data: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """Drop the fields added to the language after specs were written while they hold their defaults, so
    that the resolved form (and the digest) of a spec that never names them stays what it was."""
    for name, default in defaults.items():
        if name in data and data[name] == default:
            data.pop(name)
    return data


class WeightStdSpec(StrictModel):
    """Weight-standardised convs (Qiao et al. 2019, "Weight Standardization"; BiT's StdConv2d)."""

    eps: Real = Field(
        1e-6,
        gt=0.0,
        le=1.0,
        description="Added to each output channel's kernel variance before its square root (timm's StdConv2d: "
        "1e-6; BiT: 1e-8).",
        examples=[1e-8, 1e-6],
    )


class _StemCommon(StrictModel):
    pool: Literal["max", "conv", "none"] = Field(
        "max",
        description="After the stem's convs: max, a 3x3/2 max pool (padding 1); conv, a 3x3/2 conv + norm + act "
        "(the ResNet-RS stem); none, no pool.",
        examples=["max", "conv"],
    )
    pool_padding: Literal["neg_inf", "zero"] = Field(
        "neg_inf",
        description="Padding value of the max pool: neg_inf (-inf, PyTorch's) or zero (keras.applications pads "
        "with zeros before pooling).",
        examples=["neg_inf", "zero"],
    )
    norm_act: StrictBool = Field(
        True,
        description="Norm and activation after the last stem conv; false for pre-activation networks.",
        examples=[True, False],
    )
    anti_alias: AntiAlias | None = Field(
        None,
        description="Anti-aliased downsampling in the pool, as timm's aa_layer places it: avg makes the pool a "
        "2x2/2 average pool; blur keeps the max pool at stride 1 and blurs with stride 2 after it; with pool "
        "conv, the conv runs at stride 1 and the anti-aliasing follows it. null: none.",
        examples=["avg", "blur", None],
    )

    @model_validator(mode="after")
    def _pooled(self) -> Self:
        if self.anti_alias is not None and self.pool == "none":
            raise ValueError("anti_alias needs the stem's pool (it anti-aliases the pool's stride); pool is none")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), anti_alias=None)


class ClassicStem(_StemCommon):
    """One large strided conv, then the pool (ResNet, 7x7/2 + max pool)."""

    type: Literal["classic"] = Field(
        description="classic: one large strided conv, norm + act, then the pool (ResNet's 7x7/2 conv and "
        "3x3/2 max pool). The default stem type.",
        examples=["classic"],
    )
    width: Count = Field(
        64, le=MAX_CHANNELS, description="Output channels of the conv (scaled by width_multiplier).", examples=[64, 32]
    )
    kernel: Count = Field(
        7, le=MAX_KERNEL, description="Kernel size of the conv, padded by kernel // 2.", examples=[7, 3]
    )
    stride: Stride = Field(2, description="Stride of the conv.", examples=[2, 1])


class DeepStem(_StemCommon):
    """A stack of 3x3 convs, the first strided (ResNet-C); norm + act between them."""

    type: Literal["deep"] = Field(
        description="deep: 3x3 convs with norm + act between them, the first strided, then the pool "
        "(ResNet-C, tweak C).",
        examples=["deep"],
    )
    widths: list[Annotated[Count, Field(le=MAX_CHANNELS)]] = Field(
        default_factory=lambda: [32, 32, 64],
        min_length=2,
        max_length=8,
        description="Output channels of each 3x3 conv, 2 to 8 of them (scaled by width_multiplier).",
        examples=[[32, 32, 64], [24, 32, 64]],
    )
    stride: Stride = Field(2, description="Stride of the first conv.", examples=[2, 1])


class NoStem(StrictModel):
    """No stem: the first stage sees the input directly."""

    type: Literal["none"] = Field(description="none: no stem; the first stage sees the input.", examples=["none"])


Stem = Annotated[
    Annotated[ClassicStem | DeepStem | NoStem, Field(discriminator="type")],
    _typed("classic"),
]


class SESpec(StrictModel):
    """Squeeze-excitation on the residual branch's output (before the addition)."""

    ratio: Real = Field(
        0.0625,
        gt=0.0,
        le=1.0,
        description="Reduced width = the block's output channels * ratio, rounded to a multiple of divisor "
        "(0 < ratio <= 1).",
        examples=[0.0625, 0.25],
    )
    divisor: Count = Field(
        8,
        le=MAX_CHANNELS,
        description="The reduced width is a multiple of this, and never below it.",
        examples=[8, 1],
    )
    rounding: Literal["nearest", "floor"] = Field(
        "nearest",
        description="nearest: to the nearest multiple (timm's make_divisible); floor: to the multiple at or "
        "below (int(), as in the Keras ResNet-RS code).",
        examples=["nearest", "floor"],
    )
    bias: StrictBool = Field(True, description="Whether the SE's two 1x1 convs have a bias.", examples=[True, False])
    act: Activation = Field(
        "relu",
        description=f"Activation between the SE's two 1x1 convs (the gate is a sigmoid): {chosen_text()}.",
        examples=["relu", "silu"],
    )


class SEAttention(SESpec):
    """Squeeze-excitation as an ``attn`` variant: ``attn: {type: se, ratio: 0.25}`` is ``se: {ratio: 0.25}``."""

    type: Literal["se"] = Field(
        description="se: squeeze-excitation (global average, 1x1 reduce, act, 1x1 expand, sigmoid gate), as the "
        "block's se field writes it.",
        examples=["se"],
    )


class EcaAttention(StrictModel):
    """Efficient channel attention (ECA-Net, Wang et al. 2020; timm's ``eca``): the branch's channels, averaged
    over the map, go through one 1-D conv across channels (no reduction, no bias) and a sigmoid gate."""

    type: Literal["eca"] = Field(
        description="eca: efficient channel attention (global average, a 1-D conv across channels, sigmoid gate).",
        examples=["eca"],
    )
    kernel: Annotated[Count, Field(le=MAX_KERNEL)] | None = Field(
        None,
        description="The 1-D conv's kernel size (odd); null: from the channels, the odd number at or above "
        "floor((log2(channels) + beta) / gamma), at least 3 (ECA-Net's rule, timm's default).",
        examples=[None, 3],
    )
    gamma: Annotated[Count, Field(le=MAX_CHANNELS)] = Field(
        2, description="The adaptive kernel's divisor (ECA-Net's gamma).", examples=[2]
    )
    beta: Annotated[int, Strict(), Field(ge=0, le=MAX_CHANNELS)] = Field(
        1, description="The adaptive kernel's offset (ECA-Net's b).", examples=[1]
    )

    @field_validator("kernel")
    @classmethod
    def _odd(cls, value: int | None) -> int | None:
        if value is not None and value % 2 == 0:
            raise ValueError(f"expected an odd kernel size (it pads (kernel - 1) / 2 on each side); received {value}")
        return value


# Channel attention on the residual branch: one variant per kind, found by its ``type``.
AttentionSpec = SEAttention | EcaAttention
Attention = Annotated[
    Annotated[AttentionSpec, Field(discriminator="type")],
    _typed("se"),
]


class ShortcutSpec(StrictModel):
    """How the residual shortcut changes shape when a block does.

    conv: a strided 1x1 conv + norm (ResNet A/B). avgpool: 2x2 average pool
    for the stride, then a 1x1 conv + norm if channels change (ResNet-D).
    maxpool: 1x1 max pool for the stride, 1x1 conv if channels change
    (keras.applications V2). zero_pad: no parameters, every stride-th pixel and
    zeros for the new channels (He et al.'s option A). identity: no parameters;
    the block may not change shape.
    """

    type: Literal["conv", "avgpool", "maxpool", "zero_pad", "identity"] = Field(
        "conv",
        description="conv: strided 1x1 conv + norm (ResNet A/B); avgpool: stride x stride average pool "
        "(ceil mode, padding not counted), then a 1x1 conv + norm if the channels change (ResNet-D); maxpool: "
        "1x1 max pool for the stride, then a 1x1 conv + norm if the channels change (keras.applications V2); "
        "zero_pad: no parameters, every stride-th pixel from the first and zero channels appended (He et al.'s "
        "option A, their CIFAR networks); identity: nothing, an error where the block changes shape. No norm in "
        "pre-activation blocks.",
        examples=["conv", "avgpool", "zero_pad"],
    )
    kernel: Count = Field(
        1,
        le=MAX_KERNEL,
        description="Kernel size of a conv shortcut's projection where the block strides or dilates (odd; "
        "padded by kernel // 2); 1x1 elsewhere, as timm's down_kernel_size (senet154: 3). conv shortcuts only.",
        examples=[1, 3],
    )
    always: StrictBool = Field(
        False,
        description="Project on every block, also where it keeps its shape (He et al.'s option C); false: only "
        "where the block changes shape (option B). conv shortcuts only.",
        examples=[True],
    )

    @field_validator("kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"expected an odd kernel size (it pads kernel // 2 on each side); received {value}")
        return value

    @model_validator(mode="after")
    def _conv_only(self) -> Self:
        if self.kernel != 1 and self.type != "conv":
            raise ValueError(f"kernel {self.kernel} is a conv shortcut's; a {self.type} shortcut projects 1x1")
        if self.always and self.type != "conv":
            raise ValueError(
                f"always is a conv shortcut's (option C); a {self.type} shortcut projects only to change shape"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), kernel=1, always=False)


Shortcut = Annotated[ShortcutSpec, _typed("conv")]


class _ResidualCommon(StrictModel):
    preact: StrictBool = Field(
        False,
        description="Pre-activation block (ResNet V2): norm + act before each conv, nothing after the addition; "
        "a network whose last block is pre-activated ends with post_bn + post_act.",
        examples=[False, True],
    )
    stride_block: Literal["first", "last"] = Field(
        "first",
        description="Which block of a stage carries the stage's stride: first, or last (keras.applications V2).",
        examples=["first", "last"],
    )
    shortcut: Shortcut = Field(
        default_factory=ShortcutSpec,
        description="The shortcut where a block changes shape (stride or channels): conv, avgpool, maxpool or "
        "identity; a bare kind stands for {type: KIND}.",
        examples=["avgpool", {"type": "conv"}],
    )
    se: SESpec | None = Field(
        None,
        description="Squeeze-excitation on the residual branch's output, before the addition; null: none. "
        "The spelling of attn: {type: se, ...}.",
        examples=[{"ratio": 0.25}, None],
    )
    attn: Attention | None = Field(
        None,
        description="Channel attention on the residual branch's output, before the addition, by type "
        "(se: squeeze-excitation, eca: efficient channel attention); null: none. A bare type stands for its "
        "defaults; give se or attn, not both.",
        examples=[{"type": "se", "ratio": 0.25}, "eca", None],
    )
    reduce_first: Count = Field(
        1,
        le=MAX_CHANNELS,
        description="The first conv's output is the block's width // reduce_first, the second conv's input "
        "likewise (timm's block_reduce_first; senet154: 2).",
        examples=[1, 2],
    )
    anti_alias: AntiAlias | None = Field(
        None,
        description="Anti-aliased downsampling (timm's aa_layer): the conv that has the block's stride runs at "
        "stride 1, and after its norm and act the anti-aliasing (the module aa) takes the stride: avg (a "
        "stride x stride average pool) or blur (a binomial blur pool). The shortcut keeps its own stride. "
        "Post-activation blocks only; null: none.",
        examples=["avg", {"type": "blur", "kernel": 3}, None],
    )

    @model_validator(mode="after")
    def _one_attention(self) -> Self:
        if self.se is not None and self.attn is not None:
            raise ValueError("se and attn both given (se: is the spelling of attn: {type: se}); give one of them")
        if self.anti_alias is not None and self.preact:
            raise ValueError(
                "anti_alias follows the strided conv's norm and act, which a pre-activation block does not have "
                "(timm's pre-activation networks have no anti-aliasing); remove one of them"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), attn=None, anti_alias=None, reduce_first=1)

    def attention(self) -> AttentionSpec | None:
        """The block's attention, however it is spelled."""
        if self.se is not None:
            return SEAttention(type="se", **self.se.model_dump())
        return self.attn


class BasicBlock(_ResidualCommon):
    """Two 3x3 convs; the stride sits on the first."""

    type: Literal["basic"] = Field(
        description="basic: two 3x3 convs, the stride on the first (ResNet-18/34).", examples=["basic"]
    )
    expansion: Count = Field(
        1, le=MAX_EXPANSION, description="Output channels = the stage's width * expansion.", examples=[1]
    )


class BottleneckBlock(_ResidualCommon):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand."""

    type: Literal["bottleneck"] = Field(
        description="bottleneck: 1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (ResNet-50 and deeper).",
        examples=["bottleneck"],
    )
    expansion: Count = Field(
        4, le=MAX_EXPANSION, description="Output channels = the stage's width * expansion.", examples=[4]
    )
    groups: Count = Field(
        1,
        le=MAX_CHANNELS,
        description="Groups of the 3x3 conv (ResNeXt's cardinality). The inner width is "
        "int(width * base_width / 64 * width_factor) * groups.",
        examples=[1, 32],
    )
    base_width: Count = Field(
        64,
        le=MAX_CHANNELS,
        description="Inner width per group at a stage width of 64 (ResNeXt 32x4d: 4).",
        examples=[64, 4],
    )
    width_factor: Real = Field(
        1.0,
        gt=0.0,
        le=64.0,
        description="Multiplies the inner width (Wide ResNet-50-2: 2); 0 < width_factor <= 64.",
        examples=[1.0, 2.0],
    )
    stride_at: Literal["1x1", "3x3"] = Field(
        "3x3",
        description="3x3: the stride on the 3x3 conv (ResNet-B, torchvision's V1.5); 1x1: on the first 1x1 "
        "conv (the original ResNet, keras.applications V1).",
        examples=["3x3", "1x1"],
    )


class PlainBlock(StrictModel):
    """conv + norm + act, no shortcut (the plain CNN baseline)."""

    type: Literal["plain"] = Field(
        description="plain: conv + norm + act, no shortcut (the plain CNN baseline).", examples=["plain"]
    )
    kernel: Count = Field(3, le=MAX_KERNEL, description="Kernel size of the conv, padded by kernel // 2.", examples=[3])
    stride_block: Literal["first", "last"] = Field(
        "first", description="Which block of a stage carries the stage's stride: first or last.", examples=["first"]
    )


Block = Annotated[
    Annotated[BasicBlock | BottleneckBlock | PlainBlock, Field(discriminator="type")],
    BeforeValidator(_typed_shorthand),
]


class StageSpec(StrictModel):
    """A run of blocks. ``width`` is the block width before expansion."""

    depth: Count = Field(le=MAX_DEPTH, description="Number of blocks (1 to 1000).", examples=[3, 23])
    width: Count = Field(
        le=MAX_CHANNELS,
        description="Block width before expansion (a bottleneck's output has width * expansion channels); "
        "scaled by width_multiplier.",
        examples=[64, 256],
    )
    stride: Stride | None = Field(
        None,
        description="The stage's stride, taken by the block that block.stride_block names. Default: 1 for the "
        "first stage, 2 after.",
        examples=[2, 1],
    )
    block: Block | None = Field(
        None,
        description="Fields merged over the top-level block for this stage only; a different type replaces it, "
        "null removes a field.",
        examples=[{"se": {"ratio": 0.25}}, {"type": "basic"}, {"se": None}],
    )


class FreezeSpec(StrictModel):
    """What fine-tuning keeps fixed while the model trains (mmpretrain's frozen_stages and norm_eval, timm's
    freeze and freeze_batch_norm_2d)."""

    stages: Annotated[int, Strict(), Field(ge=0, le=16)] | None = Field(
        None,
        description="0: the stem; N: the stem and the first N stages (mmpretrain's frozen_stages). Their weights "
        "take no gradient and their norms stay in eval mode while the model trains. null: none.",
        examples=[1, 0],
    )
    norm: Literal["train", "eval", "frozen"] = Field(
        "train",
        description="Every batch norm of the network: train (as usual); eval, running statistics fixed while the "
        "model trains, scale and shift still learned (mmpretrain's norm_eval); frozen, statistics, scale and "
        "shift all fixed (timm's freeze_batch_norm_2d, torchvision's FrozenBatchNorm2d).",
        examples=["eval", "frozen"],
    )


class DropPathSpec(StrictModel):
    """Stochastic depth on the residual branch; identity in eval mode."""

    rate: Fraction = Field(
        0.0,
        description="Drop probability of the last block, in [0, 1); the schedule spreads it over the blocks. 0: off.",
        examples=[0.1, 0.0],
    )
    schedule: Literal["linear", "per_stage", "uniform"] = Field(
        "linear",
        description=(
            "linear: rate * i / (n - 1) for block i of all n blocks (timm; one block gets rate); per_stage: "
            "rate * (s + 2) / (stages + 1) for stage s (Keras ResNet-RS); uniform: rate everywhere."
        ),
        examples=["linear", "per_stage"],
    )


class ClassifierHead(StrictModel):
    """Global pool, optional dropout, fully connected layer."""

    type: Literal["classifier"] = Field(
        description="classifier: global pool, optional dropout, a fully connected layer. The default head type.",
        examples=["classifier"],
    )
    pool: Literal["avg", "max"] = Field("avg", description="The global pool: avg or max.", examples=["avg", "max"])
    dropout: Fraction = Field(0.0, description="Dropout rate before the fc, in [0, 1); 0: none.", examples=[0.0, 0.2])
    classes: Count = Field(
        1000,
        le=MAX_CLASSES,
        description="Outputs of the fc (1 to 1,000,000); for no classifier, use head: features.",
        examples=[1000, 10],
    )
    activation: Literal["none", "softmax"] = Field(
        "none",
        description="none: the model returns logits; softmax: probabilities, as keras.applications' "
        "classifier_activation.",
        examples=["none", "softmax"],
    )
    fc: Literal["linear", "conv"] = Field(
        "linear",
        description="How the fc's weight is stored: linear (out, in), as torchvision's; conv, a 1x1 conv's "
        "(out, in, 1, 1), as timm's resnetv2 heads (use_conv). The same function either way.",
        examples=["linear", "conv"],
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), fc="linear")


class FeaturesHead(StrictModel):
    """No classifier: the model returns feature maps for a detector or segmenter.

    Without ``out_indices``, the last stage's map (after the final norm of a pre-activation net).
    With them, a list of the maps ``feature_info`` lists at those indices (timm's ``features_only``:
    0 is the stem's map where there is a stem, then one per stage; negative counts from the end),
    and the network ends at the last stage taken.
    """

    type: Literal["features"] = Field(
        description="features: no classifier; the model returns feature maps (for a detector or segmenter).",
        examples=["features"],
    )
    out_indices: list[Annotated[int, Strict(), Field(ge=-MAX_FEATURES, lt=MAX_FEATURES)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_FEATURES,
        description="Indices into feature_info of the maps returned, as a list (0: the stem's map where there is "
        "a stem, then one per stage; negative counts from the end); the network ends at the last stage taken. "
        "null: the last stage's map alone.",
        examples=[[1, 2, 3, 4], [-1]],
    )


Head = Annotated[
    Annotated[ClassifierHead | FeaturesHead, Field(discriminator="type")],
    _typed("classifier"),
]


class InitSpec(StrictModel):
    """Weight initialisation (norm layers always start at scale 1, shift 0)."""

    conv: Literal["kaiming_normal", "kaiming_uniform", "default"] = Field(
        "kaiming_normal",
        description="Conv weight init: kaiming_normal, kaiming_uniform, or default (the framework's own).",
        examples=["kaiming_normal", "default"],
    )
    mode: Literal["fan_out", "fan_in"] = Field(
        "fan_out", description="The fan the Kaiming init scales by: fan_out or fan_in.", examples=["fan_out", "fan_in"]
    )
    zero_init_last: StrictBool = Field(
        False,
        description="Zero the last norm of each residual branch (the last conv in pre-activation blocks), "
        "as timm and fastai do.",
        examples=[True, False],
    )


Tweak = Literal["B", "C", "D"]


class Spec(StrictModel):
    """A ResNet-family network."""

    name: Identifier = Field(
        description="Identifier of the spec (ASCII letters, digits and '_', not starting with a digit; at most "
        "64). Default: the file name (for a spec given as a mapping: its parent's).",
        examples=["resnet50_se"],
    )
    description: str = Field(
        "", max_length=2000, description="Free text (at most 2000 characters).", examples=["ResNet-50-D, as timm's."]
    )
    extends: str | None = Field(
        None,
        description="Parent spec this file's fields are laid over: a bare name (resnet50d) is NAME.yaml beside "
        "this file, else the shipped spec of that name; archgen:NAME (archgen:resnet50d) is always the shipped "
        "spec; anything else is a relative path to a .yaml file, from this file, inside its project root (the "
        "nearest folder above it holding .archgen, .git or pyproject.toml, else its own folder).",
        examples=["resnet50d", "archgen:resnet50d", "resnet50.yaml", "../base.yaml"],
    )
    tweaks: list[Tweak] = Field(
        default_factory=list,
        description="Bag-of-Tricks shorthand: B = stride on the 3x3 of bottlenecks, C = deep stem (32-32-64), "
        "D = avg-pool shortcut. A tweak may not contradict a field of the same file; a parent's tweaks "
        "accumulate.",
        examples=[["B", "C", "D"], ["D"]],
    )
    input: InputSpec = Field(
        default_factory=InputSpec,
        description="What the network is built for: channels (3) and size (224, or [height, width]).",
        examples=[{"channels": 3, "size": 224}, {"channels": 1, "size": [128, 96]}],
    )
    stem: Stem = Field(
        default_factory=lambda: ClassicStem(type="classic"),
        description="The stem: classic (default), deep or none; a bare type name stands for {type: NAME}, a "
        "mapping without type is a classic stem.",
        examples=["deep", {"type": "classic", "width": 64, "kernel": 7}, {"type": "deep", "pool": "conv"}],
    )
    block: Block = Field(
        description="The block of every stage (a stage's own block is merged over it): basic, bottleneck or "
        "plain; a bare type name stands for {type: NAME}.",
        examples=["basic", {"type": "bottleneck", "groups": 32, "base_width": 4}],
    )
    stages: list[StageSpec] = Field(
        min_length=1,
        max_length=16,
        description="A list of 1 to 16 stages, or a depth preset (18, 26, 34, 50, 101, 152, 200, 270, 350, 420) "
        "expanding to four stages of widths 64-128-256-512 and strides 1-2-2-2.",
        examples=[50, [{"depth": 2, "width": 64}, {"depth": 2, "width": 128}]],
    )
    width_multiplier: Real = Field(
        1.0,
        gt=0.0,
        le=16.0,
        description="Scales the stem's and stages' widths, each rounded to the nearest multiple of 8 "
        "(0 < multiplier <= 16; at 1.0 the widths stay as written).",
        examples=[1.0, 0.5],
    )
    head: Head = Field(
        default_factory=lambda: ClassifierHead(type="classifier"),
        description="The head: classifier (default) or features; a bare type name stands for {type: NAME}, a "
        "mapping without type is a classifier.",
        examples=[{"classes": 10, "dropout": 0.2}, "features", {"type": "features", "out_indices": [1, 2, 3, 4]}],
    )
    norm: Norm = Field(
        default_factory=lambda: BatchNormSpec(type="batch"),
        description="The norm layers, by type: batch (default: eps and momentum, PyTorch's convention) or group "
        "(groups and eps); a bare type stands for its defaults, a mapping without type is batch norm.",
        examples=[{"eps": 1.001e-5, "momentum": 0.01}, "group", {"type": "group", "groups": 32}],
    )
    act: Activation = Field(
        "relu",
        description=f"Activation of the network: {chosen_text(notes=True)}.",
        examples=["relu", "silu"],
    )
    weight_std: WeightStdSpec | None = Field(
        None,
        description="Weight-standardised convs: every conv of the stem, the blocks and the shortcuts normalises "
        "its kernel per output channel, (w - mean) / sqrt(var + eps), before it convolves (BiT's StdConv2d; "
        "attention convs and the classifier stay plain). null: plain convs.",
        examples=[{"eps": 1e-8}],
    )
    naming: Literal["torchvision", "timm_resnetv2"] = Field(
        "torchvision",
        description="The module names, after the reference whose checkpoints load unchanged: torchvision "
        "(conv1, bn1, layer1.0.conv1, downsample.0, fc; timm's resnet.py names them the same) or timm_resnetv2 "
        "(stem.conv, stages.0.blocks.0.norm1, downsample.conv, norm, head.fc).",
        examples=["torchvision", "timm_resnetv2"],
    )
    conv_bias: Literal["never", "always", "unnormed"] = Field(
        "never",
        description="Which convs have a bias (SE convs: se.bias): never; always (keras.applications V1); "
        "unnormed, only those not followed by a norm (keras.applications V2).",
        examples=["never", "always", "unnormed"],
    )
    output_stride: Literal[8, 16, 32] | None = Field(
        None,
        description="Dense prediction: stages that would take the network's stride past this one keep "
        "their resolution and dilate their convs instead (timm's output_stride, torchvision's "
        "replace_stride_with_dilation). Default: the network's own strides.",
        examples=[8, 16],
    )
    freeze: FreezeSpec | None = Field(
        None,
        description="For fine-tuning: the stem and first stages whose weights take no gradient, and whether the "
        "batch norms' statistics (and scale and shift) stay fixed while the model trains. null: all trains.",
        examples=[{"stages": 1, "norm": "eval"}, {"norm": "frozen"}],
    )
    drop_path: DropPathSpec = Field(
        default_factory=DropPathSpec,
        description="Stochastic depth on the residual branches: rate and schedule; identity in eval mode.",
        examples=[{"rate": 0.1}, {"rate": 0.2, "schedule": "per_stage"}],
    )
    init: InitSpec = Field(
        default_factory=InitSpec,
        description="Weight initialisation: conv init and mode, zero_init_last.",
        examples=[{"zero_init_last": True}, {"conv": "kaiming_uniform", "mode": "fan_in"}],
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), naming="torchvision", weight_std=None, freeze=None)

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        """Expand a depth preset and merge each stage's block over the top-level one."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("stages"), int) and data["stages"] in DEPTH_PRESETS:
            data["stages"] = expand_stages(data["stages"])
        top = _typed_shorthand(data.get("block"))
        if isinstance(data.get("stages"), list) and isinstance(top, dict):
            stages = []
            for stage in data["stages"]:
                if isinstance(stage, dict):
                    stage = dict(stage)
                    own = _typed_shorthand(stage.get("block"))
                    if own is None or isinstance(own, dict):  # anything else (0, [], false) is left to be refused
                        stage["block"] = merge(top, own or {})
                stages.append(stage)
            data["stages"] = stages
        return data

    @field_validator("stages", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        return expand_stages(value)  # reports an unknown preset at 'stages'

    def stage_block(self, index: int) -> BasicBlock | BottleneckBlock | PlainBlock:
        return self.stages[index].block or self.block


# The language's unions, by the field that holds each: the schema's and the loader's lists of variants are
# read from here, so a new variant is added to its union and nowhere else.
UNIONS: dict[str, Any] = {
    "stem": Stem,
    "block": Block,
    "head": Head,
    "norm": Norm,
    "attn": Attention,
    "anti_alias": AntiAlias,
}


def variants(union: Any) -> tuple[type[StrictModel], ...]:
    """The models of one of the language's unions (``Stem``, ``Block``, ``Head``, ...), in order."""
    inner = get_args(union)[0]  # Annotated[Annotated[X | Y, ...], ...] is Annotated[X | Y, ...]
    return get_args(inner) or (inner,)


def variant_tag(model: type[StrictModel]) -> str:
    """The ``type`` a variant is written with."""
    tags = get_args(model.model_fields["type"].annotation)
    return str(tags[0])
