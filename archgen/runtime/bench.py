"""Measuring a spec's model (``archgen bench``): images/s, latency percentiles, peak memory and achieved
TFLOP/s of an eval forward pass or a training step on a random batch.

The framework-free part: the options and their checks, the one timing loop both backends run through
(warmup untimed, then every timed iteration between two synchronisations), the statistics, the CPU
memory meter, and the result with its table and JSON. Each backend's side
(``archgen.backends.<backend>.bench``, imported when first needed) builds the model and hands back a
``Runner``: one step, a synchronisation, and a memory meter for its device.

What the figures are:

- latency: wall time of one iteration (one batch), each timed on its own between synchronisations of
  the device; p50/p90/p99 are linearly interpolated percentiles over the timed iterations;
- images/s: the batch over the median latency (the median, not the mean: a shared machine's stalls
  move the mean, not the median);
- TFLOP/s: the IR's FLOPs of one step over the median latency. ``Network.flops`` counts the
  multiply-accumulates (MACs) of every convolution and linear layer of one sample's forward pass
  (torchvision's and timm's "FLOPs", 4.089 G for ResNet-50 at 224 px; norms, activations, pools and
  additions are not counted). A MAC is 2 floating-point operations, so one step is
  ``2 * MACs * batch`` FLOPs in eval mode, and 3 times that for a training step (the backward pass
  counted as twice the forward, the usual convention);
- peak memory: on CUDA the framework's largest allocation total over the timed iterations
  (``torch.cuda.max_memory_allocated`` after a reset of its peak); on the CPU the process's peak
  resident set size (RSS) over the timed iterations: everything the process holds in RAM, the
  framework's own code and buffers, the model, its activations and gradients included.

Frameworks are imported only by the backends' sides.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from rich.markup import escape
from rich.table import Table

from .. import registry
from ..errors import OptionError, memory_guard
from ..ir import Network, Shape, Softmax, shape_text

WARMUP = 3  # untimed iterations before the timed ones (torch.compile and XLA compile in the first)
ITERS = 20
BATCH = 32
AMP = ("bf16",)
TRAIN_FACTOR = 3  # a training step's FLOPs: forward + backward (twice the forward)
FLOPS_PER_MAC = 2
SEED = 0

# One call per phase change and per iteration: (phase, iterations done, iterations in the phase).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BenchOptions:
    """What to measure: the model of a network in one framework, on one device, in one mode."""

    backend: str = "torch"
    device: str | None = None  # cpu, cuda, cuda:N; None: the CPU
    batch: int = BATCH
    train: bool = False  # a training step (forward, loss, backward, SGD step) instead of an eval forward
    channels_last: bool = False  # torch only: model and input in torch.channels_last
    amp: str | None = None  # "bf16": autocast (torch), the mixed_bfloat16 policy (Keras)
    compile: bool = False  # torch.compile (torch), jit_compile=True (Keras)
    fuse: bool = False  # torch only: the inference form (norms folded into convs, channels_last)
    warmup: int = WARMUP
    iters: int = ITERS
    seed: int = SEED

    @property
    def mode(self) -> str:
        return "train" if self.train else "eval"


def check_options(options: BenchOptions) -> None:
    """Raise OptionError for options that cannot go together (before any framework is imported)."""
    if options.batch < 1:
        raise OptionError(f"--batch {options.batch}: expected a batch of 1 or more")
    if options.iters < 1:
        raise OptionError(f"--iters {options.iters}: expected 1 or more timed iterations")
    if options.warmup < 0:
        raise OptionError(f"--warmup {options.warmup}: expected 0 or more warmup iterations")
    if options.amp is not None and options.amp not in AMP:
        raise OptionError(f"--amp {options.amp!r}: expected one of {', '.join(AMP)}")
    if options.compile and options.warmup < 1:
        raise OptionError(
            "--compile with --warmup 0: the compilation would happen in the first timed iteration; "
            "give --warmup 1 or more"
        )
    if options.fuse and options.backend != "torch":
        raise OptionError(f"--fuse: the {options.backend} backend has no inference form; use --backend torch")
    if options.fuse and options.train:
        raise OptionError("--fuse with --train: the fused model is an inference form (its norms are folded)")
    if options.channels_last and options.backend != "torch":
        raise OptionError(
            f"--channels-last applies to the torch backend; {options.backend} models are channels-last "
            "already (their native layout)"
        )


# -- memory -----------------------------------------------------------------------------------------------------


class MemoryMeter(Protocol):
    """Peak memory over the timed iterations: ``start`` before them, ``stop`` after."""

    def start(self) -> None: ...

    def stop(self) -> tuple[int | None, str]:
        """(peak bytes, or None where nothing could be measured; what was measured, in words)."""


_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(key: str) -> int | None:
    """A ``VmHWM``/``VmRSS`` line of /proc/self/status in KiB, or None where there is none."""
    try:
        with open(_STATUS, encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class RssMeter:
    """The process's peak resident set size over a span of time, measured the best way the system allows:

    1. Linux: writing ``5`` to /proc/self/clear_refs resets the high-water mark, and ``VmHWM`` in
       /proc/self/status is then the peak since the reset (exact; kernel 4.0 and later);
    2. where clear_refs cannot be written but /proc/self/status can be read: a thread samples
       ``VmRSS`` every ``interval`` seconds (a peak shorter than that can be missed);
    3. elsewhere: ``getrusage``'s ``ru_maxrss``, the peak since the process started.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.method = ""
        self._peak_kib = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            with open(_CLEAR_REFS, "w", encoding="ascii") as f:
                f.write("5")
            if _status_kib("VmHWM") is not None:
                self.method = "clear_refs"
                return
        except OSError:
            pass
        first = _status_kib("VmRSS")
        if first is not None:
            self.method = "sampled"
            self._peak_kib = first
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="archgen-bench-rss", daemon=True)
            self._thread.start()
            return
        self.method = "rusage"

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = _status_kib("VmRSS")
            if now is not None and now > self._peak_kib:
                self._peak_kib = now

    def stop(self) -> tuple[int | None, str]:
        if self.method == "clear_refs":
            hwm = _status_kib("VmHWM")
            return (None if hwm is None else hwm * 1024), "peak RSS (VmHWM after a reset by /proc/self/clear_refs)"
        if self.method == "sampled":
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            now = _status_kib("VmRSS") or 0
            every = f"{self.interval * 1000:g} ms"
            return max(self._peak_kib, now) * 1024, f"peak RSS (VmRSS sampled every {every})"
        try:
            import resource
            import sys

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except (ImportError, OSError):
            return None, "not measured (no /proc and no getrusage)"
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return peak * scale, "peak RSS since the process started (getrusage)"


# -- the timing loop ----------------------------------------------------------------------------------------------


@dataclass
class Runner:
    """A backend's model, ready to be measured: ``step`` runs one iteration (one batch, launched, maybe
    not finished), ``sync`` waits until the device has finished everything launched."""

    step: Callable[[], Any]
    sync: Callable[[], None]
    memory: MemoryMeter
    device: str  # the device it runs on, as the framework names it: cpu, cuda:0
    device_name: str  # the processor: CPU model or GPU name
    runtime: str  # how the model runs: eager, torch.compile (inductor), tf.function + XLA, ...
    dtype: str  # the compute dtype: float32, or bfloat16 with --amp bf16 (the weights stay float32)
    close: Callable[[], None] = lambda: None  # undo what the backend changed in the process (a global policy)
    model: Any = None  # the framework's model being run (for a look at it; the timing never touches it)
    channels_last: bool = False  # the layout the model runs in (Keras': always channels-last)


@dataclass(frozen=True)
class Measurement:
    latencies: tuple[float, ...]  # seconds, one per timed iteration, in order
    warmup_s: float  # wall time of the warmup iterations (compilation included)
    peak_memory: int | None  # bytes
    memory_kind: str


def measure(runner: Runner, warmup: int, iters: int, progress: Progress | None = None) -> Measurement:
    """Run ``warmup`` untimed iterations (timed together: with --compile this is the compilation), then
    ``iters`` iterations each timed between two synchronisations, with the peak memory over those."""
    tell = progress or (lambda phase, done, total: None)
    tell("warmup", 0, warmup)
    runner.sync()
    begin = time.perf_counter()
    for i in range(warmup):
        runner.step()
        runner.sync()
        tell("warmup", i + 1, warmup)
    warmup_s = time.perf_counter() - begin
    latencies: list[float] = []
    tell("timing", 0, iters)
    runner.memory.start()
    try:
        for i in range(iters):
            runner.sync()
            t0 = time.perf_counter()
            runner.step()
            runner.sync()
            latencies.append(time.perf_counter() - t0)
            tell("timing", i + 1, iters)
    finally:
        peak, kind = runner.memory.stop()
    return Measurement(tuple(latencies), warmup_s, peak, kind)


# -- statistics ----------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linearly interpolated between the closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class BenchResult:
    spec: str
    backend: str
    device: str
    device_name: str
    runtime: str
    batch: int
    input_shape: Shape  # one sample's, channels-first (the IR's)
    dtype: str  # the compute dtype (the weights are float32)
    amp: str | None
    channels_last: bool  # the layout the model ran in: --channels-last (torch); always for Keras
    compile: bool
    fuse: bool
    mode: str  # eval | train
    warmup: int
    iters: int
    warmup_s: float
    latencies: tuple[float, ...] = field(repr=False)
    peak_memory: int | None
    memory_kind: str
    macs_per_sample: int  # the IR's FLOPs: multiply-accumulates of one sample's forward pass

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p90(self) -> float:
        return percentile(self.latencies, 90)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def minimum(self) -> float:
        return min(self.latencies)

    @property
    def images_per_s(self) -> float:
        """The batch over the median latency."""
        return self.batch / self.p50

    @property
    def flops_per_step(self) -> int:
        """2 FLOPs per multiply-accumulate, the batch's samples, and 3x the forward for a training step."""
        return FLOPS_PER_MAC * self.macs_per_sample * self.batch * (TRAIN_FACTOR if self.mode == "train" else 1)

    @property
    def tflops(self) -> float:
        """Achieved TFLOP/s: one step's FLOPs over the median latency."""
        return self.flops_per_step / self.p50 / 1e12

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "backend": self.backend,
            "device": self.device,
            "device_name": self.device_name,
            "runtime": self.runtime,
            "mode": self.mode,
            "batch": self.batch,
            "input_size": [self.input_shape[1], self.input_shape[2]],
            "input_shape": list(self.input_shape),
            "compute_dtype": self.dtype,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "fuse": self.fuse,
            "warmup": self.warmup,
            "iters": self.iters,
            "warmup_s": self.warmup_s,
            "images_per_s": self.images_per_s,
            "latency_ms": {
                "p50": self.p50 * 1e3,
                "p90": self.p90 * 1e3,
                "p99": self.p99 * 1e3,
                "min": self.minimum * 1e3,
            },
            "latencies_ms": [t * 1e3 for t in self.latencies],
            "peak_memory_bytes": self.peak_memory,
            "peak_memory_kind": self.memory_kind,
            "macs_per_sample": self.macs_per_sample,
            "flops_per_step": self.flops_per_step,
            "tflops": self.tflops,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def table(self) -> Table:
        """The setting, then the figures (value, and what it is)."""
        size = f"{self.input_shape[1]}x{self.input_shape[2]}"
        table = Table(
            title=escape(f"{self.spec}: {self.backend} {self.mode} on {self.device}, batch {self.batch} at {size}"),
            title_justify="left",
            show_header=False,
        )
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_column("note", style="dim")
        amp = f"amp {self.amp}, float32 weights" if self.amp else ""
        native = "Keras' native layout"
        warmup = f"{self.warmup} iterations" + (", compilation included" if self.compile else "")
        rows = [
            ("spec", self.spec, ""),
            ("backend", self.backend, self.runtime),
            ("device", self.device, self.device_name),
            ("mode", self.mode, "forward, loss, backward, SGD step" if self.mode == "train" else "forward"),
            ("batch", str(self.batch), ""),
            ("input size", size, shape_text(self.input_shape)),
            ("dtype", self.dtype, amp),
            ("channels_last", "yes" if self.channels_last else "no", native if self.backend == "keras" else ""),
            ("compile", "yes" if self.compile else "no", ""),
            ("fuse", "yes" if self.fuse else "no", "norms folded into the convs" if self.fuse else ""),
            ("warmup", f"{self.warmup_s:.2f} s", warmup),
        ]
        for name, value, note in rows:
            table.add_row(name, escape(value), escape(note))
        table.add_section()
        step = "3x the forward, " if self.mode == "train" else ""
        figures = [
            ("images/s", f"{self.images_per_s:,.1f}", "batch / p50 latency"),
            ("latency p50", f"{self.p50 * 1e3:.2f} ms", f"over {self.iters} timed iterations"),
            ("latency p90", f"{self.p90 * 1e3:.2f} ms", ""),
            ("latency p99", f"{self.p99 * 1e3:.2f} ms", ""),
            ("latency min", f"{self.minimum * 1e3:.2f} ms", ""),
            ("peak memory", memory_text(self.peak_memory), self.memory_kind),
            ("TFLOP/s", f"{self.tflops:.3g}", f"{self.flops_per_step / 1e9:.4g} GFLOP a step ({step}2 per MAC)"),
        ]
        for name, value, note in figures:
            table.add_row(name, value, escape(note), style="bold" if name == "images/s" else None)
        return table


def memory_text(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


# -- running it ---------------------------------------------------------------------------------------------------


def backend_side(backend: str) -> ModuleType:
    """The backend's side (``archgen.backends.<backend>.bench``), imported when first needed."""
    return registry.side(backend, "bench")


@contextlib.contextmanager
def _closing(runner: Runner) -> Iterator[Runner]:
    try:
        yield runner
    finally:
        runner.close()


def bench(network: Network, options: BenchOptions, progress: Progress | None = None) -> BenchResult:
    """Build the network's model in ``options.backend`` (random init), run it on a random batch and
    measure it (OptionError for options that do not go together, RunError for a missing device or
    memory running out)."""
    check_options(options)
    registry.get(options.backend)  # a missing framework is reported before any work
    side = backend_side(options.backend)
    if progress is not None:
        progress("building", 0, 1)
    size = f"{network.input_shape[1]}x{network.input_shape[2]}"
    what = f"running {network.name} ({options.mode}) on a batch of {options.batch} at {size}"
    with memory_guard(what):  # an inner guard (the build) passes its own message through
        with _closing(side.prepare(network, options)) as runner:
            found = measure(runner, options.warmup, options.iters, progress)
    return BenchResult(
        spec=network.name,
        backend=options.backend,
        device=runner.device,
        device_name=runner.device_name,
        runtime=runner.runtime,
        batch=options.batch,
        input_shape=network.input_shape,
        dtype=runner.dtype,
        amp=options.amp,
        channels_last=runner.channels_last,
        compile=options.compile,
        fuse=options.fuse,
        mode=options.mode,
        warmup=options.warmup,
        iters=options.iters,
        warmup_s=found.warmup_s,
        latencies=found.latencies,
        peak_memory=found.peak_memory,
        memory_kind=found.memory_kind,
        macs_per_sample=network.flops,
    )


def softmax_output(network: Network) -> bool:
    """Whether the model ends with a softmax (keras.applications' heads): its outputs are probabilities,
    so the training loss takes them as such instead of as logits."""
    return network.head_part(Softmax) is not None


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), with the number of cores this process may use."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    if not name:
        import platform

        name = platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores" if name else f"{cores} cores"
