"""``archgen bench``'s PyTorch side: the spec's model (random init), a random batch on the device, and
one step to time: an eval forward under ``torch.inference_mode()``, or a training step (forward,
cross-entropy on random labels, backward, SGD step) in train mode.

``channels_last``: model and input in ``torch.channels_last``; ``amp="bf16"``: the forward (and the
loss) under ``torch.autocast(device_type, dtype=torch.bfloat16)``, the backward outside it, as
PyTorch's AMP recipe has it; ``compile``: ``torch.compile(model)`` (inductor), compiled by the first
warmup iteration. On CUDA every timed iteration runs between two ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from archgen.ir import Network
from archgen.runtime.bench import BenchOptions, RssMeter, Runner, cpu_name, softmax_output

from .backend import BACKEND, check_device

LR = 1e-4  # small: random labels, many steps; the weights must not blow up into inf/NaN timings
MOMENTUM = 0.9


class CudaMeter:
    """The largest total of tensor memory the caching allocator handed out over the timed iterations."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def start(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> tuple[int | None, str]:
        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device)), "torch.cuda.max_memory_allocated"


def loss_of(network: Network, out: Any, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the labels for a classifier; the mean of the output (of every map) for a features model."""
    if network.classes is None:
        outs = list(out) if isinstance(out, list | tuple) else [out]
        return sum((o.float().mean() for o in outs), torch.zeros((), device=labels.device))
    if softmax_output(network):
        return nn.functional.nll_loss(torch.log(out.float().clamp_min(1e-12)), labels)
    return nn.functional.cross_entropy(out.float(), labels)


def prepare(network: Network, options: BenchOptions) -> Runner:
    dev = check_device(options.device) or torch.device("cpu")
    model = BACKEND.build(network, device=str(dev), fuse=options.fuse)  # fused: channels_last already
    generator = torch.Generator().manual_seed(options.seed)
    x = torch.randn((options.batch, *network.input_shape), generator=generator).to(dev)
    labels = torch.randint(0, network.classes or 1, (options.batch,), generator=generator).to(dev)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train(options.train)
    run = torch.compile(model) if options.compile else model

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if options.amp == "bf16":
            cast: contextlib.AbstractContextManager[Any] = torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
            return cast
        return contextlib.nullcontext()

    if options.train:
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        def step() -> Any:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_of(network, run(x), labels)
            loss.backward()
            optimizer.step()
            return loss

    else:

        def step() -> Any:
            with torch.inference_mode(), autocast():
                return run(x)

    if dev.type == "cuda":

        def sync() -> None:
            torch.cuda.synchronize(dev)

        meter: Any = CudaMeter(dev)
        where = f"cuda:{dev.index if dev.index is not None else torch.cuda.current_device()}"
        name = torch.cuda.get_device_name(dev)
    else:

        def sync() -> None:
            if dev.type not in ("cpu", "meta") and hasattr(torch, dev.type):  # mps, xpu: their own synchronize
                getattr(getattr(torch, dev.type), "synchronize", lambda: None)()

        meter = RssMeter()
        where = str(dev)
        threads = torch.get_num_threads()
        name = f"{cpu_name()}, {threads} torch thread{'s' * (threads != 1)}" if dev.type == "cpu" else dev.type
    runtime = "torch.compile (inductor)" if options.compile else "eager"
    if dev.type == "cuda" and options.amp is None and torch.backends.cudnn.allow_tf32:
        runtime += ", float32 convs in TF32 (torch.backends.cudnn.allow_tf32, PyTorch's default)"
    return Runner(
        step=step,
        sync=sync,
        memory=meter,
        device=where,
        device_name=name,
        runtime=runtime,
        dtype="bfloat16" if options.amp == "bf16" else "float32",
        model=model,
        channels_last=options.channels_last or options.fuse,
    )
