"""The layers: one frozen dataclass per kind, and the closed union ``AnyLayer`` of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar

Shape = tuple[int, ...]


def shape_text(shape: Shape) -> str:
    """A shape as people write it: 56x56x256."""
    return "x".join(str(d) for d in shape)


BlockKind = Literal["basic", "bottleneck", "plain"]
ShortcutKind = Literal["conv", "avgpool", "maxpool", "zero_pad", "identity"]


@dataclass(frozen=True, kw_only=True)
class Layer:
    """One module with no children of its own; ``kind`` names it in messages."""

    kind: ClassVar[str] = "layer"
    name: str
    in_shape: Shape
    out_shape: Shape
    params: int = 0
    stats: int = 0
    flops: int = 0

    @property
    def weighted(self) -> bool:
        """Whether the layer holds tensors a checkpoint stores."""
        return bool(self.params or self.stats)


@dataclass(frozen=True, kw_only=True)
class Conv(Layer):
    kind: ClassVar[str] = "conv"
    in_ch: int
    out_ch: int
    kernel: int
    stride: int = 1
    padding: int = 0  # dilation * (kernel // 2): the map keeps its size at stride 1
    groups: int = 1
    bias: bool = False
    dilation: int = 1
    dims: Literal[1, 2] = 2  # spatial dimensions: 2 (Conv2d), or 1 (Conv1d, e.g. across channels)
    # Weight-standardised (BiT's StdConv2d): the kernel is normalised per output channel, with this eps,
    # before each use; None: a plain conv.
    std_eps: float | None = None


@dataclass(frozen=True, kw_only=True)
class Norm(Layer):
    """Batch norm; ``momentum`` in PyTorch's convention (the weight of the new batch)."""

    kind: ClassVar[str] = "norm"
    channels: int
    eps: float
    momentum: float


@dataclass(frozen=True, kw_only=True)
class GroupNorm(Layer):
    """Group norm: each sample's channels normalised in ``groups`` groups by their own statistics, then
    scaled and shifted per channel; no running statistics (the same in training and eval)."""

    kind: ClassVar[str] = "group_norm"
    channels: int
    groups: int
    eps: float


@dataclass(frozen=True, kw_only=True)
class NormAct(Layer):
    """A norm that is its own activation, per sample (no running statistics), with a third per-channel
    parameter: ``frn``, filter response norm + TLU (weight, bias, ``tau``: x / sqrt(mean(x^2) + eps) over the
    map, scaled, shifted, max(x, tau)); ``evonorm_s0`` (weight, bias, ``v``: x * sigmoid(v * x) / the group's
    standard deviation, scaled, shifted)."""

    kind: ClassVar[str] = "norm_act"
    fn: Literal["frn", "evonorm_s0"]
    channels: int
    eps: float
    groups: int = 1  # evonorm_s0's

    @property
    def extra(self) -> str:
        """The name of its third parameter, as timm's layers name it."""
        return "tau" if self.fn == "frn" else "v"


@dataclass(frozen=True, kw_only=True)
class Act(Layer):
    kind: ClassVar[str] = "act"
    fn: str  # relu, silu, ..., sigmoid (SE gates), softmax (keras.applications heads)


@dataclass(frozen=True, kw_only=True)
class MaxPool(Layer):
    kind: ClassVar[str] = "max_pool"
    kernel: int
    stride: int
    padding: int = 0
    pad_value: Literal["neg_inf", "zero"] = "neg_inf"


@dataclass(frozen=True, kw_only=True)
class AvgPool(Layer):
    """PyTorch's ``AvgPool2d(k, s, ceil_mode=True, count_include_pad=False)`` (ResNet-D shortcuts).

    ``pad_after``: zeros appended below and to the right first, counted in the average: the 2x2
    stride-1 "same" pool (timm's ``AvgPool2dSame``) of a ResNet-D shortcut in a dilated stage.
    """

    kind: ClassVar[str] = "avg_pool"
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = True
    count_include_pad: bool = False
    pad_after: int = 0


@dataclass(frozen=True, kw_only=True)
class BlurPool(Layer):
    """Anti-aliased downsampling (timm's ``BlurPool2d``): each channel padded by ``padding`` (reflected, or
    zeros), blurred by the fixed ``kernel`` x ``kernel`` binomial filter and strided. No weights: the filter is
    a non-persistent buffer, which no checkpoint holds."""

    kind: ClassVar[str] = "blur_pool"
    channels: int
    kernel: int
    stride: int
    padding: int
    pad_mode: Literal["reflect", "zero"] = "reflect"


@dataclass(frozen=True, kw_only=True)
class ZeroPad(Layer):
    """He et al.'s option-A shortcut: every ``stride``-th pixel from the first (the strided 3x3 conv's grid), and
    ``out_ch - in_ch`` zero channels appended after the input's; no weights."""

    kind: ClassVar[str] = "zero_pad"
    in_ch: int
    out_ch: int
    stride: int


@dataclass(frozen=True, kw_only=True)
class GlobalPool(Layer):
    kind: ClassVar[str] = "global_pool"
    pool: Literal["avg", "max"] = "avg"


@dataclass(frozen=True, kw_only=True)
class Dropout(Layer):
    kind: ClassVar[str] = "dropout"
    rate: float


@dataclass(frozen=True, kw_only=True)
class DropPath(Layer):
    """Stochastic depth on a residual branch; identity in eval."""

    kind: ClassVar[str] = "drop_path"
    rate: float


@dataclass(frozen=True, kw_only=True)
class Linear(Layer):
    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int
    bias: bool = True
    conv: bool = False  # stored as a 1x1 conv's weight (out, in, 1, 1): timm's use_conv heads (resnetv2)


# Every kind of layer: a consumer matches over this union and ends with assert_never.
AnyLayer = (
    Conv
    | Norm
    | GroupNorm
    | NormAct
    | Act
    | MaxPool
    | AvgPool
    | BlurPool
    | ZeroPad
    | GlobalPool
    | Dropout
    | DropPath
    | Linear
)
L = TypeVar("L", bound=Layer)
