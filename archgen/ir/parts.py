"""Parts: what each layer of a block, the stem or the head is for; consumers read it from here, never from a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from .designs import AntiAliasDesign, AttentionDesign, ShortcutDesign
from .layers import (
    AnyLayer,
    Conv,
    GlobalPool,
    L,
    Linear,
)


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
class AntiAlias(Part):
    """The module ``aa`` after the strided conv's norm and activation: it takes the block's stride (an
    average or a blur pool), or keeps the size where a dilated stage took the stride away, as timm's does."""

    design: AntiAliasDesign


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


BlockPart = ConvUnit | AntiAlias | Attention | StochasticDepth | Shortcut | PostAct


@dataclass(frozen=True, kw_only=True)
class StemConvs(Part):
    """The stem's conv (``classic``) or stack of 3x3 convs (``deep``), with their norms and activations."""

    kind: Literal["classic", "deep"]


@dataclass(frozen=True, kw_only=True)
class StemPool(Part):
    """The stem's downsampling after its convs (the ``maxpool`` module): a max pool, or a strided conv
    with its norm and activation; anti-aliased, an average pool, a max pool at stride 1 and a blur pool,
    or the conv at stride 1 followed by either."""

    kind: Literal["max", "avg", "conv"]


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
