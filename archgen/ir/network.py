"""The structure: blocks, stages, the network and its options, feature taps and folds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from .designs import BlockDesign
from .layers import (
    AnyLayer,
    Layer,
    Norm,
    Shape,
)
from .naming import TORCHVISION, Naming
from .parts import (
    Attention,
    BlockPart,
    HeadPart,
    P,
    Shortcut,
    StemPart,
    part_layers,
)


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
    momentum: float  # PyTorch's convention; Keras' is 1 - momentum (batch norm's)
    kind: Literal["batch", "group", "frn", "evonorm_s0"] = "batch"
    groups: int = 0  # group norm's and evonorm_s0's

    @property
    def is_act(self) -> bool:
        """The norm is its own activation (frn, evonorm_s0): the activation after each norm is left out."""
        return self.kind in ("frn", "evonorm_s0")


@dataclass(frozen=True)
class FreezeOptions:
    """What stays fixed while the model trains (the spec's freeze)."""

    modules: tuple[str, ...] = ()  # the stem's and the frozen stages' modules: no gradient, norms in eval mode
    norm: Literal["train", "eval", "frozen"] = "train"  # every batch norm: as usual, statistics fixed, or all fixed

    @property
    def active(self) -> bool:
        return bool(self.modules) or self.norm != "train"


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
    freeze: FreezeOptions = FreezeOptions()  # fine-tuning: what stays fixed while the model trains
    naming: Naming = TORCHVISION  # how every module is named (its reference's checkpoints load unchanged)
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
    def trainable_params(self) -> int:
        """The parameters that take a gradient: all but the frozen modules' and, with freeze.norm frozen, the
        batch norms' scales and shifts (the spec's freeze)."""
        frozen = self.freeze.modules
        fixed_norms = self.freeze.norm == "frozen"
        return sum(
            x.params
            for x in self.layers()
            if not any(x.name == m or x.name.startswith(m + ".") for m in frozen)
            and not (fixed_norms and isinstance(x, Norm))
        )

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
