"""A live model checked against the IR it was compiled from (``archgen build``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import registry
from ..ir import Network, shape_text


@dataclass(frozen=True)
class Check:
    """One figure of the IR and the same figure measured on the live model."""

    name: str
    ir: int | str
    model: int | str

    @property
    def ok(self) -> bool:
        return self.ir == self.model


@dataclass(frozen=True)
class BuildReport:
    network: Network
    backend: str
    checks: tuple[Check, ...]
    params: int  # measured on the model (trainable parameters)
    stats: int  # measured on the model (normalisation statistics)
    output_shape: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        checks = [{"check": c.name, "ir": c.ir, "model": c.model} for c in self.checks]
        return {**self.network.to_json(), "backend": self.backend, "checks": checks, "ok": self.ok}


def check_build(
    network: Network,
    backend: str = "torch",
    device: str | None = None,
    *,
    weights: str | Path | None = None,
    fuse: bool = False,
) -> tuple[Any, BuildReport]:
    """Build ``network`` in ``backend``, run one dummy batch, and compare the trainable-parameter and
    norm-statistics counts and the shapes after the stem, every stage and the head with the IR's
    (with ``fuse``, the fused IR's: ``archgen.compiler.fuse``)."""
    from .. import build_network

    impl = registry.get(backend)
    model = build_network(network, backend, device=device, weights=weights, fuse=fuse)
    network = model.archgen_network if fuse else network
    params, stats = impl.counts(model)
    shapes = impl.trace(model, network, device=device)
    trainable = Check("trainable params", network.trainable_params, params)
    checks = [trainable, Check("norm statistics", network.stats, stats)]
    checks += [
        Check(f"shape {name}", shape_text(shape), shape_text(shapes.get(name, ())))
        for name, shape in network.boundaries().items()
    ]
    return model, BuildReport(network, backend, tuple(checks), params, stats, tuple(shapes.get("output", ())))
