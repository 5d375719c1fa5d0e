"""The PyTorch backend: live models are the emitted source, executed.

Rendering the same templates that ``archgen emit`` writes to disk and running
them in memory means live and emitted models share one implementation of
every layer; there is no per-forward interpretation of the IR.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from archgen import live
from archgen.codegen.emit import render
from archgen.errors import MissingFramework, OptionError, RunError, memory_guard
from archgen.ir import Network, Shape
from archgen.registry import Weights


def check_device(device: str | None) -> torch.device | None:
    """The torch device named by ``device``; a name torch does not know is an OptionError, a device this
    machine lacks (``cuda`` without a GPU, ``cuda:3`` with one) a RunError."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(
            f"--device {device!r}: not a PyTorch device; expected cpu, cuda, cuda:N (or mps, xpu where present)"
        ) from None
    if dev.type == "meta":
        raise OptionError("--device 'meta': a meta model holds no weights and cannot run; expected cpu or cuda")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise RunError(f"--device {device!r}: no CUDA GPU is visible on this machine; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise RunError(f"--device {device!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise RunError(
            f"--device {device!r}: Apple's Metal (MPS) is not available on this machine (it needs macOS on "
            "Apple silicon); use --device cpu"
        )
    elif dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = reason.split(". ")[0]  # PyTorch's first sentence; the rest lists its dispatch keys
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            raise RunError(f"--device {device!r} is not available on this machine ({reason})") from None
    return dev


class TorchBackend:
    name = "torch"
    extra = "torch"  # pip install 'archgen[torch]'
    fuses = True  # build(..., weights=, fuse=): see archgen.build_network
    randomizes = True

    def require(self) -> None:
        """Import what the backend needs beyond torch (imported with this module), or say what to install."""
        try:
            import numpy  # noqa: F401
        except ImportError as exc:
            raise MissingFramework(
                f"the torch backend needs numpy, which is not installed ({exc}): pip install 'archgen[torch]'"
            ) from None

    def module(self, network: Network) -> types.ModuleType:
        """The generated model module for a network (what ``archgen emit`` writes)."""
        name = live.name_for("torch", network.name + ("_fused" if network.fused else ""), network.digest)
        module = live.loaded(name)
        if module is None:  # rendered once per process and network
            module = live.load(render(network, "torch", source=f"{network.name} (live)"), name)
        live.picklable(module.ResNet)
        return module

    def build(
        self,
        network: Network,
        device: str | None = None,
        dtype: str | None = None,
        *,
        weights: Weights | None = None,
        fuse: bool = False,
    ) -> nn.Module:
        """The live model, initialised as the spec says or holding ``weights`` (IR layer -> tensors in
        PyTorch's layout: then nothing is initialised); ``fuse``: its inference form (norms folded
        into the convs, channels_last, eval mode), ``model.archgen_network`` the fused IR."""
        dev = check_device(device)
        with memory_guard(f"building {network.name} ({network.params:,} params) on {dev or 'cpu'}"):
            if fuse:
                model = self._fused(network, weights, dtype)
            else:
                model = self._built(network, weights, dev)
            if dtype:
                model = model.to(getattr(torch, dtype))
            return model.to(dev) if dev else model

    def _built(self, network: Network, weights: Weights | None, dev: torch.device | None) -> nn.Module:
        module = self.module(network)
        if weights is None:
            model = module.build_model(device=dev)
        else:
            model = module.build_model(device="meta")
            model.load_state_dict(state_dict(weights, network), strict=True, assign=True)
            if hasattr(model, "init_non_persistent_buffers"):  # what no checkpoint holds (blur filters)
                model.init_non_persistent_buffers()
        model.archgen_network = network  # lets transfer_weights check and map by IR name
        model.archgen_backend = self.name
        return model

    def _fused(self, network: Network, weights: Weights | None, dtype: str | None) -> nn.Module:
        from archgen.compiler.fuse import fuse

        fused = fuse(network)
        module = self.module(fused)
        model = module.build_model(device="meta")
        source = self._built(network, weights, None)
        if dtype:  # folded in the model's precision, not rounded to float32 first
            source = source.to(getattr(torch, dtype))
        with torch.no_grad():
            model.load_state_dict(module.fold_state_dict(source.state_dict()), strict=True, assign=True)
        if hasattr(model, "init_non_persistent_buffers"):
            model.init_non_persistent_buffers()
        # oneDNN's and cuDNN's convolutions run NHWC natively; the folded model has no norm left to
        # convert back and forth for (docs/performance.md has the figures).
        model = model.to(memory_format=torch.channels_last).eval()
        model.archgen_network = fused
        model.archgen_backend = self.name
        return model

    def model_class(self) -> type:
        return nn.Module  # type: ignore[no-any-return]

    def randomize(
        self, model: nn.Module, network: Network, seed: int = 0, gamma: tuple[float, float] = (0.5, 1.5)
    ) -> None:
        """Every weight random, norm statistics calibrated on two random batches of 8 at the IR's input size."""
        from .randomize import randomize_

        randomize_(model, network.input_shape, seed=seed, batches=2, batch_size=8, gamma=gamma)

    def get_weights(self, model: nn.Module, network: Network) -> dict[str, dict[str, Any]]:
        """Every weighted IR layer's tensors as numpy arrays in PyTorch's layout (the canonical one)."""
        out: dict[str, dict[str, Any]] = {}
        for layer in network.layers():
            if layer.weighted:
                module = model.get_submodule(layer.name)
                out[layer.name] = {
                    k: v.detach().cpu().numpy() for k, v in module.state_dict().items() if k != "num_batches_tracked"
                }
        return out

    def set_weights(self, model: nn.Module, network: Network, weights: dict[str, dict[str, Any]]) -> None:
        with torch.no_grad():
            for name, tensors in weights.items():
                module = model.get_submodule(name)
                for key, value in tensors.items():
                    target = module.get_buffer(key) if key.startswith("running_") else module.get_parameter(key)
                    if tuple(target.shape) != value.shape:
                        raise ValueError(f"{name}.{key}: shape {value.shape} does not fit {tuple(target.shape)}")
                    target.copy_(torch.from_numpy(value).to(target.dtype))

    def counts(self, model: nn.Module) -> tuple[int, int]:
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        stats = sum(
            m.running_mean.numel() + m.running_var.numel()
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        )
        return params, stats

    def outputs(self, model: nn.Module, network: Network, x: Any) -> dict[str, Any]:
        """Eval-mode activations (numpy, channels-first) after the stem, every stage and the head,
        for a channels-first numpy batch ``x``; run in the model's own dtype and device."""
        found: dict[str, Any] = {}
        points = {stage.name: stage.name for stage in network.stages}
        if network.stem:
            points[network.naming.group(network.stem[-1].name)] = "stem"
        hooks = [
            model.get_submodule(name).register_forward_hook(lambda m, i, o, key=key: found.__setitem__(key, o))
            for name, key in points.items()
        ]
        was_training = model.training
        model.eval()
        try:
            ref = next(model.parameters())
            with torch.no_grad():
                out = model(torch.from_numpy(x).to(device=ref.device, dtype=ref.dtype))
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)
        if network.head:
            found["head"] = out
        if isinstance(out, list | tuple):  # a features model's maps (out_indices)
            found.update({f"output.{i}": o for i, o in enumerate(out)})
            out = out[-1]
        found["output"] = out
        return {k: v.detach().cpu().numpy() for k, v in found.items()}

    def trace(self, model: Any, network: Network, device: str | None = None) -> dict[str, Shape]:
        """Shapes after the stem, each stage and the head, on a dummy batch of the IR's input shape."""
        import numpy as np

        with memory_guard(
            f"running {network.name} on a batch of 2 at {network.input_shape[1]}x{network.input_shape[2]}"
        ):  # the batch too: 2 x 4096 x 2048 x 2048 is 128 GiB of float32
            x = np.random.default_rng(0).standard_normal((2, *network.input_shape), dtype=np.float32)
            return {k: tuple(v.shape[1:]) for k, v in self.outputs(model, network, x).items()}


def state_dict(weights: Weights, network: Network) -> dict[str, torch.Tensor]:
    """A torch state_dict of ``weights`` (numpy, PyTorch's layout), with the norms' step counters."""
    from archgen.runtime.weights import flatten

    return tensors(flatten(weights, network))


def tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A flat state_dict of numpy arrays as float32 tensors (the step counters as they are), without
    copies where the arrays are float32 already."""
    import numpy as np

    out = {}
    for key, value in state.items():
        array = np.require(value, requirements=("C", "W"))  # torch.from_numpy wants writable memory
        tensor = torch.from_numpy(array)
        out[key] = tensor if key.endswith("num_batches_tracked") else tensor.to(torch.float32)
    return out


BACKEND = TorchBackend()
