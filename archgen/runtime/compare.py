"""Stage-by-stage comparison of one network in two backends (``archgen compare``).

The reference backend (torch) gets random weights, every one of them, norm
statistics calibrated; they are moved into the other backend with
``transfer_weights``; both run the same random input in eval mode, and the
activations are compared at every stage boundary, so a broken port names the
first stage where the two stop agreeing instead of only a wrong output.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from rich.console import JustifyMethod
from rich.table import Table

from .. import registry
from ..errors import OptionError, memory_guard
from ..ir import Network, Shape, shape_text
from .transfer import transfer_weights

# Relative tolerances (of max(1, the reference's largest magnitude) at each point): float64 agreement
# proves the same function free of rounding; float32 is what a port must hold on every spec.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


@dataclass(frozen=True)
class Point:
    """The two backends' activations at one boundary (stem, a stage, the head, the output)."""

    name: str
    shape: Shape
    max_abs: float  # largest magnitude of the reference's activation
    max_diff: float  # largest absolute difference between the two

    @property
    def relative(self) -> float:
        return self.max_diff / max(1.0, self.max_abs)


@dataclass(frozen=True)
class Comparison:
    network: str
    reference: str
    other: str
    dtype: str
    input_shape: tuple[int, ...]
    points: tuple[Point, ...]
    tolerance: float

    @property
    def worst(self) -> float:
        return max(p.relative for p in self.points)

    @property
    def ok(self) -> bool:
        return self.worst <= self.tolerance

    @property
    def first_divergence(self) -> Point | None:
        """The earliest boundary beyond the tolerance: where a broken port goes wrong."""
        return next((p for p in self.points if not p.relative <= self.tolerance), None)

    def table(self) -> Table:
        title = f"{self.network}: {self.reference} vs {self.other}, {self.dtype}, input {shape_text(self.input_shape)}"
        table = Table(title=title, title_justify="left")
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("point", "left"),
            ("shape", "right"),
            (f"max |{self.reference}|", "right"),
            ("max |diff|", "right"),
            ("relative", "right"),
            ("verdict", "left"),
        )
        for col, justify in columns:
            table.add_column(col, justify=justify)
        first = self.first_divergence
        for p in self.points:
            mark = "ok" if p.relative <= self.tolerance else ("FIRST DIVERGENCE" if p is first else "over")
            table.add_row(
                p.name, shape_text(p.shape), f"{p.max_abs:.4g}", f"{p.max_diff:.3e}", f"{p.relative:.3e}", mark
            )
        return table

    def verdict(self) -> str:
        first = self.first_divergence
        if first is None:
            return f"ok: worst relative difference {self.worst:.3e} (tolerance {self.tolerance:.0e})"
        return (
            f"DIVERGES at {first.name}: relative difference {first.relative:.3e} "
            f"(tolerance {self.tolerance:.0e}); every point before it agrees"
        )

    def to_json(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            "network": self.network,
            "reference": self.reference,
            "other": self.other,
            "dtype": self.dtype,
            "input": list(self.input_shape),
            "tolerance": self.tolerance,
            "worst": self.worst,
            "ok": self.ok,
            "first_divergence": first.name if first else None,
            "points": [
                {"name": p.name, "shape": list(p.shape), "max_abs": p.max_abs, "max_diff": p.max_diff}
                | {"relative": p.relative}
                for p in self.points
            ],
        }

    def text(self) -> str:
        """The table and verdict as plain text (for assertion messages and logs)."""
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(width=120, file=buffer, color_system=None)
        console.print(self.table())
        console.print(self.verdict())
        return buffer.getvalue()


def compare_models(
    network: Network,
    reference: Any,
    other: Any,
    x: Any,
    dtype: str,
    tolerance: float | None = None,
    other_network: Network | None = None,
) -> Comparison:
    """Run channels-first batch ``x`` through two live models of ``network`` and compare every boundary
    (``other_network``: the other model's IR where it differs, as a fused model's does)."""
    import numpy as np

    names = [registry.backend_of(reference), registry.backend_of(other)]
    want = registry.get(names[0]).outputs(reference, network, x)
    got = registry.get(names[1]).outputs(other, other_network or network, x)
    if other_network is not None and other_network.fused:
        names[1] += " (fused)"
    points = []
    boundaries = network.boundaries()
    if "head" in boundaries:  # the head's output is the network's
        del boundaries["output"]
    for name, shape in boundaries.items():
        a, b = np.asarray(want[name], dtype=np.float64), np.asarray(got[name], dtype=np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"{name}: shapes differ, {names[0]} {a.shape} and {names[1]} {b.shape}")
        points.append(Point(name, shape, float(np.abs(a).max()), float(np.abs(a - b).max())))
    return Comparison(
        network.name,
        names[0],
        names[1],
        dtype,
        tuple(x.shape),
        tuple(points),
        TOLERANCE[dtype] if tolerance is None else tolerance,
    )


def compare(
    network: Network,
    other: str = "keras",
    *,
    reference: str = "torch",
    dtype: str = "float32",
    seed: int = 0,
    batch: int = 2,
    gamma: tuple[float, float] = (0.05, 0.15),
    weights: dict[str, dict[str, Any]] | None = None,
    device: str | None = None,
    tolerance: float | None = None,
) -> Comparison:
    """Build ``network`` in both backends, give the reference random (or the given) weights, move
    them across with ``transfer_weights`` and compare the two at every stage boundary.

    ``weights`` are per-layer tensors in PyTorch's layout (as ``port`` reads them from a
    checkpoint); without them every weight is random with norm scales drawn from ``gamma``.
    Small scales keep very deep random nets well-conditioned: with scales near 1 a random
    ResNet-RS-420 differs from itself by 1e-3 between float32 and float64, which would hide
    a port's errors behind rounding.
    """
    import numpy as np

    if dtype not in TOLERANCE:
        raise ValueError(f"dtype must be one of {', '.join(TOLERANCE)}, not {dtype!r}")
    ref_impl, other_impl = registry.get(reference), registry.get(other)
    # Every allocation is inside an out-of-memory guard: the builds in the backends' own, the rest
    # here (the guards do not nest, so a failure is reported once, by what was being done).
    ref_model = ref_impl.build(network, device=device)
    doing = _doing("giving random weights to", network, reference, 8) if weights is None else None
    with memory_guard(doing or _doing("setting the weights of", network, reference)):  # calibrated on batches of 8
        if weights is None:
            try:
                ref_impl.randomize(ref_model, network, seed=seed, gamma=gamma)
            except NotImplementedError:
                raise OptionError(
                    f"the {reference} backend cannot draw random weights; use reference='torch'"
                ) from None
        else:
            ref_impl.set_weights(ref_model, network, weights)
    if dtype != "float32":  # drawn in float32, then the same numbers in the wider type
        with memory_guard(_doing("copying the weights of", network, reference)):
            drawn = ref_impl.get_weights(ref_model, network)
        ref_model = ref_impl.build(network, device=device, dtype=dtype)
        with memory_guard(_doing("copying the weights of", network, reference)):
            ref_impl.set_weights(ref_model, network, drawn)
    other_model = other_impl.build(network, device=device, dtype=dtype)
    with memory_guard(_doing("moving the weights of", network, f"{reference} to {other}")):
        transfer_weights(ref_model, other_model)
    with memory_guard(_doing("running", network, f"{reference} and {other}", batch)):
        x = np.random.default_rng(seed + 1).standard_normal((batch, *network.input_shape)).astype(dtype)
        return compare_models(network, ref_model, other_model, x, dtype, tolerance)


def _doing(what: str, network: Network, where: str, batch: int | None = None) -> str:
    """What was being done, for an out-of-memory message: 'running resnet50 in torch and keras on a
    batch of 2 at 224x224'."""
    size = f"{network.input_shape[1]}x{network.input_shape[2]}"
    return f"{what} {network.name} in {where}" + (f" on a batch of {batch} at {size}" if batch else "")


def compare_fused(
    network: Network,
    *,
    backend: str = "torch",
    dtype: str = "float32",
    seed: int = 0,
    batch: int = 2,
    gamma: tuple[float, float] = (0.05, 0.15),
    weights: dict[str, dict[str, Any]] | None = None,
    device: str | None = None,
    tolerance: float | None = None,
) -> Comparison:
    """The inference form (``build(..., fuse=True)``) against the model it was folded from, at every
    boundary, on random (or the given) weights with calibrated norm statistics: equal but for the
    rounding of the folded weights (float32) or to 1e-9 (float64)."""
    import numpy as np

    if dtype not in TOLERANCE:
        raise ValueError(f"dtype must be one of {', '.join(TOLERANCE)}, not {dtype!r}")
    impl = registry.get(backend)
    if weights is None:
        drawn = impl.build(network, device=device)
        with memory_guard(_doing("giving random weights to", network, backend, 8)):  # calibrated on batches of 8
            impl.randomize(drawn, network, seed=seed, gamma=gamma)
            weights = impl.get_weights(drawn, network)
    model = impl.build(network, device=device, dtype=dtype, weights=weights)
    fused = impl.build(network, device=device, dtype=dtype, weights=weights, fuse=True)
    with memory_guard(_doing("running", network, f"{backend}, unfused and fused,", batch)):
        x = np.random.default_rng(seed + 1).standard_normal((batch, *network.input_shape)).astype(dtype)
        return compare_models(network, model, fused, x, dtype, tolerance, other_network=fused.archgen_network)
