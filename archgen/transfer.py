"""Moving weights between live models of different backends, by IR name."""

from __future__ import annotations

from typing import Any

from . import registry


def backend_of(model: Any) -> str:
    """The registered backend a live model belongs to (by its framework's base class)."""
    module = type(model).__module__.split(".")[0]
    if module == "keras" or hasattr(model, "get_layer"):
        return "keras"
    if hasattr(model, "state_dict"):
        return "torch"
    raise TypeError(f"not an archgen model of a known backend: {type(model).__name__}")


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
        raise ValueError(
            f"models of different specs: source '{src_net.name}' (sha256 {src_net.digest[:12]}), "
            f"destination '{dst_net.name}' (sha256 {dst_net.digest[:12]})"
        )
    weights = registry.get(backend_of(src)).get_weights(src, src_net)
    registry.get(backend_of(dst)).set_weights(dst, dst_net, weights)
