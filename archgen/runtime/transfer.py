"""Moving weights between live models of different backends, by IR name."""

from __future__ import annotations

from typing import Any

from .. import registry


def spec_differences(a: Any, b: Any, path: str = "", limit: int = 8) -> list[str]:
    """``field: A vs B`` for every leaf where two resolved specs differ (first ``limit``, then a count)."""
    found: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in [*x, *(k for k in y if k not in x)]:
                walk(x.get(key), y.get(key), f"{where}.{key}" if where else str(key))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{where}.{i}")
        elif x != y:
            found.append(f"{where}: {_short(x)} vs {_short(y)}")

    walk(a, b, path)
    if len(found) > limit:
        found = [*found[:limit], f"... and {len(found) - limit} more"]
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def transfer_weights(src: Any, dst: Any) -> None:
    """Copy every weight and normalisation statistic of ``src`` into ``dst``.

    Both must be archgen models compiled from the same resolved spec (any
    backends, either direction); layouts are converted (OIHW/HWIO, dense
    transpose, batch-norm names).
    """
    src_net = getattr(src, "archgen_network", None)
    dst_net = getattr(dst, "archgen_network", None)
    if src_net is None or dst_net is None:
        raise ValueError("transfer_weights needs models built by archgen (archgen.build or a backend's build)")
    if src_net.digest != dst_net.digest:
        diff = "; ".join(spec_differences(src_net.resolved, dst_net.resolved)) or "their resolved specs differ"
        raise ValueError(
            f"models of different specs: source '{src_net.name}' (sha256 {src_net.digest[:12]}), "
            f"destination '{dst_net.name}' (sha256 {dst_net.digest[:12]}): {diff}"
        )
    weights = registry.get(registry.backend_of(src)).get_weights(src, src_net)
    registry.get(registry.backend_of(dst)).set_weights(dst, dst_net, weights)
