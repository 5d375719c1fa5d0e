"""The spec language: pydantic models, the single source of the JSON Schema.

Every model forbids unknown keys. Variants (stem, block, head) are
discriminated unions on ``type``; a bare string is shorthand for
``{type: <string>}``. ``stages`` may be a depth preset (an integer such as 50)
that expands to the standard four-stage layout. A stage's ``block`` is merged
over the top-level ``block`` before validation, with the same rules as
``extends`` (see ``merge.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from .merge import merge

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
# Integers are strict: YAML `true`, `"3"` or `3.0` are wrong types, not 1, 3 and 3.
Count = Annotated[int, Strict(), Field(gt=0)]
Side = Annotated[Count, Field(le=MAX_INPUT_SIZE)]
Stride = Annotated[Count, Field(le=MAX_STRIDE)]
# Numbers are strict too: an integer or a float, never a boolean or a string (`"0.1"` is text, as
# `"3"` is for an integer). yamlsource.py reads a plain `1e-5` as the float YAML 1.2 makes it.
Real = Annotated[float, Strict()]
Fraction = Annotated[float, Strict(), Field(ge=0.0, lt=1.0)]

# Depths of the four standard stages, by network depth (torchvision, timm, ResNet-RS).
DEPTH_PRESETS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    26: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
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

    channels: Count = Field(3, le=4096)
    size: Side | tuple[Side, Side] = 224

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union."""
        pair = isinstance(value, list | tuple)
        items = list(value) if pair else [value]
        fits = all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIZE for v in items)
        if not fits or (pair and len(items) != 2):
            shown = f"; received {value!r}" if pair else ""  # scalars get "received" from the loader
            raise ValueError(f"expected an integer from 1 to {MAX_INPUT_SIZE}, or [height, width] of them{shown}")
        return value

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else (self.size[0], self.size[1])


class NormSpec(StrictModel):
    """Normalisation. ``momentum`` uses PyTorch's convention (weight of the new
    batch statistic); Keras' momentum is ``1 - momentum``."""

    type: Literal["batch"] = "batch"
    eps: Real = Field(1e-5, gt=0.0, lt=1.0)
    momentum: Real = Field(0.1, gt=0.0, le=1.0)


class _StemCommon(StrictModel):
    pool: Literal["max", "conv", "none"] = Field(
        "max",
        description="max: 3x3/2 max pool; conv: 3x3/2 conv + norm + act (ResNet-RS); none.",
    )
    pool_padding: Literal["neg_inf", "zero"] = Field(
        "neg_inf",
        description="Padding value of the max pool: -inf (PyTorch) or zero (keras.applications).",
    )
    norm_act: StrictBool = Field(
        True, description="Norm and activation after the last stem conv (false for pre-activation nets)."
    )


class ClassicStem(_StemCommon):
    """One large strided conv, then the pool (ResNet, 7x7/2 + max pool)."""

    type: Literal["classic"]
    width: Count = Field(64, le=MAX_CHANNELS)
    kernel: Count = Field(7, le=MAX_KERNEL)
    stride: Stride = 2


class DeepStem(_StemCommon):
    """A stack of 3x3 convs, the first strided (ResNet-C); norm + act between them."""

    type: Literal["deep"]
    widths: list[Annotated[Count, Field(le=MAX_CHANNELS)]] = Field(
        default_factory=lambda: [32, 32, 64], min_length=2, max_length=8
    )
    stride: Stride = 2


class NoStem(StrictModel):
    """No stem: the first stage sees the input directly."""

    type: Literal["none"]


Stem = Annotated[
    Annotated[ClassicStem | DeepStem | NoStem, Field(discriminator="type")],
    _typed("classic"),
]


class SESpec(StrictModel):
    """Squeeze-excitation on the residual branch's output (before the addition)."""

    ratio: Real = Field(0.0625, gt=0.0, le=1.0, description="Reduced width = out_channels * ratio, rounded.")
    divisor: Count = Field(8, le=MAX_CHANNELS, description="The reduced width is a multiple of this.")
    rounding: Literal["nearest", "floor"] = Field(
        "nearest", description="nearest: timm's make_divisible; floor: int() as in the Keras ResNet-RS code."
    )
    bias: StrictBool = True
    act: Activation = "relu"


class ShortcutSpec(StrictModel):
    """How the residual shortcut changes shape when a block does.

    conv: a strided 1x1 conv + norm (ResNet A/B). avgpool: 2x2 average pool
    for the stride, then a 1x1 conv + norm if channels change (ResNet-D).
    maxpool: 1x1 max pool for the stride, 1x1 conv if channels change
    (keras.applications V2). identity: no parameters; the block may not change
    shape.
    """

    type: Literal["conv", "avgpool", "maxpool", "identity"] = "conv"


Shortcut = Annotated[ShortcutSpec, _typed("conv")]


class _ResidualCommon(StrictModel):
    preact: StrictBool = Field(False, description="Pre-activation block (ResNet V2): norm and act before each conv.")
    stride_block: Literal["first", "last"] = Field(
        "first", description="Which block of a stage carries the stage's stride."
    )
    shortcut: Shortcut = Field(default_factory=ShortcutSpec)
    se: SESpec | None = None


class BasicBlock(_ResidualCommon):
    """Two 3x3 convs; the stride sits on the first."""

    type: Literal["basic"]
    expansion: Count = Field(1, le=MAX_EXPANSION)


class BottleneckBlock(_ResidualCommon):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand."""

    type: Literal["bottleneck"]
    expansion: Count = Field(4, le=MAX_EXPANSION)
    groups: Count = Field(1, le=MAX_CHANNELS, description="Cardinality (ResNeXt).")
    base_width: Count = Field(64, le=MAX_CHANNELS, description="Width per group at width 64 (ResNeXt 32x4d: 4).")
    width_factor: Real = Field(1.0, gt=0.0, le=64.0, description="Multiplies the inner width (Wide ResNet: 2).")
    stride_at: Literal["1x1", "3x3"] = Field(
        "3x3", description="3x3: stride on the 3x3 conv (ResNet-B, V1.5); 1x1: on the first 1x1 (original)."
    )


class PlainBlock(StrictModel):
    """conv + norm + act, no shortcut (the plain CNN baseline)."""

    type: Literal["plain"]
    kernel: Count = Field(3, le=MAX_KERNEL)
    stride_block: Literal["first", "last"] = "first"


Block = Annotated[
    Annotated[BasicBlock | BottleneckBlock | PlainBlock, Field(discriminator="type")],
    BeforeValidator(_typed_shorthand),
]


class StageSpec(StrictModel):
    """A run of blocks. ``width`` is the block width before expansion."""

    depth: Count = Field(le=MAX_DEPTH, description="Number of blocks.")
    width: Count = Field(le=MAX_CHANNELS)
    stride: Stride | None = Field(None, description="Default: 1 for the first stage, 2 after.")
    block: Block | None = Field(None, description="Fields merged over the top-level block for this stage.")


class DropPathSpec(StrictModel):
    """Stochastic depth on the residual branch; identity in eval mode."""

    rate: Fraction = 0.0
    schedule: Literal["linear", "per_stage", "uniform"] = Field(
        "linear",
        description=(
            "linear: rate * i / (n - 1) over all n blocks (timm); per_stage: rate * (s + 2) / (stages + 1) "
            "for stage s (Keras ResNet-RS); uniform: rate everywhere."
        ),
    )


class ClassifierHead(StrictModel):
    """Global pool, optional dropout, fully connected layer."""

    type: Literal["classifier"]
    pool: Literal["avg", "max"] = "avg"
    dropout: Fraction = 0.0
    classes: Count = Field(1000, le=MAX_CLASSES)
    activation: Literal["none", "softmax"] = Field("none", description="softmax as in keras.applications.")


class FeaturesHead(StrictModel):
    """No classifier: the model returns feature maps for a detector or segmenter.

    Without ``out_indices``, the last stage's map (after the final norm of a pre-activation net).
    With them, a list of the maps ``feature_info`` lists at those indices (timm's ``features_only``:
    0 is the stem's map where there is a stem, then one per stage; negative counts from the end),
    and the network ends at the last stage taken.
    """

    type: Literal["features"]
    out_indices: list[Annotated[int, Strict(), Field(ge=-MAX_FEATURES, lt=MAX_FEATURES)]] | None = Field(
        None, min_length=1, max_length=MAX_FEATURES, description="Indices into feature_info of the maps returned."
    )


Head = Annotated[
    Annotated[ClassifierHead | FeaturesHead, Field(discriminator="type")],
    _typed("classifier"),
]


class InitSpec(StrictModel):
    """Weight initialisation (norm layers always start at scale 1, shift 0)."""

    conv: Literal["kaiming_normal", "kaiming_uniform", "default"] = "kaiming_normal"
    mode: Literal["fan_out", "fan_in"] = "fan_out"
    zero_init_last: StrictBool = Field(
        False,
        description="Zero the last norm of each residual branch (the last conv in pre-activation blocks).",
    )


Tweak = Literal["B", "C", "D"]


class Spec(StrictModel):
    """A ResNet-family network."""

    name: Identifier = Field(description="Defaults to the file name (for a spec given as a mapping: its parent's).")
    description: str = Field("", max_length=2000)
    extends: str | None = Field(
        None,
        description="Parent spec, merged under this one: a name (resnet50d: NAME.yaml beside this file, "
        "else the shipped spec) or a path relative to this file (resnet50.yaml).",
    )
    tweaks: list[Tweak] = Field(
        default_factory=list,
        description="Bag-of-Tricks shorthand: B = stride on the 3x3, C = deep stem, D = avg-pool shortcut.",
    )
    input: InputSpec = Field(default_factory=InputSpec)
    stem: Stem = Field(default_factory=lambda: ClassicStem(type="classic"))
    block: Block
    stages: list[StageSpec] = Field(min_length=1, max_length=16)
    width_multiplier: Real = Field(
        1.0, gt=0.0, le=16.0, description="Scales stem and stage widths (to multiples of 8)."
    )
    head: Head = Field(default_factory=lambda: ClassifierHead(type="classifier"))
    norm: NormSpec = Field(default_factory=NormSpec)
    act: Activation = "relu"
    conv_bias: Literal["never", "always", "unnormed"] = Field(
        "never", description="Which convs carry a bias: unnormed = those not followed by a norm layer."
    )
    output_stride: Literal[8, 16, 32] | None = Field(
        None,
        description="Dense prediction: stages that would take the network's stride past this one keep "
        "their resolution and dilate their convs instead (timm's output_stride, torchvision's "
        "replace_stride_with_dilation). Default: the network's own strides.",
    )
    drop_path: DropPathSpec = Field(default_factory=DropPathSpec)
    init: InitSpec = Field(default_factory=InitSpec)

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
