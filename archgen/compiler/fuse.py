"""The inference form of a network: every batch norm that follows a conv folded into that conv.

In eval mode a batch norm is a per-channel affine map, ``y = (x - mean) * gamma / sqrt(var + eps) +
beta``; after a conv it folds into the conv's weight and bias, and the norm disappears from the
graph (one pass over the activations less, per norm). What cannot fold stays: the norm before a
pre-activation block's first conv (it also feeds the shortcut) and a pre-activation network's final
norm (it follows an addition).

``fuse(network)`` is an IR pass: the folded network renders through the same templates (the block
designs say ``folded``), and its ``folds`` and ``renames`` say where each tensor of the unfused
network's checkpoint goes, so the emitted file's ``fold_state_dict`` turns a torchvision/timm
checkpoint into the fused model's.
"""

from __future__ import annotations

import dataclasses

from ..errors import OptionError
from ..ir import AnyLayer, Block, BlockDesign, Conv, Fold, Network, Norm, Shortcut, StemPart


def design_folds(design: BlockDesign) -> tuple[tuple[str, str], ...]:
    """(conv, norm) local names of one block of ``design`` whose norm folds into the conv; the
    shortcut's only where the block projects."""
    n = design.naming
    if design.preact:  # norm i+1 follows conv i; norm 1 also feeds the shortcut
        convs = zip(design.convs, design.convs[1:], strict=False)
        pairs = [(n.block_conv(a.index), n.block_norm(b.index)) for a, b in convs]
    else:
        pairs = [(n.block_conv(c.index), n.block_norm(c.index)) for c in design.convs]
    sc = design.shortcut
    if sc is not None and sc.norm:
        pairs.append((n.shortcut_layer("conv", sc.pooled), n.shortcut_layer("norm", sc.pooled)))
    return tuple(pairs)


def folded_design(design: BlockDesign) -> BlockDesign:
    convs = design.convs
    if design.preact:
        convs = tuple(dataclasses.replace(c, bias=True) for c in convs[:-1]) + convs[-1:]
    else:
        convs = tuple(dataclasses.replace(c, bias=True) for c in convs)
    shortcut = design.shortcut
    if shortcut is not None and shortcut.norm:
        shortcut = dataclasses.replace(shortcut, bias=True, norm=False)
    return dataclasses.replace(design, convs=convs, shortcut=shortcut, zero_init=None, folds=design_folds(design))


def _with_bias(conv: Conv) -> Conv:
    if conv.bias:
        return conv
    return dataclasses.replace(conv, bias=True, params=conv.params + conv.out_ch)


def _fold_block(block: Block, design: BlockDesign, folds: list[Fold]) -> Block:
    local = {x.name: x.name.removeprefix(block.name + ".") for x in block.layers}
    present = set(local.values())
    dropped: set[str] = set()
    biased: set[str] = set()
    for conv, norm in design.folds:
        if conv in present and norm in present:  # the shortcut's exist only where the block projects
            folds.append(Fold(f"{block.name}.{conv}", f"{block.name}.{conv}", f"{block.name}.{norm}"))
            dropped.add(norm)
            biased.add(conv)

    def kept(layers: tuple[AnyLayer, ...]) -> tuple[AnyLayer, ...]:
        return tuple(
            _with_bias(x) if isinstance(x, Conv) and local[x.name] in biased else x
            for x in layers
            if local[x.name] not in dropped
        )

    parts = tuple(
        dataclasses.replace(p, layers=kept(p.layers), design=design.shortcut)
        if isinstance(p, Shortcut) and design.shortcut is not None
        else dataclasses.replace(p, layers=kept(p.layers))
        for p in block.parts
    )
    return dataclasses.replace(block, design=design, parts=parts)


def _fold_chain(
    layers: tuple[AnyLayer, ...], folds: list[Fold], renames: list[tuple[str, str]]
) -> tuple[AnyLayer, ...]:
    """A chain of the stem: a norm right after a conv folds into it; layers of an nn.Sequential are
    renumbered where a norm left it (their module names are positions)."""
    kept: list[tuple[AnyLayer, str | None]] = []  # (layer, the unfused norm folded into it)
    for layer in layers:
        prev = kept[-1][0] if kept else None
        if isinstance(layer, Norm) and isinstance(prev, Conv) and kept[-1][1] is None:
            kept[-1] = (_with_bias(prev), layer.name)
        else:
            kept.append((layer, None))
    out: list[AnyLayer] = []
    position: dict[str, int] = {}
    for layer, norm in kept:
        parent, _, leaf = layer.name.rpartition(".")
        name = layer.name
        if leaf.isdigit():  # a position in an nn.Sequential; a named module keeps its name
            name = f"{parent}.{position.setdefault(parent, 0)}"
            position[parent] += 1
        if norm is not None:
            folds.append(Fold(name, layer.name, norm))
        elif name != layer.name and layer.weighted:
            renames.append((layer.name, name))
        out.append(dataclasses.replace(layer, name=name) if name != layer.name else layer)
    return tuple(out)


def _fold_stem(parts: tuple[StemPart, ...], folds: list[Fold], renames: list[tuple[str, str]]) -> tuple[StemPart, ...]:
    """Each part of the stem folds on its own: a norm never starts a part, and no two parts share a module."""
    return tuple(dataclasses.replace(p, layers=_fold_chain(p.layers, folds, renames)) for p in parts)


def fuse(network: Network) -> Network:
    """The network with its norms folded into the convs before them (the same function in eval mode)."""
    if network.fused:
        return network
    if network.norm.kind != "batch":
        raise OptionError(
            f"--fuse: {network.name} has {network.norm.kind} norm, which normalises each sample by its own "
            "statistics, so no norm folds into a conv: the network is already its own inference form"
        )
    if any(isinstance(x, Conv) and x.std_eps for x in network.layers()):
        raise OptionError(
            f"--fuse: {network.name} has weight-standardised convs, whose kernels are normalised again at every "
            "call, so a norm's scale folded into one would be undone: keep the network unfused"
        )
    folds: list[Fold] = []
    renames: list[tuple[str, str]] = []
    stem = _fold_stem(network.stem_parts, folds, renames)
    stages = []
    for stage in network.stages:
        design = folded_design(stage.design)
        blocks = tuple(_fold_block(b, design, folds) for b in stage.blocks)
        stages.append(dataclasses.replace(stage, design=design, blocks=blocks))
    # A frozen stem module the fold removed (a norm) is gone from the fused network too.
    present = {network.naming.group(x.name) for p in stem for x in p.layers} | {s.name for s in stages}
    freeze = dataclasses.replace(network.freeze, modules=tuple(m for m in network.freeze.modules if m in present))
    return dataclasses.replace(
        network,
        stem_parts=stem,
        stages=tuple(stages),
        fused=True,
        folds=tuple(folds),
        renames=tuple(renames),
        freeze=freeze,
    )
