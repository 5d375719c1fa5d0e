"""Human-readable tables of the IR (rich), and their machine-readable twin."""

from __future__ import annotations

from rich.table import Table

from .ir import Network, Shape


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def gflops(flops: int) -> str:
    return f"{flops / 1e9:.3f} G"


def network_table(network: Network, title: str | None = None) -> Table:
    table = Table(title=title or f"{network.name}  (input {shape_text(network.input_shape)})", title_justify="left")
    table.add_column("section")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("norm stats", justify="right")
    table.add_column("FLOPs (MACs)", justify="right")
    for row in network.sections():
        table.add_row(row.name, shape_text(row.out_shape), f"{row.params:,}", f"{row.stats:,}", gflops(row.flops))
    table.add_section()
    table.add_row(
        "total",
        shape_text(network.output_shape),
        f"{network.params:,}",
        f"{network.stats:,}",
        gflops(network.flops),
        style="bold",
    )
    return table
