"""Human-readable tables of the IR (rich), and their machine-readable twin.

``network_table``: one row per section (stem, stages, head). ``layer_rows`` / ``layers_table`` /
``layers_json``: one row per layer, as torchinfo lists a PyTorch model's modules, computed from the
IR alone: every IR layer (its name is the PyTorch module path), plus a row for each residual
addition (no module in PyTorch; Keras' ``<block>_add`` layer) where it happens. The layer rows of a
section sum to that section's row of ``network_table``, and all of them to the network's totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never

from .. import describe
from ..ir import (
    AntiAlias,
    AnyLayer,
    Attention,
    Block,
    ConvUnit,
    Network,
    PostAct,
    Shape,
    Shortcut,
    StochasticDepth,
    shape_text,
)

if TYPE_CHECKING:  # rich is imported by the functions that make tables: the text helpers serve validate too
    from rich.console import Group
    from rich.table import Table

FLOAT32_BYTES = 4


def flops_text(flops: int) -> str:
    """Multiply-accumulates with a unit that keeps four significant figures: 4.089 G, 12.85 M, 640 (not 0.000 G)."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if flops >= scale:
            return f"{flops / scale:.4g} {unit}"
    return str(flops)


def bytes_text(size: int) -> str:
    """A size in binary units with four significant figures: 588 KiB, 97.49 MiB, 1.5 GiB."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.4g} {unit}"
    return f"{size} B"


def network_table(network: Network, title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title or f"{network.name}  (input {shape_text(network.input_shape)})", title_justify="left")
    table.add_column("section")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("norm stats", justify="right")
    table.add_column("FLOPs (MACs)", justify="right")
    for row in network.sections():
        table.add_row(row.name, shape_text(row.out_shape), f"{row.params:,}", f"{row.stats:,}", flops_text(row.flops))
    table.add_section()
    table.add_row(
        "total",
        shape_text(network.output_shape),
        f"{network.params:,}",
        f"{network.stats:,}",
        flops_text(network.flops),
        style="bold",
    )
    return table


# -- one row per layer ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRow:
    """One row of ``summary --layers``.

    ``kind`` is the IR layer's (``conv``, ``norm``, ``act``, ...), or one of two steps that are no
    PyTorch module (``module`` false) and are listed where they happen, with their output shape:
    ``add``, a block's residual addition (Keras' ``<block>_add``), and ``scale``, squeeze-excitation's
    ``x * gate`` (Keras' ``<block>_se_scale``; its output is the SE module's). They count nothing:
    no parameters, no MACs, no activations (as torchinfo counts the outputs of modules only, and as
    the size budget of resolve.py counts the IR's layers). ``activations``: elements of the layer's
    output for one sample.
    """

    name: str
    kind: str
    op: str
    section: str  # stem, layer1, ..., head
    block: str | None  # the block's name (layer1.0) for a stage's rows
    out_shape: Shape
    params: int = 0
    stats: int = 0
    flops: int = 0
    activations: int = 0

    @property
    def module(self) -> bool:
        """Whether the row is a module of the PyTorch model (its name the module path)."""
        return self.kind not in _STEPS

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "module": self.module,
            "op": self.op,
            "section": self.section,
            "block": self.block,
            "output": list(self.out_shape),
            "params": self.params,
            "stats": self.stats,
            "flops": self.flops,
            "activations": self.activations,
        }


@dataclass(frozen=True)
class LayerTotals:
    """The totals of the layer rows, torchinfo's footer from the IR (sizes in float32, one sample)."""

    params: int  # trainable
    stats: int  # norm statistics (running mean + variance): buffers, not trainable
    flops: int  # multiply-accumulates
    activations: int  # elements of every layer's output, summed
    input_elements: int

    @property
    def activation_bytes(self) -> int:
        return self.activations * FLOAT32_BYTES

    @property
    def input_bytes(self) -> int:
        return self.input_elements * FLOAT32_BYTES

    @property
    def param_bytes(self) -> int:
        return self.params * FLOAT32_BYTES

    @property
    def stat_bytes(self) -> int:
        return self.stats * FLOAT32_BYTES

    @property
    def total_bytes(self) -> int:
        """Input + activations + parameters + norm statistics: one sample's forward pass, estimated."""
        return self.input_bytes + self.activation_bytes + self.param_bytes + self.stat_bytes

    def to_json(self) -> dict[str, int]:
        return {
            "params": self.params,
            "stats": self.stats,
            "flops": self.flops,
            "flops_2_per_mac": 2 * self.flops,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "input_elements": self.input_elements,
            "input_bytes": self.input_bytes,
            "param_bytes": self.param_bytes,
            "stat_bytes": self.stat_bytes,
            "total_bytes": self.total_bytes,
        }


_STEPS = ("add", "scale")  # the kinds of the rows that are no module


def _row(layer: AnyLayer, section: str, block: Block | None, op: str) -> LayerRow:
    return LayerRow(
        name=layer.name,
        kind=layer.kind,
        op=op,
        section=section,
        block=None if block is None else block.name,
        out_shape=layer.out_shape,
        params=layer.params,
        stats=layer.stats,
        flops=layer.flops,
        activations=math.prod(layer.out_shape),
    )


def _block_rows(block: Block, section: str) -> list[LayerRow]:
    rows: list[LayerRow] = []
    for part in block.parts:
        match part:
            case Attention():  # the gate scales the residual branch's output, which has the block's shape
                rows += [_row(x, section, block, describe.attention_op(part, x)) for x in part.layers]
                scale = describe.attention_scale(part)
                rows.append(LayerRow(f"{part.module}.scale", "scale", scale, section, block.name, block.out_shape))
            case PostAct():  # the activation after the addition
                rows.append(_add_row(block, section))
                rows += [_row(x, section, block, describe.op_text(x)) for x in part.layers]
            case ConvUnit() | AntiAlias() | StochasticDepth() | Shortcut():
                rows += [_row(x, section, block, describe.op_text(x)) for x in part.layers]
            case _:
                assert_never(part)
    if block.design.residual and block.design.preact:  # a pre-activation block ends with the addition
        rows.append(_add_row(block, section))
    return rows


def _add_row(block: Block, section: str) -> LayerRow:
    return LayerRow(f"{block.name}.add", "add", "add (residual)", section, block.name, block.out_shape)


def layer_rows(network: Network) -> list[LayerRow]:
    """Every layer of the network in forward order, each residual addition where it happens."""
    rows = [_row(x, "stem", None, describe.op_text(x)) for x in network.stem]
    for stage in network.stages:
        for block in stage.blocks:
            rows += _block_rows(block, stage.name)
    rows += [_row(x, "head", None, describe.op_text(x)) for x in network.head]
    return rows


def layer_totals(network: Network, rows: list[LayerRow] | None = None) -> LayerTotals:
    rows = layer_rows(network) if rows is None else rows
    return LayerTotals(
        params=sum(r.params for r in rows),
        stats=sum(r.stats for r in rows),
        flops=sum(r.flops for r in rows),
        activations=sum(r.activations for r in rows),
        input_elements=math.prod(network.input_shape),
    )


def _section_label(network: Network, section: str, rows: list[LayerRow]) -> str:
    stage = next((s for s in network.stages if s.name == section), None)
    if stage is None:
        return f"{len(rows)} layer{'s' if len(rows) != 1 else ''}"
    kind = ("pre-act " if stage.design.preact else "") + stage.design.kind
    return f"{stage.depth} {kind} block{'s' if stage.depth != 1 else ''}"


def layers_table(network: Network, title: str | None = None) -> Table:
    """One row per layer, grouped by section: a bold row with the section's sums heads its layers."""
    from rich import box
    from rich.table import Table

    rows = layer_rows(network)
    table = Table(
        title=title or f"{network.name}  (input {shape_text(network.input_shape)}, one sample)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("layer", no_wrap=True)
    table.add_column("op", no_wrap=True)
    for header in ("output", "params", "FLOPs (MACs)", "activations"):
        table.add_column(header, justify="right", no_wrap=True)
    sections = list(dict.fromkeys(r.section for r in rows))
    for i, section in enumerate(sections):
        members = [r for r in rows if r.section == section]
        if i:
            table.add_section()
        table.add_row(
            section,
            _section_label(network, section, members),
            shape_text(members[-1].out_shape),
            f"{sum(r.params for r in members):,}",
            flops_text(sum(r.flops for r in members)),
            f"{sum(r.activations for r in members):,}",
            style="bold",
        )
        for r in members:
            table.add_row(
                f"  {r.name}",
                r.op,
                shape_text(r.out_shape),
                f"{r.params:,}" if r.params else "-",
                flops_text(r.flops) if r.flops else "-",
                f"{r.activations:,}" if r.activations else "-",
            )
    totals = layer_totals(network, rows)
    table.add_section()
    table.add_row(
        "total",
        f"{sum(r.module for r in rows)} layers",
        shape_text(network.output_shape),
        f"{totals.params:,}",
        flops_text(totals.flops),
        f"{totals.activations:,}",
        style="bold",
    )
    return table


def totals_table(network: Network) -> Table:
    """torchinfo's footer, from the IR: counts and float32 sizes for one sample."""
    from rich.table import Table

    t = layer_totals(network)
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_column(justify="left", style="dim")
    table.add_row("trainable params", f"{t.params:,}", bytes_text(t.param_bytes))
    table.add_row("norm statistics", f"{t.stats:,}", f"{bytes_text(t.stat_bytes)} (buffers, not trainable)")
    table.add_row("FLOPs (MACs)", flops_text(t.flops), f"{flops_text(2 * t.flops)}FLOP at 2 per MAC")
    table.add_row("input", f"{t.input_elements:,}", bytes_text(t.input_bytes))
    table.add_row("activations", f"{t.activations:,}", f"{bytes_text(t.activation_bytes)}: every layer's output")
    table.add_row("estimated total", "", f"{bytes_text(t.total_bytes)}: input + activations + params + statistics")
    return table


def layers_report(network: Network) -> Group:
    """What ``archgen summary --layers`` prints: the layer table, then the totals (float32, one sample)."""
    from rich.console import Group

    return Group(layers_table(network), totals_table(network))


def layers_json(network: Network) -> dict[str, object]:
    """``summary --layers --json``: the section summary, every layer row and the totals."""
    rows = layer_rows(network)
    return {
        **network.to_json(),
        "flops_unit": "MACs",
        "layers": [r.to_json() for r in rows],
        "totals": layer_totals(network, rows).to_json(),
    }
