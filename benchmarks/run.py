"""Measure archgen's speed, build time and memory against the libraries it reproduces; write docs/performance.md.

    python benchmarks/run.py                    # every section: about 20 minutes on 2 quiet cores
    python benchmarks/run.py --quick            # smoke run: tiny batches and inputs, 1-3 repeats, 1 thread
    python benchmarks/run.py --only build       # sections by name or prefix, repeatable (--only build --only memory)
    python benchmarks/run.py --only runtime-torch --skip-variant "torch.compile"   # rows left out, repeatable
    python benchmarks/run.py --device cuda --out $OUT/performance_gpu.md   # on a GPU (benchmarks/gpu.sh runs it)

Sections, in the order they run (runtime-torch runs before anything imports tensorflow, and each build
section before its runtime section, so that a "cold" build is the first of that spec in the process):

- ``tooling``: ``archgen validate/summary/list/emit --all`` as whole processes, against ``python -c pass``.
- ``memory``: peak RSS of one training step, archgen's resnet50 against torchvision's, each in a fresh
  process (VmHWM); on CUDA, ``torch.cuda.max_memory_allocated`` of a training step, in this process.
- ``build-torch``: spec file to ready model against ``timm.create_model``, and to a model holding a
  checkpoint against create_model + load_state_dict(torch.load(...)).
- ``runtime-torch``: eval forward (inference_mode) and training step (cross-entropy, backward, SGD step)
  against torchvision/timm, in float32, channels_last, bf16 autocast and torch.compile; the fused model
  (``fuse=True``) against the twin in eval.
- ``build-keras``: archgen's Keras models against keras.applications ResNet50 and tf_keras ResNet-RS.
- ``runtime-keras``: a forward (``model(x, training=False)`` in one tf.function) and ``train_on_batch``.

Every figure is a ratio to its reference measured in the same process, the two interleaved (A, B, A, B,
...) so that a slow spell of the machine falls on both: the ratio is the median of the paired ratios
archgen / reference (below 1: archgen is faster or smaller), the spread their minimum and maximum. The
plans (batch, input size, repeats, models) are at the end of the CPU and CUDA constants below and are
printed in the document. oneDNN stays as PyTorch sets it (on): the tests turn it off, users do not.
PyTorch and TensorFlow use their default threads (all cores) unless ``--threads N`` says otherwise;
``--quick`` uses one, since on a shared machine spin-waiting OpenMP threads make small steps 10-100
times slower and the smoke run would take half an hour. torch.compile's rows compile each side with
inductor's caches in a new empty folder, after the process's one-time compile costs are paid.

The results go between ``<!-- results -->`` and ``<!-- /results -->`` of ``--out``; the rest of the file
(the hand-written causes and notes) is kept. With ``--only``, the blocks of the sections not run are kept
as they were, each block saying when and how it was measured. The document is rewritten after every
measurement, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- results -->", "<!-- /results -->"
TARGETS_BEGIN, TARGETS_END = "<!-- targets -->", "<!-- /targets -->"
LR, MOMENTUM = 1e-4, 0.9  # small: random labels over many steps must not blow the weights up
VALIDATE_LIMIT = 0.25  # seconds, the whole `archgen validate` process
T = TypeVar("T")


# -- what is run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """How a PyTorch step runs: layout, precision, compiler (the same for archgen and the twin)."""

    label: str
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False


FP32 = Variant("float32")
CL = Variant("channels_last", channels_last=True)
BF16 = Variant("bf16 autocast", bf16=True)
BF16_CL = Variant("bf16 autocast, channels_last", channels_last=True, bf16=True)
COMPILE = Variant("torch.compile", compile=True)
COMPILE_BF16_CL = Variant("torch.compile, bf16 autocast, channels_last", channels_last=True, bf16=True, compile=True)


@dataclass(frozen=True)
class Case:
    """archgen's ``specs/<spec>.yaml`` against ``twin`` ("torchvision:resnet50", "timm:resnet50d")."""

    spec: str
    twin: str
    variant: Variant = FP32
    modes: tuple[str, ...] = ("eval", "train")
    repeats: int | None = None  # timed samples, where not the plan's (the slowest variants)


@dataclass(frozen=True)
class KerasCase:
    """archgen's Keras model of ``spec`` against ``app`` ("keras:ResNet50", "tf_keras:ResNetRS152")."""

    spec: str
    app: str
    logits: bool  # the output is logits (else probabilities: softmax heads, as keras.applications')
    options: tuple[tuple[str, Any], ...] = ()  # extra arguments of the reference, to match the spec's model


@dataclass(frozen=True)
class Plan:
    name: str
    batch: int
    size: int
    repeats: int  # timed samples of each side
    warmup: int  # untimed steps of each side first (a compiled step gets one more: its compile)
    number: int  # steps per timed sample (many on a GPU, where one step is milliseconds)
    runtime: tuple[Case, ...]
    fused: tuple[Case, ...]  # the fused model (fuse=True, eval) against the unfused twin in eval
    memory: tuple[Case, ...]
    memory_repeats: int
    build: tuple[tuple[str, str, int], ...]  # (spec, timm name, warm builds after the cold one)
    keras_build: tuple[tuple[KerasCase, int], ...]
    keras_runtime: tuple[KerasCase, ...]
    tooling_repeats: int
    sections: tuple[str, ...]  # run by default


SECTIONS = ("tooling", "memory", "build-torch", "runtime-torch", "build-keras", "runtime-keras")
TITLES = {
    "tooling": "Tooling (whole processes)",
    "memory": "Memory (training step)",
    "build-torch": "Build (PyTorch)",
    "runtime-torch": "Runtime (PyTorch)",
    "build-keras": "Build (Keras)",
    "runtime-keras": "Runtime (Keras)",
}

TV50 = ("resnet50", "torchvision:resnet50")
TIMM = [(s, f"timm:{s}") for s in ("resnet50d", "seresnet50", "resnetrs50")]
K50 = KerasCase("keras_resnet50", "keras:ResNet50", logits=False)
KRS50 = KerasCase(
    "resnetrs50",
    "tf_keras:ResNetRS50",
    logits=True,
    options=(("classifier_activation", None), ("include_preprocessing", False)),
)
KRS152 = KerasCase("resnetrs152", "tf_keras:ResNetRS152", logits=False)
KRS420 = KerasCase("resnetrs420", "tf_keras:ResNetRS420", logits=False)

CPU = Plan(
    name="cpu",
    batch=8,
    size=160,
    repeats=5,
    warmup=1,
    number=1,
    runtime=(
        Case(*TV50),
        *(Case(s, t) for s, t in TIMM),
        Case(*TV50, variant=CL),
        # This CPU's bfloat16 is emulated (no AVX-512 BF16), several times slower than float32; a compile
        # takes a minute or two: fewer samples for both.
        Case(*TV50, variant=BF16, repeats=3),
        Case(*TV50, variant=COMPILE, repeats=3),
    ),
    fused=(
        *(Case(s, t, FP32, ("eval",)) for s, t in (TV50, *TIMM)),
        *(Case(s, t, CL, ("eval",)) for s, t in (TV50, TIMM[0])),
    ),
    memory=(Case(*TV50, modes=("train",)),),
    memory_repeats=3,
    build=(("resnet50d", "resnet50d", 3), ("resnetrs152", "resnetrs152", 3), ("resnetrs420", "resnetrs420", 2)),
    keras_build=((K50, 3), (KRS152, 1), (KRS420, 1)),  # tf_keras builds RS-420 in about a minute
    keras_runtime=(K50, KRS50),
    tooling_repeats=11,
    sections=SECTIONS,
)
CPU_QUICK = replace(
    CPU,
    name="cpu, quick",
    batch=2,
    size=64,
    repeats=3,
    # No torch.compile here: its two compiles alone take 1-2 minutes (the CUDA plan's quick form, which
    # benchmarks/gpu.sh rehearses on the CPU, compiles resnet18).
    runtime=(
        Case(*TV50),
        Case("resnetrs50", "timm:resnetrs50", modes=("eval",)),
        Case(*TV50, variant=CL),
        Case(*TV50, variant=BF16, modes=("eval",)),
    ),
    fused=(Case(*TV50, FP32, ("eval",)), Case(*TV50, CL, ("eval",))),
    memory_repeats=1,
    build=(("resnet50d", "resnet50d", 2),),
    keras_build=((K50, 1), (KRS50, 1)),
    keras_runtime=(K50,),
    tooling_repeats=1,
)
_GPU_TWINS = (("resnet50d", "timm:resnet50d"), ("resnetrs152", "timm:resnetrs152"))
CUDA = Plan(
    name="cuda",
    batch=128,
    size=224,
    repeats=5,
    warmup=2,
    number=3,
    runtime=(
        *(Case(s, t, v) for v in (FP32, CL, BF16_CL) for s, t in _GPU_TWINS),
        Case("resnet50d", "timm:resnet50d", COMPILE_BF16_CL),  # run last: its compiles are the slowest part
    ),
    fused=tuple(Case(s, t, v, ("eval",)) for s, t in _GPU_TWINS for v in (FP32, CL, BF16_CL)),
    memory=tuple(Case(s, t, v, ("train",)) for s, t in _GPU_TWINS for v in (FP32, BF16_CL)),
    memory_repeats=1,  # the caching allocator's peak is the same on every run of one step
    build=(),
    keras_build=(),
    keras_runtime=(),
    tooling_repeats=0,
    sections=("memory", "runtime-torch"),  # memory first: it is quick, and a timeout cuts the compiles last
)
# The CUDA plan at CPU sizes: benchmarks/gpu.sh's ARCHGEN_GPU_SH_CPU=1 rehearsal runs its code paths here.
CUDA_QUICK = replace(
    CUDA,
    name="cuda, quick",
    batch=2,
    size=64,
    repeats=2,
    warmup=1,
    number=1,
    runtime=(
        *(Case("resnet50d", "timm:resnet50d", v) for v in (FP32, BF16_CL)),
        Case("resnet18", "torchvision:resnet18", COMPILE_BF16_CL, ("eval",)),
    ),
    fused=(Case("resnet50d", "timm:resnet50d", CL, ("eval",)),),
    memory=(Case("resnet50d", "timm:resnet50d", FP32, ("train",)),),
)
PLANS = {("cpu", False): CPU, ("cpu", True): CPU_QUICK, ("cuda", False): CUDA, ("cuda", True): CUDA_QUICK}


# -- measuring -----------------------------------------------------------------------------------


TIE = 0.03  # a median this close to its bound, with samples on both sides, is reported as a tie


@dataclass(frozen=True)
class Target:
    label: str
    bound: float
    on: str = "ratio"  # ratio (<= bound), speedup (1 / ratio >= bound), seconds (archgen's median < bound)

    def value(self, m: Measurement) -> float:
        return {"ratio": m.ratio, "speedup": 1 / m.ratio, "seconds": m.ours}[self.on]

    def met(self, m: Measurement) -> bool:
        v = self.value(m)
        if self.on == "speedup":
            return v >= self.bound
        if self.on == "seconds":
            return v < self.bound
        return v <= self.bound

    def verdict(self, m: Measurement) -> str:
        """met; a tie where the median misses the bound by under TIE but some paired samples meet it
        (the noise of this machine, not a result); else not met."""
        if self.met(m):
            return "met"
        v = self.value(m)
        if self.on != "seconds" and abs(v - self.bound) <= TIE * self.bound:
            low, high = m.spread if self.on == "ratio" else (1 / m.spread[1], 1 / m.spread[0])
            if low <= self.bound <= high:
                return f"tie ({self.figure(m)}: within {TIE:.0%} and inside the samples' spread)"
        return f"not met ({self.figure(m)})"

    def figure(self, m: Measurement) -> str:
        v = self.value(m)
        return {"ratio": f"{v:.2f}x", "speedup": f"{v:.2f}x throughput", "seconds": f"{v:.3f} s"}[self.on]


@dataclass
class Measurement:
    name: str
    ours: float  # median of archgen's samples (seconds, or bytes where unit is "B")
    reference: float  # median of the reference's samples
    ratio: float  # median of the paired ratios ours / reference
    spread: tuple[float, float]  # min and max of the paired ratios
    reference_name: str = ""
    unit: str = "s"
    samples: int = 0
    note: str = ""
    target: Target | None = None

    @classmethod
    def of(cls, name: str, ours: Sequence[float], reference: Sequence[float], **kw: Any) -> Measurement:
        ratios = [a / b for a, b in zip(ours, reference, strict=True)]
        return cls(
            name,
            statistics.median(ours),
            statistics.median(reference),
            statistics.median(ratios),
            (min(ratios), max(ratios)),
            samples=len(ratios),
            **kw,
        )

    def line(self) -> str:
        return (
            f"{self.name}: archgen {fmt(self.ours, self.unit)}, {self.reference_name} {fmt(self.reference, self.unit)}"
            f" -> {self.ratio:.2f}x ({self.spread[0]:.2f}-{self.spread[1]:.2f}) {self.note}"
        )


@dataclass
class Samples(Generic[T]):
    ours: list[T]
    reference: list[T]
    first: tuple[T, T]  # the first call of each side (a warmup call, or the first sample)


def timer(
    number: int = 1, sync: Callable[[], None] | None = None, before: Callable[[], None] | None = None
) -> Callable[[Callable[[], object]], float]:
    """Seconds per call of ``fn`` over ``number`` calls; ``before`` runs untimed first, ``sync`` waits for
    the device at both ends."""

    def measure(fn: Callable[[], object]) -> float:
        if before is not None:
            before()
        if sync is not None:
            sync()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if sync is not None:
            sync()
        return (time.perf_counter() - start) / number

    return measure


def interleaved(
    fn_a: Callable[[], Any],
    fn_b: Callable[[], Any],
    repeats: int,
    warmup: int,
    *,
    measure: Callable[[Callable[[], Any]], T] | None = None,
    first: Callable[[Callable[[], Any]], T] | None = None,
) -> Samples[T]:
    """``warmup`` calls of each (measured by ``first``, one call each), then ``repeats`` samples of each,
    alternating A, B, A, B, ... ``measure(fn)`` gives a sample: by default the seconds of one call."""
    if measure is None:
        measure = timer()  # type: ignore[assignment]  (T is float then)
    first = first or measure
    warm = [(first(fn_a), first(fn_b)) for _ in range(warmup)]
    ours: list[T] = []
    reference: list[T] = []
    for _ in range(repeats):
        ours.append(measure(fn_a))
        reference.append(measure(fn_b))
    return Samples(ours, reference, warm[0] if warm else (ours[0], reference[0]))


def fmt(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 2**20:,.0f} MiB"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def spec_path(name: str) -> str:
    return str(ROOT / "specs" / f"{name}.yaml")


def collect() -> None:
    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


# -- PyTorch -------------------------------------------------------------------------------------


def build_twin(twin: str) -> Any:
    library, name = twin.split(":")
    if library == "torchvision":
        import torchvision

        return getattr(torchvision.models, name)()
    import timm

    return timm.create_model(name)


def torch_sync(device: Any) -> Callable[[], None] | None:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


def torch_step(model: Any, mode: str, variant: Variant, x: Any, labels: Any) -> Callable[[], object]:
    """One eval forward (inference_mode) or one training step of ``model`` on ``x``, as ``variant`` says."""
    import torch
    from torch import nn

    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train(mode == "train")
    run = torch.compile(model) if variant.compile else model

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if variant.bf16:
            return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    if mode == "eval":

        def forward() -> object:
            with torch.inference_mode(), autocast():
                return run(x)

        return forward
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def train() -> object:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(run(x).float(), labels)
        loss.backward()
        optimizer.step()
        return loss

    return train


def compile_once() -> None:
    """torch.compile's one-time costs of a process (inductor's imports, its compile workers, the C++
    compiler's probe), paid before either side compiles."""
    import torch

    def tiny(t: Any) -> Any:
        return torch.relu(t * 2 + 1)

    with tempfile.TemporaryDirectory() as folder, inductor_cache(folder):
        torch.compile(tiny)(torch.randn(8))


@contextlib.contextmanager
def inductor_cache(folder: str) -> Iterator[None]:
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    with temporary_cache_dir(folder):
        yield


def in_fresh_inductor_cache(
    measure: Callable[[Callable[[], Any]], float],
) -> Callable[[Callable[[], Any]], float]:
    """``measure`` with inductor's caches (FX graphs, kernels) in a new empty folder: each side compiles
    from nothing, neither reusing the other's kernels nor an earlier run's."""

    def fresh(fn: Callable[[], Any]) -> float:
        with tempfile.TemporaryDirectory() as folder, inductor_cache(folder):
            return measure(fn)

    return fresh


def torch_batch(plan: Plan, device: Any) -> tuple[Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn((plan.batch, 3, plan.size, plan.size), generator=generator)
    labels = torch.randint(0, 1000, (plan.batch,), generator=generator)
    return x.to(device), labels.to(device)


def runtime_torch(plan: Plan, device: str) -> Iterator[Measurement | str]:
    import torch

    dev = torch.device(device)
    x, labels = torch_batch(plan, dev)
    eager = [c for c in plan.runtime if not c.variant.compile]
    compiled = [c for c in plan.runtime if c.variant.compile]  # last: the slowest, and cut first by a timeout
    for case in eager:
        for mode in case.modes:
            yield from guarded(
                f"{case.spec} {mode}, {case.variant.label}", torch_pair, plan, dev, case, mode, x, labels
            )
    for case in plan.fused:
        yield from guarded(f"{case.spec} fused", torch_pair, plan, dev, case, "eval", x, labels, fused=True)
    for case in compiled:
        for mode in case.modes:
            yield from guarded(
                f"{case.spec} {mode}, {case.variant.label}", torch_pair, plan, dev, case, mode, x, labels
            )


def torch_pair(
    plan: Plan, dev: Any, case: Case, mode: str, x: Any, labels: Any, fused: bool = False
) -> Iterator[Measurement]:
    import torch

    import archgen

    ours = archgen.build(spec_path(case.spec), input_size=plan.size, fuse=fused).to(dev)
    reference = build_twin(case.twin).to(dev)
    step_a = torch_step(ours, mode, case.variant, x, labels)
    step_b = torch_step(reference, mode, case.variant, x, labels)
    sync = torch_sync(dev)
    warmup = plan.warmup + (1 if case.variant.compile else 0)
    first = timer(1, sync, collect)
    if case.variant.compile:
        compile_once()
        first = in_fresh_inductor_cache(first)
    repeats = case.repeats if case.repeats and case.repeats < plan.repeats else plan.repeats
    s = interleaved(step_a, step_b, repeats, warmup, measure=timer(plan.number, sync), first=first)
    twin = case.twin.split(":")[1]
    what = f"{case.spec} fused (channels_last weights), eval" if fused else f"{case.spec} {mode}"
    rate = f"{plan.batch / statistics.median(s.ours):,.1f} vs {plan.batch / statistics.median(s.reference):,.1f} img/s"
    target = None
    if fused and not case.variant.channels_last and not case.variant.bf16:
        target = Target(f"fused {case.spec} eval >= 1.2x {twin}'s throughput", 1.2, "speedup")
    elif not fused:
        target = Target(f"{case.spec} {mode}, {case.variant.label} <= 1.00x {twin}", 1.0)
    yield Measurement.of(
        f"{what}, {case.variant.label}" + (" (both)" if fused else ""),
        s.ours,
        s.reference,
        reference_name=twin,
        note=rate,
        target=target,
    )
    if case.variant.compile:
        yield Measurement.of(
            f"{case.spec} {mode}, {case.variant.label}: first call (compiling)",
            [s.first[0]],
            [s.first[1]],
            reference_name=twin,
            note="compile time, excluded from the row above",
        )
    del ours, reference, step_a, step_b
    if case.variant.compile:
        torch._dynamo.reset()
    collect()


def build_torch(plan: Plan, device: str) -> Iterator[Measurement | str]:
    import timm
    import torch

    import archgen

    torch.nn.Conv2d(3, 8, 3)  # torch's own first-use costs, paid by neither side below
    for spec, name, warm in plan.build:
        s = interleaved(
            lambda spec=spec: archgen.build(spec_path(spec)),
            lambda name=name: timm.create_model(name),
            1 + warm,
            0,
            measure=timer(before=collect),
        )
        target = Target(f"build {spec} <= 0.5x timm", 0.5)
        cold = replace(target, label=f"build {spec}, first in process <= 0.5x timm")
        yield Measurement.of(f"{spec}: first build in this process", [s.ours[0]], [s.reference[0]], **timm_kw(cold))
        yield Measurement.of(f"{spec}: build (warm, median)", s.ours[1:], s.reference[1:], **timm_kw(target))
    with tempfile.TemporaryDirectory() as folder:
        for spec, name, warm in plan.build:
            ckpt = Path(folder) / f"{name}.pth"
            torch.save(timm.create_model(name).state_dict(), ckpt)

            def reference(name: str = name, ckpt: Path = ckpt) -> Any:
                model = timm.create_model(name)
                model.load_state_dict(torch.load(ckpt, weights_only=True))
                return model

            s = interleaved(
                lambda spec=spec, ckpt=ckpt: archgen.build(spec_path(spec), weights=ckpt),
                reference,
                1 + warm,
                0,
                measure=timer(before=collect),
            )
            target = Target(f"build {spec} with a checkpoint <= 0.5x timm + load_state_dict", 0.5)
            yield Measurement.of(
                f"{spec}: build with a checkpoint ({ckpt.stat().st_size / 2**20:,.0f} MiB)",
                s.ours,
                s.reference,
                reference_name="timm + load_state_dict",
                note="weights=CKPT against create_model + load_state_dict(torch.load(CKPT))",
                target=target,
            )
            ckpt.unlink()


def timm_kw(target: Target) -> dict[str, Any]:
    return {"reference_name": "timm.create_model", "target": target}


# -- memory --------------------------------------------------------------------------------------


def memory(plan: Plan, device: str) -> Iterator[Measurement | str]:
    if device.startswith("cuda"):
        yield from memory_cuda(plan, device)
        return
    for case in plan.memory:
        runs: Samples[dict[str, float]] = interleaved(
            lambda case=case: memory_child_run(plan, "archgen", case.spec),
            lambda case=case: memory_child_run(plan, "twin", case.twin),
            plan.memory_repeats,
            0,
            measure=lambda fn: fn(),
        )
        twin = case.twin.split(":")[1]
        for what, label, note in (
            ("peak", "peak RSS of the process", "VmHWM of a fresh process (imports, build, one step)"),
            ("above", "peak RSS above `import torch`", "VmHWM minus VmRSS after `import torch`"),
        ):
            yield Measurement.of(
                f"{case.spec} train step, {label}",
                [r[what] for r in runs.ours],
                [r[what] for r in runs.reference],
                reference_name=twin,
                unit="B",
                note=note,
            )


def memory_child_run(plan: Plan, kind: str, name: str) -> dict[str, float]:
    """One fresh process building ``name`` and taking one training step; its figures (bytes)."""
    job = {"kind": kind, "name": name, "batch": plan.batch, "size": plan.size}
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child {job} failed:\n{out.stderr[-3000:]}")
    found: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def proc_status(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return float(line.split()[1]) * 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def memory_child(job: dict[str, Any]) -> None:
    """In a fresh process: torch, then the side's own imports, its model, one training step; print the peak
    and the peak above the RSS after ``import torch`` (the side's imports, model, gradients and step)."""
    import torch

    if os.environ.get("ARCHGEN_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["ARCHGEN_BENCH_THREADS"]))

    baseline = proc_status("VmRSS")
    if job["kind"] == "archgen":
        import archgen

        model = archgen.build(spec_path(job["name"]), input_size=job["size"])
    else:
        model = build_twin(job["name"])
    plan = replace(CPU, batch=job["batch"], size=job["size"])
    x, labels = torch_batch(plan, torch.device("cpu"))
    torch_step(model, "train", FP32, x, labels)()
    peak = proc_status("VmHWM")
    print(json.dumps({"peak": peak, "above": peak - baseline, "baseline": baseline}))


def memory_cuda(plan: Plan, device: str) -> Iterator[Measurement | str]:
    import torch

    import archgen

    dev = torch.device(device)
    x, labels = torch_batch(plan, dev)

    def peak(build: Callable[[], Any], variant: Variant) -> float:
        model = build().to(dev)
        step = torch_step(model, "train", variant, x, labels)
        step()  # the optimizer's state exists from the first step on
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        step()
        torch.cuda.synchronize(dev)
        found = float(torch.cuda.max_memory_allocated(dev))
        del model, step
        collect()
        return found

    for case in plan.memory:
        s = interleaved(
            lambda case=case: peak(lambda: archgen.build(spec_path(case.spec), input_size=plan.size), case.variant),
            lambda case=case: peak(lambda: build_twin(case.twin), case.variant),
            plan.memory_repeats,
            0,
            measure=lambda fn: fn(),
        )
        yield Measurement.of(
            f"{case.spec} train step, {case.variant.label}: peak allocated",
            s.ours,
            s.reference,
            reference_name=case.twin.split(":")[1],
            unit="B",
            note="torch.cuda.max_memory_allocated over the second step (weights, grads, momentum, activations)",
        )


# -- Keras ---------------------------------------------------------------------------------------


def keras_libraries(case: KerasCase) -> Any:
    library = case.app.split(":")[0]
    if library == "keras":
        import keras

        return keras
    import tf_keras

    return tf_keras


def build_reference_keras(case: KerasCase, shape: tuple[int, int, int]) -> Any:
    lib = keras_libraries(case)
    return getattr(lib.applications, case.app.split(":")[1])(weights=None, input_shape=shape, **dict(case.options))


def clear_keras() -> None:
    for name in ("keras", "tf_keras"):
        if name in sys.modules:
            sys.modules[name].backend.clear_session()
    gc.collect()


def tensorflow_threads() -> None:
    """--threads for TensorFlow too (before its runtime starts; later it cannot change)."""
    import tensorflow as tf

    if os.environ.get("ARCHGEN_BENCH_THREADS"):
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["ARCHGEN_BENCH_THREADS"]))
            tf.config.threading.set_inter_op_parallelism_threads(1)


def keras_ready() -> str | None:
    """Why the Keras sections cannot run here, or None."""
    for name in ("keras", "tensorflow", "tf_keras"):
        if importlib.util.find_spec(name) is None:
            return f"skipped: {name} is not installed"
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return "skipped: KERAS_BACKEND is not tensorflow (tf_keras and the tf.function steps need it)"
    return None


def build_keras(plan: Plan, device: str) -> Iterator[Measurement | str]:
    tensorflow_threads()
    import keras
    import tf_keras

    import archgen

    # TensorFlow's own first-use costs (its runtime, the first layer of each library), paid by neither side.
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    clear_keras()
    for case, warm in plan.keras_build:
        _, network = archgen.compile_spec(spec_path(case.spec))
        c, h, w = network.input_shape
        s = interleaved(
            lambda case=case: archgen.build(spec_path(case.spec), backend="keras"),
            lambda case=case, shape=(h, w, c): build_reference_keras(case, shape),
            1 + warm,
            0,
            measure=timer(before=clear_keras),
        )
        library, app = case.app.split(":")
        ref = f"{library} {app}"
        bound = 1.0 if library == "keras" else 0.5
        target = Target(f"Keras build {case.spec} <= {bound}x {ref}", bound)
        cold = replace(target, label=f"Keras build {case.spec}, first in process <= {bound}x {ref}")
        yield Measurement.of(
            f"{case.spec}: first build in this process", [s.ours[0]], [s.reference[0]], reference_name=ref, target=cold
        )
        if warm:
            yield Measurement.of(
                f"{case.spec}: build (warm, median)", s.ours[1:], s.reference[1:], reference_name=ref, target=target
            )
        clear_keras()


def runtime_keras(plan: Plan, device: str) -> Iterator[Measurement | str]:
    tensorflow_threads()
    for case in plan.keras_runtime:
        yield from guarded(f"Keras {case.spec}", keras_pair, plan, case)


def keras_step(lib: Any, model: Any, mode: str, x: Any, y: Any, logits: bool) -> Callable[[], object]:
    import tensorflow as tf

    if mode == "forward":
        forward = tf.function(lambda t: model(t, training=False))
        return lambda: forward(x).numpy()
    model.compile(
        optimizer=lib.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM),
        loss=lib.losses.SparseCategoricalCrossentropy(from_logits=logits),
        jit_compile=False,
    )
    return lambda: model.train_on_batch(x, y)


def keras_pair(plan: Plan, case: KerasCase) -> Iterator[Measurement]:
    """Both models built once: the forward first, then the training steps (which change the weights)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import archgen

    rng = np.random.default_rng(0)
    shape = (plan.size, plan.size, 3)
    x = tf.convert_to_tensor(rng.standard_normal((plan.batch, *shape)).astype("float32"))
    y = tf.convert_to_tensor(rng.integers(0, 1000, plan.batch))
    ours = archgen.build(spec_path(case.spec), backend="keras", input_size=plan.size)
    reference = build_reference_keras(case, shape)
    ref = case.app.replace(":", " ")
    for mode in ("forward", "train_on_batch"):
        step_a = keras_step(keras, ours, mode, x, y, case.logits)
        step_b = keras_step(keras_libraries(case), reference, mode, x, y, case.logits)
        s = interleaved(step_a, step_b, plan.repeats, plan.warmup + 1)  # the first call traces
        rate = f"{plan.batch / statistics.median(s.ours):,.1f} vs {plan.batch / statistics.median(s.reference):,.1f}"
        yield Measurement.of(
            f"Keras {case.spec} {mode}",
            s.ours,
            s.reference,
            reference_name=ref,
            note=f"{rate} img/s; first call (tracing) {fmt(s.first[0], 's')} vs {fmt(s.first[1], 's')}",
            target=Target(f"Keras {case.spec} {mode} <= 1.00x {ref}", 1.0),
        )
    del ours, reference
    clear_keras()


# -- tooling -------------------------------------------------------------------------------------


def archgen_command() -> list[str]:
    """The installed console script, or the CLI through this interpreter (a tree used by PYTHONPATH)."""
    script = Path(sys.executable).parent / "archgen"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from archgen.cli import main; sys.exit(main())"]


def process(args: Sequence[str]) -> Callable[[], object]:
    # As installed (pip byte-compiles a package): a module edited since its bytecode was written is compiled
    # again by the warmup run and kept, even where PYTHONDONTWRITEBYTECODE would have it compiled every run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run() -> object:
        done = subprocess.run(
            list(args), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
        return done

    return run


def tooling(plan: Plan, device: str) -> Iterator[Measurement | str]:
    cli = archgen_command()
    python_pass = process([sys.executable, "-c", "pass"])
    commands: list[tuple[str, Callable[[], object]]] = [
        ("archgen validate specs/resnet50.yaml", process([*cli, "validate", "specs/resnet50.yaml"])),
        ("archgen summary specs/resnetrs420.yaml", process([*cli, "summary", "specs/resnetrs420.yaml"])),
        ("archgen list", process([*cli, "list"])),
    ]

    def emit_all() -> object:
        with tempfile.TemporaryDirectory() as out:
            return process([*cli, "emit", "--all", "--out", out])()

    commands.append(("archgen emit --all --out TMPDIR", emit_all))
    for label, run in commands:
        load = os.getloadavg()[0]
        s = interleaved(run, python_pass, plan.tooling_repeats, 1)
        target = None
        if label.startswith("archgen validate"):
            target = Target(f"`{label}` < {VALIDATE_LIMIT} s (whole process)", VALIDATE_LIMIT, "seconds")
        note = f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
        yield Measurement.of(label, s.ours, s.reference, reference_name="python -c pass", target=target, note=note)


# -- running and writing -------------------------------------------------------------------------


RUNNERS: dict[str, Callable[[Plan, str], Iterator[Measurement | str]]] = {
    "tooling": tooling,
    "memory": memory,
    "build-torch": build_torch,
    "runtime-torch": runtime_torch,
    "build-keras": build_keras,
    "runtime-keras": runtime_keras,
}


def guarded(
    label: str, fn: Callable[..., Iterator[Measurement | str]], *args: Any, **kw: Any
) -> Iterator[Measurement | str]:
    """``fn``'s measurements; a failure becomes a note, and the section goes on."""
    try:
        yield from fn(*args, **kw)
    except Exception as exc:  # a failed case is reported in the document, not fatal
        yield f"{label}: failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc) else ''}"
        collect()


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    if os.environ.get("ARCHGEN_COMMIT"):
        return os.environ["ARCHGEN_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (no git repository)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_total() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    return "unknown"


def machine(device: str) -> list[str]:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical cores ({cores} usable), {memory_total()} RAM, "
        f"{platform.system()} {platform.machine()}; load average at the start {os.getloadavg()[0]:.2f}.",
        f"- PyTorch: threads {torch.get_num_threads()}; oneDNN (mkldnn) "
        f"{'on' if torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available() else 'off'}"
        f" (available: {torch.backends.mkldnn.is_available()}, enabled: {torch.backends.mkldnn.enabled}).",
        f"- TensorFlow: intra-op threads {os.environ.get('ARCHGEN_BENCH_THREADS', 'its default (all cores)')}; "
        f"oneDNN: TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset (on)')}.",
    ]
    if device.startswith("cuda"):
        dev = torch.device(device)
        lines.append(
            f"- GPU: {torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}; cudnn.benchmark {torch.backends.cudnn.benchmark}, "
            f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 "
            f"{torch.backends.cuda.matmul.allow_tf32} (PyTorch's defaults, unchanged)."
        )
    names = ("torch", "torchvision", "timm", "numpy", "tensorflow", "keras", "tf_keras", "jax", "pydantic")
    found = ", ".join(f"{n} {version(n)}" for n in names)
    lines.append(f"- Versions: Python {platform.python_version()}, {found}; archgen {git_commit()}.")
    return lines


def plan_text(plan: Plan, key: str, device: str) -> str:
    if key == "runtime-torch":
        return (
            f"Batch {plan.batch}, {plan.size} px, random input; {plan.warmup} warmup step(s) each side (a compiled "
            f"step one more), then {plan.repeats} interleaved samples (the table says where fewer) of "
            f"{plan.number} step(s). Eval: "
            "`torch.inference_mode()`, eval mode. Train: forward, cross-entropy on random labels, backward, SGD "
            "(momentum 0.9) step. Same architecture, independent random weights. bf16: "
            "`torch.autocast(dtype=torch.bfloat16)` around the forward and loss. Fused: `archgen.build(spec, "
            "fuse=True)` (norms folded, channels_last weights) against the unfused twin, both given the input in "
            "the row's layout: the float32 row is the twin as users run it, the channels_last row isolates the "
            "folding."
        )
    if key == "runtime-keras":
        return (
            f"Batch {plan.batch}, {plan.size} px, channels-last random input; forward: `model(x, training=False)` "
            "inside one `tf.function` for both; `train_on_batch` after `compile(SGD, sparse cross-entropy, "
            f"jit_compile=False)`; {plan.warmup + 1} warmup call(s) (the first traces), {plan.repeats} samples. "
            "tf_keras ResNet-RS-50 with `classifier_activation=None, include_preprocessing=False` (archgen's "
            "resnetrs50 ends in logits and has no preprocessing layers)."
        )
    if key == "build-torch":
        return (
            "`archgen.build('specs/<spec>.yaml')` against `timm.create_model(name)` (random init both). archgen "
            "renders and executes each spec's module once per process: the first build of a spec is reported "
            "apart from the warm median (the first one of all also sets up the template renderer; timm's first "
            "create_model has its own first-time costs). With a checkpoint: `archgen.build(spec, weights=CKPT)` "
            "(meta device, no init) against `timm.create_model(name)` + `load_state_dict(torch.load(CKPT))`; CKPT is "
            "a timm state_dict in a temporary folder (warm page cache for both)."
        )
    if key == "build-keras":
        return (
            "`archgen.build(spec, backend='keras')` against `keras.applications.ResNet50(weights=None)` and "
            "`tf_keras.applications.ResNetRS*(weights=None)` at the spec's input size; `clear_session()` before each "
            "build (untimed). The first build of each spec is reported apart; TensorFlow's own first-use costs are "
            "paid before either side is timed."
        )
    if key == "tooling":
        return (
            f"Whole processes (`{' '.join(Path(a).name for a in archgen_command()[:1])} ...`, wall time), one warmup "
            f"then {plan.tooling_repeats} sample(s), interleaved with `python -c pass` (the interpreter's own start); "
            "the figure is the median. Modules are byte-compiled as an installed package's are (the warmup writes "
            "what is stale, PYTHONDONTWRITEBYTECODE aside); the notes give the load average around each row."
        )
    if key == "memory":
        if device.startswith("cuda"):
            return (
                f"Batch {plan.batch}, {plan.size} px, a training step; peak of `torch.cuda.max_memory_allocated` over "
                f"the second step, {plan.memory_repeats} sample(s) each."
            )
        return (
            f"Batch {plan.batch}, {plan.size} px, one training step in a fresh process per sample (archgen's "
            f"imports torch + archgen, the twin's torch + torchvision), {plan.memory_repeats} sample(s) each; "
            "VmHWM of the child."
        )
    return ""


def section_block(key: str, plan: Plan, device: str, items: list[Measurement | str], stamp: str) -> str:
    lines = [
        f"<!-- section:{key} -->",
        f"### {TITLES[key]}",
        "",
        f"Measured {stamp}. {plan_text(plan, key, device)}",
        "",
    ]
    measured = [m for m in items if isinstance(m, Measurement)]
    if measured:
        lines += [
            "| measurement | archgen | reference | ratio (median) | spread (min-max) | samples | notes |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for m in measured:
            lines.append(
                f"| {m.name} | {fmt(m.ours, m.unit)} | {m.reference_name} {fmt(m.reference, m.unit)} | "
                f"{m.ratio:.2f}x | {m.spread[0]:.2f}-{m.spread[1]:.2f} | {m.samples} | {m.note} |"
            )
        lines.append("")
    targets = [m for m in measured if m.target is not None]
    if targets:
        lines += [TARGETS_BEGIN]
        for m in targets:
            assert m.target is not None
            lines.append(f"| {m.target.label} | {m.target.figure(m)} | {m.target.verdict(m)} |")
        lines += [TARGETS_END, ""]
    lines += [f"- {note}" for note in items if isinstance(note, str)]
    if any(isinstance(note, str) for note in items):
        lines.append("")
    lines.append(f"<!-- /section:{key} -->")
    return "\n".join(lines)


def targets_table(blocks: dict[str, str]) -> list[str]:
    rows = []
    for block in blocks.values():
        for inner in re.findall(re.escape(TARGETS_BEGIN) + r"\n(.*?)\n" + re.escape(TARGETS_END), block, re.S):
            rows += inner.splitlines()
    if not rows:
        return []
    return ["#### Targets", "", "| target | figure | |", "| --- | --- | --- |", *rows, ""]


DEFAULT_PREFIX = """# Performance

archgen's models against the libraries they reproduce: runtime (PyTorch and Keras), build time, the command
line's start-up and training memory. Every figure is a ratio to its reference measured in the same process,
the two interleaved; written by `python benchmarks/run.py` (its docstring says how each is measured; the
GPU figures come from `benchmarks/gpu.sh`). Only the part between the results markers is generated.

"""
DEFAULT_SUFFIX = """
## Causes and notes

(Hand-written; `benchmarks/run.py` keeps this part of the file.)
"""


def write_doc(path: Path, header: list[str], fresh: dict[str, str]) -> None:
    """The results between the markers: ``header``, the targets of every block, the blocks (``fresh`` ones
    replacing those of the same section); everything outside the markers is kept."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        prefix, rest = text.split(BEGIN, 1)
        old, suffix = rest.split(END, 1)
    else:
        prefix, old, suffix = (text + "\n" if text else DEFAULT_PREFIX), "", DEFAULT_SUFFIX
    blocks = {key: block for block, key in re.findall(r"(<!-- section:(\S+) -->.*?<!-- /section:\2 -->)", old, re.S)}
    blocks.update(fresh)
    ordered = {k: blocks[k] for k in SECTIONS if k in blocks}
    body = [BEGIN, *header, "", *targets_table(ordered), *(b + "\n" for b in ordered.values()), END]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prefix + "\n".join(body) + suffix, encoding="utf-8")


def selected(only: Sequence[str], plan: Plan) -> list[str]:
    if not only:
        return list(plan.sections)
    chosen = [k for k in SECTIONS if any(k == o or k.startswith(o) for o in only)]
    unknown = [o for o in only if not any(k == o or k.startswith(o) for k in SECTIONS)]
    if unknown:
        raise SystemExit(f"error: --only {unknown[0]!r}: expected one of {', '.join(SECTIONS)} (or a prefix)")
    return chosen


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few repeats")
    parser.add_argument("--only", action="append", default=[], metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (PyTorch sections)")
    parser.add_argument("--plan", choices=["cpu", "cuda"], help="the plan to run (default: the device's)")
    parser.add_argument("--repeats", type=int, help="timed samples per side (default: the plan's)")
    parser.add_argument(
        "--threads", type=int, help="PyTorch and TensorFlow CPU threads (default: theirs, all cores; --quick: 1)"
    )
    parser.add_argument(
        "--skip-variant",
        action="append",
        default=[],
        metavar="NAME",
        help="leave out the runtime rows of a variant (repeatable): 'bf16 autocast', 'torch.compile', ...",
    )
    parser.add_argument("--out", type=Path, default=DOC, help="the document to write (default docs/performance.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.child:
        memory_child(json.loads(args.child))
        return
    # torch, torchvision and timm (which import triton) before anything imports tensorflow: with
    # tensorflow >= 2.20 loaded first, a later triton import kills the process (README).
    import timm  # noqa: F401
    import torch
    import torchvision  # noqa: F401

    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
        os.environ["ARCHGEN_BENCH_THREADS"] = str(threads)  # the memory children and TensorFlow follow
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {device}: PyTorch sees no GPU here")
    plan = PLANS[(args.plan or ("cuda" if device.startswith("cuda") else "cpu"), args.quick)]
    if args.repeats:
        plan = replace(plan, repeats=args.repeats)
    if args.skip_variant:  # the slow variants (emulated bf16, cold compiles) left for another run
        plan = replace(plan, runtime=tuple(c for c in plan.runtime if c.variant.label not in args.skip_variant))
    keys = selected(args.only, plan)
    started = time.time()
    stamp = (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, plan `{plan.name}`"
        f", device `{device}`, archgen {git_commit()}"
    )
    command = "python benchmarks/run.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    header = [
        "## Results",
        "",
        f"Last run: `{command}`, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        *machine(device),
        "",
        "Ratios are archgen / reference (below 1.00x: archgen is faster or smaller): the median of the paired "
        "ratios of interleaved samples, with their min-max."
        + (
            " A --quick run: tiny sizes, one or two samples; its figures check the harness, not the speed."
            if args.quick
            else ""
        ),
    ]
    fresh: dict[str, str] = {}
    for key in keys:
        print(f"== {key}", flush=True)
        items: list[Measurement | str] = []
        skip = keras_ready() if key.endswith("keras") else None
        if skip:
            items.append(skip)
        else:
            for item in guarded(key, RUNNERS[key], plan, device):
                items.append(item)
                print("  " + (item.line() if isinstance(item, Measurement) else item), flush=True)
                fresh[key] = section_block(key, plan, device, items, stamp)
                write_doc(args.out, header, fresh)
        fresh[key] = section_block(key, plan, device, items, stamp)
        write_doc(args.out, header, fresh)
    minutes = (time.time() - started) / 60
    header[2] = header[2].rstrip(".") + f", {minutes:.1f} min; load average at the end {os.getloadavg()[0]:.2f}."
    write_doc(args.out, header, fresh)
    print(f"wrote {args.out} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
