"""The framework-free description of a compiled network (the IR).

Every layer is one frozen dataclass per kind (``Conv``, ``Norm``, ``Act``, ...)
carrying its PyTorch module path as its name, its input and output shape
(channels-first, for the spec's input size), its trainable parameters, its
normalisation statistics (running mean + variance) and its FLOPs
(multiply-accumulates of convs and linear layers, the convention torchvision
and timm report). Consumers dispatch on the type (``match``), never on strings.

A block's ``design`` says once what the block is made of (its conv slots, its
shortcut, its SE, its zero-init target); the resolver decides it, and the
emitter and every backend's templates only render it. Backends read only this.

A block, the stem and the head hold their layers in typed *parts* (``ConvUnit``,
``Attention``, ``Shortcut``, ``StemPool``, ``Softmax``, ...): what a layer is for
is read from the part that holds it, never from its name. Names are module
paths, what checkpoints are loaded against, and nothing more. ``AnyLayer`` and
the ``*Part`` unions are closed: every ``match`` over them ends in
``assert_never``, so the type checker lists each consumer a new kind needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, TypeVar

Shape = tuple[int, ...]


def shape_text(shape: Shape) -> str:
    """A shape as people write it: 56x56x256."""
    return "x".join(str(d) for d in shape)


BlockKind = Literal["basic", "bottleneck", "plain"]
ShortcutKind = Literal["conv", "avgpool", "maxpool", "identity"]


# -- layers -----------------------------------------------------------------------------------------------------
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


@dataclass(frozen=True, kw_only=True)
class Norm(Layer):
    """Batch norm; ``momentum`` in PyTorch's convention (the weight of the new batch)."""

    kind: ClassVar[str] = "norm"
    channels: int
    eps: float
    momentum: float


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


# Every kind of layer: a consumer matches over this union and ends with assert_never.
AnyLayer = Conv | Norm | Act | MaxPool | AvgPool | GlobalPool | Dropout | DropPath | Linear
L = TypeVar("L", bound=Layer)


# -- block designs ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvSlot:
    """One conv of a block class, in terms of the block constructor's channel arguments."""

    index: int  # conv1, conv2, ...
    in_chs: Literal["in_chs", "mid_chs"]
    out_chs: Literal["mid_chs", "out_chs"]
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
    norm: bool = True  # a norm after the projection (not in pre-activation blocks)

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
class BlockDesign:
    """What every block of a stage is made of; the same design renders the same block class."""

    kind: BlockKind
    preact: bool  # norm + act before each conv, nothing after the addition (ResNet V2)
    convs: tuple[ConvSlot, ...]
    shortcut: ShortcutDesign | None  # None: no shortcut (plain blocks)
    attn: AttentionDesign | None = None  # channel attention on the residual branch
    zero_init: str | None = None  # local name of the layer zeroed by init.zero_init_last (bn3, conv3)
    stride_last: bool = False  # the stage's stride sits on its last block rather than its first
    # The inference form (archgen.compiler.fuse): (conv, norm) local names of the unfused design whose norm is
    # folded into the conv, which then has a bias; empty for the unfused design.
    folds: tuple[tuple[str, str], ...] = ()

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


# -- parts: what each layer of a block, the stem or the head is for ---------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Part:
    """Layers that do one job together, in forward order."""

    layers: tuple[AnyLayer, ...]

    def of(self, kind: type[L]) -> list[L]:
        """The part's layers of one type, in order."""
        return [x for x in self.layers if isinstance(x, kind)]

    @property
    def module(self) -> str:
        """The module path that holds the part's layers (their longest common dotted prefix)."""
        paths = [x.name.split(".") for x in self.layers]
        common: list[str] = []
        for names in zip(*paths, strict=False):
            if len(set(names)) > 1:
                break
            common.append(names[0])
        if len(self.layers) == 1:
            common = paths[0][:-1]
        return ".".join(common)


@dataclass(frozen=True, kw_only=True)
class ConvUnit(Part):
    """``conv<index>`` of the residual branch with its norm and activation: after the conv in a
    post-activation block (a residual block's last one has no activation: it follows the addition),
    before it in a pre-activation block."""

    index: int

    @property
    def conv(self) -> Conv:
        return self.of(Conv)[0]


@dataclass(frozen=True, kw_only=True)
class Attention(Part):
    """Channel attention on the residual branch's output (the module ``se``, as timm names every kind):
    the branch is scaled by its gate."""

    design: AttentionDesign

    @property
    def gate(self) -> AnyLayer:
        """The layer whose output scales the branch (a sigmoid)."""
        return self.layers[-1]


@dataclass(frozen=True, kw_only=True)
class StochasticDepth(Part):
    """Drop path on the residual branch (identity in eval)."""


@dataclass(frozen=True, kw_only=True)
class Shortcut(Part):
    """The shortcut's layers (``downsample``): none where the block keeps its shape; else its pool, its
    projection and the projection's norm, as its design makes them."""

    design: ShortcutDesign


@dataclass(frozen=True, kw_only=True)
class PostAct(Part):
    """The activation after the residual addition (post-activation blocks)."""


BlockPart = ConvUnit | Attention | StochasticDepth | Shortcut | PostAct


@dataclass(frozen=True, kw_only=True)
class StemConvs(Part):
    """The stem's conv (``classic``) or stack of 3x3 convs (``deep``), with their norms and activations."""

    kind: Literal["classic", "deep"]


@dataclass(frozen=True, kw_only=True)
class StemPool(Part):
    """The stem's downsampling after its convs (the ``maxpool`` module): a max pool, or a strided conv
    with its norm and activation."""

    kind: Literal["max", "conv"]


StemPart = StemConvs | StemPool


@dataclass(frozen=True, kw_only=True)
class FinalNorm(Part):
    """The norm and activation a pre-activation network applies after its last block."""


@dataclass(frozen=True, kw_only=True)
class Classifier(Part):
    """Global pooling, dropout where the spec asks for it, and the linear layer: the logits."""

    @property
    def pool(self) -> GlobalPool:
        return self.of(GlobalPool)[0]

    @property
    def fc(self) -> Linear:
        return self.of(Linear)[0]


@dataclass(frozen=True, kw_only=True)
class Softmax(Part):
    """Probabilities instead of logits (keras.applications' heads)."""


HeadPart = FinalNorm | Classifier | Softmax
AnyPart = BlockPart | StemPart | HeadPart


P = TypeVar("P", bound=Part)


def part_layers(parts: tuple[Part, ...]) -> tuple[AnyLayer, ...]:
    return tuple(x for p in parts for x in p.layers)


# -- structure --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """A residual (or plain) block: its design, its stride and drop-path rate, and its parts."""

    name: str
    design: BlockDesign
    in_shape: Shape
    out_shape: Shape
    stride: int
    parts: tuple[BlockPart, ...]
    drop_path: float = 0.0
    first_dilation: int = 1  # of the convs up to the strided one
    dilation: int = 1  # of the convs after it

    @property
    def layers(self) -> tuple[AnyLayer, ...]:
        """Every layer in forward order: the branch, its attention and drop path, the shortcut, the
        activation after the addition."""
        return part_layers(self.parts)

    @property
    def shortcut(self) -> Shortcut | None:
        return next((p for p in self.parts if isinstance(p, Shortcut)), None)

    @property
    def attention(self) -> Attention | None:
        return next((p for p in self.parts if isinstance(p, Attention)), None)

    @property
    def params(self) -> int:
        return sum(x.params for x in self.layers)

    @property
    def stats(self) -> int:
        return sum(x.stats for x in self.layers)

    @property
    def flops(self) -> int:
        return sum(x.flops for x in self.layers)


@dataclass(frozen=True)
class Stage:
    """A run of blocks of one design: what a code generator writes as one table row."""

    name: str
    design: BlockDesign
    blocks: tuple[Block, ...]
    in_shape: Shape
    out_shape: Shape
    mid_chs: int  # the block width before expansion (a bottleneck's inner width)
    stride: int  # 1 where output_stride turned the stride into dilation
    dilation: int = 1  # the stage's dilation (output_stride)
    first_dilation: int = 1  # the previous stage's: the convs up to where the stride would be keep it

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def layers(self) -> tuple[AnyLayer, ...]:
        return tuple(x for b in self.blocks for x in b.layers)


@dataclass(frozen=True)
class Section:
    """A row of the summary: the stem, one stage, or the head."""

    name: str
    in_shape: Shape
    out_shape: Shape
    params: int
    stats: int
    flops: int


@dataclass(frozen=True)
class FeatureInfo:
    """A feature map a detector or segmenter can take, as timm's ``feature_info`` describes it."""

    num_chs: int
    reduction: int  # the input's size over this map's, by strides (timm's convention)
    module: str  # the top-level module whose output it is
    shape: Shape = field(default=(), compare=False)  # channels-first, at the spec's input size


@dataclass(frozen=True)
class NormOptions:
    eps: float
    momentum: float  # PyTorch's convention; Keras' is 1 - momentum


@dataclass(frozen=True)
class DropPathOptions:
    rate: float
    schedule: Literal["linear", "per_stage", "uniform"]
    # The stage depths the schedule runs over: the spec's, also where a features head with
    # out_indices ends the network before its last stage (the blocks built keep their rates).
    depths: tuple[int, ...] = ()


@dataclass(frozen=True)
class InitOptions:
    conv: Literal["kaiming_normal", "kaiming_uniform", "default"]
    mode: Literal["fan_out", "fan_in"]
    zero_init_last: bool


@dataclass(frozen=True)
class Fold:
    """A norm of the unfused network folded into a conv of the fused one (archgen.compiler.fuse)."""

    conv: str  # the fused network's conv
    source_conv: str  # the same conv in the unfused network (its name differs where a norm left an nn.Sequential)
    norm: str  # the unfused network's norm


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: Shape
    stem_parts: tuple[StemPart, ...]
    stages: tuple[Stage, ...]
    head_parts: tuple[HeadPart, ...]
    act: str
    norm: NormOptions
    drop_path: DropPathOptions
    init: InitOptions
    classes: int | None  # None: a features head (the model returns feature maps)
    digest: str  # sha256 of the resolved spec
    description: str = ""
    # A features head's out_indices (into feature_info, ascending, non-negative): the model returns
    # those maps as a list. None: one output (the classifier's, or the last feature map).
    out_indices: tuple[int, ...] | None = None
    output_stride: int | None = None  # the spec's (stages past it dilate); None: the network's own strides
    fused: bool = False  # the inference form: norms folded into convs (archgen.compiler.fuse)
    folds: tuple[Fold, ...] = ()  # fused: where each folded norm went
    renames: tuple[tuple[str, str], ...] = ()  # fused: (unfused, fused) names of weighted layers that moved
    # The stem's map where timm takes it, then every stage's: recorded by the resolver as it builds them.
    feature_info: tuple[FeatureInfo, ...] = field(default=(), compare=False)  # follows from the layers
    # The resolved spec as JSON data (what ``digest`` hashes): says what differs between two networks.
    resolved: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def stem(self) -> tuple[AnyLayer, ...]:
        return part_layers(self.stem_parts)

    @property
    def head(self) -> tuple[AnyLayer, ...]:
        return part_layers(self.head_parts)

    def stem_part(self, kind: type[P]) -> P | None:
        return next((p for p in self.stem_parts if isinstance(p, kind)), None)

    def head_part(self, kind: type[P]) -> P | None:
        return next((p for p in self.head_parts if isinstance(p, kind)), None)

    def block_parts(self) -> Iterator[BlockPart]:
        for stage in self.stages:
            for block in stage.blocks:
                yield from block.parts

    def layers(self) -> Iterator[AnyLayer]:
        yield from self.stem
        for stage in self.stages:
            yield from stage.layers
        yield from self.head

    def layer(self, name: str) -> AnyLayer:
        """The layer of this IR name (KeyError naming it if there is none)."""
        found = self._by_name.get(name)
        if found is None:
            raise KeyError(f"no layer '{name}' in the network '{self.name}'")
        return found

    @cached_property
    def _by_name(self) -> dict[str, AnyLayer]:
        return {x.name: x for x in self.layers()}

    @property
    def residual(self) -> bool:
        return any(s.design.residual for s in self.stages)

    @property
    def num_features(self) -> int:
        """Channels of the last feature map (what the classifier pools)."""
        return self.stages[-1].out_shape[0]

    @property
    def output_shapes(self) -> tuple[Shape, ...]:
        """The shape of every output: one, or the maps of ``out_indices``."""
        if self.out_indices is None:
            return (self.output_shape,)
        return tuple(self.feature_info[i].shape for i in self.out_indices)

    @property
    def output_shape(self) -> Shape:
        if self.head:
            return self.head[-1].out_shape
        if self.stages:
            return self.stages[-1].out_shape
        return self.stem[-1].out_shape if self.stem else self.input_shape

    @property
    def params(self) -> int:
        return sum(x.params for x in self.layers())

    @property
    def stats(self) -> int:
        return sum(x.stats for x in self.layers())

    @property
    def flops(self) -> int:
        return sum(x.flops for x in self.layers())

    def sections(self) -> list[Section]:
        rows: list[Section] = []

        def add(name: str, layers: tuple[Layer, ...], in_shape: Shape, out_shape: Shape) -> None:
            rows.append(
                Section(
                    name,
                    in_shape,
                    out_shape,
                    sum(x.params for x in layers),
                    sum(x.stats for x in layers),
                    sum(x.flops for x in layers),
                )
            )

        if self.stem:
            add("stem", self.stem, self.input_shape, self.stem[-1].out_shape)
        for stage in self.stages:
            add(stage.name, stage.layers, stage.in_shape, stage.out_shape)
        if self.head:
            add("head", self.head, self.head[0].in_shape, self.head[-1].out_shape)
        return rows

    def boundaries(self) -> dict[str, Shape]:
        """Output shape after the stem, after each stage and of the whole network."""
        out = {row.name: row.out_shape for row in self.sections()}
        out["output"] = self.output_shape
        if self.out_indices is not None:
            out.update({f"output.{i}": shape for i, shape in enumerate(self.output_shapes)})
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "input": list(self.input_shape),
            "output": list(self.output_shape),
            "params": self.params,
            "stats": self.stats,
            "flops": self.flops,
            "sections": [
                {
                    "name": r.name,
                    "input": list(r.in_shape),
                    "output": list(r.out_shape),
                    "params": r.params,
                    "stats": r.stats,
                    "flops": r.flops,
                }
                for r in self.sections()
            ],
        }
