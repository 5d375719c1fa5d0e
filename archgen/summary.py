"""Human-readable tables of the IR (rich), and their machine-readable twin."""

from __future__ import annotations

from rich.table import Table

from .ir import Network, Shape


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def flops_text(flops: int) -> str:
    """Multiply-accumulates with a unit that keeps four significant figures: 4.089 G, 12.85 M, 640 (not 0.000 G)."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if flops >= scale:
            return f"{flops / scale:.4g} {unit}"
    return str(flops)


def network_table(network: Network, title: str | None = None) -> Table:
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
