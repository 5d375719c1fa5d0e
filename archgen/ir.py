"""The framework-free description of a compiled network.

Every layer carries its PyTorch module path as its name, its input and output
shape (channels-first, for the spec's input size), its trainable parameters,
its normalisation statistics (running mean + variance) and its FLOPs
(multiply-accumulates of convs and linear layers, the convention torchvision
and timm report). Backends read only this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    """One module with no children of its own (conv, norm, act, pool, ...)."""

    name: str
    op: str
    in_shape: Shape
    out_shape: Shape
    attrs: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    stats: int = 0
    flops: int = 0


@dataclass(frozen=True)
class Block:
    """A residual (or plain) block: its wiring kind, its options and its layers."""

    name: str
    kind: str  # basic | bottleneck | plain
    preact: bool
    in_shape: Shape
    out_shape: Shape
    stride: int
    layers: tuple[Layer, ...]
    drop_path: float = 0.0
    zero_init: str | None = None  # local name of the layer zeroed by init.zero_init_last
    config: dict[str, Any] = field(default_factory=dict)  # the block's options, as its stage's

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
    """A run of blocks sharing one ``config``: kind, preact, mid/out channels,
    stride and which block carries it, shortcut, SE, ... (what a code
    generator needs to write the stage as one table row)."""

    name: str
    blocks: tuple[Block, ...]
    in_shape: Shape
    out_shape: Shape
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> tuple[Layer, ...]:
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
class Network:
    name: str
    input_shape: Shape
    stem: tuple[Layer, ...]
    stages: tuple[Stage, ...]
    head: tuple[Layer, ...]
    init: dict[str, Any]
    digest: str  # sha256 of the resolved spec
    options: dict[str, Any] = field(default_factory=dict)  # act, norm, conv_bias, drop_path, head
    description: str = ""
    # The resolved spec as JSON data (what ``digest`` hashes): says what differs between two networks.
    resolved: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def layers(self) -> Iterator[Layer]:
        yield from self.stem
        for stage in self.stages:
            yield from stage.layers
        yield from self.head

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
