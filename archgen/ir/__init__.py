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

The IR is five modules, each using only the ones before it: ``naming`` (module names), ``layers``,
``designs`` (a block's design), ``parts`` (what each layer is for) and ``network`` (the structure);
every name is importable from ``archgen.ir``.
"""

from __future__ import annotations

from .designs import AntiAliasDesign, AttentionDesign, BlockDesign, ConvSlot, EcaDesign, SEDesign, ShortcutDesign
from .layers import (
    Act,
    AnyLayer,
    AvgPool,
    BlockKind,
    BlurPool,
    Conv,
    Dropout,
    DropPath,
    GlobalPool,
    GroupNorm,
    Layer,
    Linear,
    MaxPool,
    Norm,
    NormAct,
    Shape,
    ShortcutKind,
    ZeroPad,
    shape_text,
)
from .naming import NAMINGS, TIMM_RESNETV2, TORCHVISION, Naming
from .network import (
    Block,
    DropPathOptions,
    FeatureInfo,
    Fold,
    FreezeOptions,
    InitOptions,
    Network,
    NormOptions,
    Section,
    Stage,
)
from .parts import (
    AntiAlias,
    AnyPart,
    Attention,
    BlockPart,
    Classifier,
    ConvUnit,
    FinalNorm,
    HeadPart,
    Part,
    PostAct,
    Shortcut,
    Softmax,
    StemConvs,
    StemPart,
    StemPool,
    StochasticDepth,
    part_layers,
)

__all__ = [
    "NAMINGS",
    "TIMM_RESNETV2",
    "TORCHVISION",
    "Act",
    "AntiAlias",
    "AntiAliasDesign",
    "AnyLayer",
    "AnyPart",
    "Attention",
    "AttentionDesign",
    "AvgPool",
    "Block",
    "BlockDesign",
    "BlockKind",
    "BlockPart",
    "BlurPool",
    "Classifier",
    "Conv",
    "ConvSlot",
    "ConvUnit",
    "DropPath",
    "DropPathOptions",
    "Dropout",
    "EcaDesign",
    "FeatureInfo",
    "FinalNorm",
    "Fold",
    "FreezeOptions",
    "GlobalPool",
    "GroupNorm",
    "HeadPart",
    "InitOptions",
    "Layer",
    "Linear",
    "MaxPool",
    "Naming",
    "Network",
    "Norm",
    "NormAct",
    "NormOptions",
    "Part",
    "PostAct",
    "SEDesign",
    "Section",
    "Shape",
    "Shortcut",
    "ShortcutDesign",
    "ShortcutKind",
    "Softmax",
    "Stage",
    "StemConvs",
    "StemPart",
    "StemPool",
    "StochasticDepth",
    "ZeroPad",
    "part_layers",
    "shape_text",
]
