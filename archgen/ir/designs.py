"""A block's design: what it is made of (conv slots, shortcut, attention), decided once by the resolver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .layers import (
    BlockKind,
    ShortcutKind,
)
from .naming import TORCHVISION, Naming


@dataclass(frozen=True)
class ConvSlot:
    """One conv of a block class, in terms of the block constructor's channel arguments."""

    index: int  # conv1, conv2, ...
    # first_chs: the first conv's output where the block reduces it (mid_chs // reduce_first)
    in_chs: Literal["in_chs", "first_chs", "mid_chs"]
    out_chs: Literal["first_chs", "mid_chs", "out_chs"]
    kernel: int
    strided: bool  # takes the block's stride
    groups: int = 1
    bias: bool = False
    # Comes after the strided conv: in a dilated stage it takes the stage's dilation, where the convs
    # up to the stride keep the previous one (timm's and torchvision's first_dilation).
    after_stride: bool = False


@dataclass(frozen=True)
class ShortcutDesign:
    """How a residual block's shortcut changes shape when the block does.

    ``conv`` projects (strided 1x1 conv) whenever the stride or the channels change; ``avgpool`` and
    ``maxpool`` take the stride in a pool at index 0 of ``downsample`` (Identity at stride 1) and project
    (1x1 conv at index 1) only when the channels change; ``identity`` never changes shape.
    """

    kind: ShortcutKind
    bias: bool = False  # the projection's
    norm: bool = True  # a norm after the projection (not in pre-activation blocks, nor in one that projects none)
    kernel: int = 1  # a conv projection's where the block strides or dilates (timm's down_kernel_size)
    always: bool = False  # a conv projection on every block, also where it keeps its shape (option C)

    @property
    def project_on_stride(self) -> bool:
        """Whether a stride alone makes the shortcut project (only ``conv`` has no pool to take it)."""
        return self.kind == "conv"

    @property
    def pooled(self) -> bool:
        return self.kind in ("avgpool", "maxpool")

    @property
    def macro(self) -> str:
        """The macro of each backend's shortcuts.py.j2 that renders this kind (the pooled kinds share one)."""
        return "pooled" if self.pooled else self.kind


@dataclass(frozen=True)
class SEDesign:
    """Squeeze-excitation on the residual branch's output; reduced width = rounded ``out_chs * ratio``."""

    kind: ClassVar[str] = "se"  # the spec's attn type; the templates' attention_<kind>.py.j2 renders it
    class_name: ClassVar[str] = "SqueezeExcite"  # the emitted module's class (numbered where designs differ)
    class_fields: ClassVar[tuple[str, ...]] = ("bias", "act")  # built into the class; the rest are arguments

    ratio: float
    divisor: int
    rounding: Literal["nearest", "floor"]
    bias: bool
    act: str

    @property
    def acts(self) -> tuple[str, ...]:
        """The activations the module applies besides its gate."""
        return (self.act,)

    @property
    def uses(self) -> tuple[str, ...]:
        """The emitted file's helpers it needs."""
        return (f"round_{self.rounding}",)


@dataclass(frozen=True)
class EcaDesign:
    """Efficient channel attention (ECA-Net; timm's ``EcaModule``): a 1-D conv across the globally pooled
    channels, no reduction; its kernel fixed, or from the channels (``kernel_for``)."""

    kind: ClassVar[str] = "eca"
    class_name: ClassVar[str] = "EfficientChannelAttention"
    class_fields: ClassVar[tuple[str, ...]] = ("kernel", "gamma", "beta")

    kernel: int | None  # None: adaptive
    gamma: int
    beta: int

    acts: ClassVar[tuple[str, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = ()

    def kernel_for(self, channels: int) -> int:
        """ECA-Net's adaptive size: t = floor((log2(channels) + beta) / gamma), made odd (t | 1), at least 3.
        floor(log2(c)) is c.bit_length() - 1 exactly, and floor(x / g) = floor(floor(x) / g)."""
        if self.kernel is not None:
            return self.kernel
        return max(((channels.bit_length() - 1 + self.beta) // self.gamma) | 1, 3)

    def kernel_rule(self, channels: str) -> str:
        """``kernel_for`` as a Python expression of the variable ``channels``: what the emitted files compute."""
        return f"max((({channels}.bit_length() - 1 + {self.beta}) // {self.gamma}) | 1, 3)"


# Every kind of attention: a consumer matches over this union and ends with assert_never.
AttentionDesign = SEDesign | EcaDesign


@dataclass(frozen=True)
class AntiAliasDesign:
    """Anti-aliased downsampling after a block's strided conv (timm's ``aa_layer``): the conv runs at stride 1
    and, after its norm and activation, the module ``aa`` takes the stride: a stride x stride average pool
    (``avg``), or a binomial blur pool of ``kernel`` (``blur``) padded by reflection or with zeros."""

    kind: Literal["avg", "blur"]
    kernel: int = 3  # the blur's filter size
    padding: Literal["reflect", "zero"] = "reflect"  # the blur's


@dataclass(frozen=True)
class BlockDesign:
    """What every block of a stage is made of; the same design renders the same block class."""

    kind: BlockKind
    preact: bool  # norm + act before each conv, nothing after the addition (ResNet V2)
    convs: tuple[ConvSlot, ...]
    shortcut: ShortcutDesign | None  # None: no shortcut (plain blocks)
    attn: AttentionDesign | None = None  # channel attention on the residual branch
    anti_alias: AntiAliasDesign | None = None  # after the strided conv's norm and act
    reduce_first: int = 1  # the first conv's output is mid_chs // reduce_first (timm's block_reduce_first)
    zero_init: str | None = None  # local name of the layer zeroed by init.zero_init_last (bn3, conv3)
    stride_last: bool = False  # the stage's stride sits on its last block rather than its first
    # The inference form (archgen.compiler.fuse): (conv, norm) local names of the unfused design whose norm is
    # folded into the conv, which then has a bias; empty for the unfused design.
    folds: tuple[tuple[str, str], ...] = ()
    naming: Naming = TORCHVISION  # the local names of its modules (conv1, bn1 or norm1, downsample.0 or .conv)

    @property
    def residual(self) -> bool:
        return self.shortcut is not None

    @property
    def folded(self) -> bool:
        return bool(self.folds)

    @property
    def last(self) -> int:
        """Index of the last conv (its norm or conv is the zero-init target; act<last> follows the addition)."""
        return self.convs[-1].index
