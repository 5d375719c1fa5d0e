"""``archgen bench``: the figures it reports are consistent with each other and with the IR, each mode
runs what it says (eval forward in eval mode under inference_mode; a training step that moves the
weights), the options reach the model (channels_last, bf16 autocast, Keras' mixed_bfloat16 policy
restored afterwards), and bad options are refused with exit 2 (3 for a missing device), no traceback.

No assertion is about speed: the machine is shared and its timings are noise. ``--compile`` runs an
eval step (inductor's cold compile: 20-25 s for the tiny spec below on 2 cores, measured); the
compiled training steps (PyTorch's and Keras' XLA one) with ``ARCHGEN_EXPENSIVE=1`` only.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from helpers import EXPENSIVE, hide_modules, invoke, run_archgen, spec_path

import archgen
from archgen.runtime import bench
from archgen.runtime.bench import BenchOptions, RssMeter, percentile

pytestmark = [pytest.mark.torch, pytest.mark.keras]

SMALL = ["--batch", "2", "--warmup", "1", "--iters", "3"]
TINY = """\
name: tiny
input: {channels: 3, size: 32}
stem: {type: classic, width: 8, kernel: 3, stride: 1, pool: none}
block: basic
stages:
  - {depth: 1, width: 8}
  - {depth: 1, width: 16}
head: {classes: 10}
"""
FEATURES = "head={type: features, out_indices: [1, 2]}"
FIELDS = {
    "spec",
    "backend",
    "device",
    "device_name",
    "runtime",
    "mode",
    "batch",
    "input_size",
    "input_shape",
    "compute_dtype",
    "amp",
    "channels_last",
    "compile",
    "fuse",
    "warmup",
    "iters",
    "warmup_s",
    "images_per_s",
    "latency_ms",
    "latencies_ms",
    "peak_memory_bytes",
    "peak_memory_kind",
    "macs_per_sample",
    "flops_per_step",
    "tflops",
}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def run_json(args: list[Any]) -> dict[str, Any]:
    """``archgen bench ARGS --json``: stdout holds one JSON object and nothing else."""
    result = invoke(["bench", *args, "--json"])
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def check_figures(data: dict[str, Any], macs: int, *, batch: int, iters: int, train: bool) -> None:
    """The figures agree with each other, with the timed iterations and with the IR's MACs."""
    assert set(data) == FIELDS
    lat = data["latency_ms"]
    times = data["latencies_ms"]
    assert len(times) == iters and all(t > 0 for t in times)
    assert lat["min"] == min(times) and lat["p50"] == pytest.approx(statistics.median(times))
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= max(times)
    assert data["images_per_s"] > 0
    assert data["images_per_s"] == pytest.approx(batch / (lat["p50"] / 1e3))
    assert data["macs_per_sample"] == macs
    # One MAC is 2 FLOPs; a training step counts 3 forward passes.
    step = 2 * macs * batch * (3 if train else 1)
    assert data["flops_per_step"] == step
    assert data["tflops"] == pytest.approx(step / (lat["p50"] / 1e3) / 1e12)
    assert data["mode"] == ("train" if train else "eval") and data["batch"] == batch
    assert data["warmup_s"] >= 0
    assert data["peak_memory_bytes"] > 2**20 and data["peak_memory_kind"]


def test_torch_eval_figures_agree_with_the_ir() -> None:
    network = archgen.compile_spec(spec_path("resnet18"), [], 32)[1]
    # The MACs, anchored outside archgen: torchvision publishes 1.814 G for resnet18 at 224 px; at 32 px
    # every map has 1/7 the side (49x fewer MACs), except the fc layer's 512 * 1000.
    assert round(((network.flops - 512_000) * 49 + 512_000) / 1e9, 3) == 1.814
    data = run_json(["resnet18", "--input-size", 32, *SMALL])
    check_figures(data, network.flops, batch=2, iters=3, train=False)
    assert data["spec"] == "resnet18" and data["backend"] == "torch" and data["device"] == "cpu"
    assert data["input_size"] == [32, 32] and data["input_shape"] == [3, 32, 32]
    assert data["runtime"] == "eager" and data["compute_dtype"] == "float32" and data["amp"] is None
    assert data["channels_last"] is False and data["compile"] is False
    assert "clear_refs" in data["peak_memory_kind"]  # this kernel lets a process reset its peak RSS


def test_torch_train_step_json(tiny: Path) -> None:
    macs = archgen.compile_spec(tiny)[1].flops
    check_figures(run_json([tiny, "--train", *SMALL]), macs, batch=2, iters=3, train=True)


def test_torch_channels_last_and_bf16_json(tiny: Path) -> None:
    macs = archgen.compile_spec(tiny)[1].flops
    data = run_json([tiny, "--channels-last", "--amp", "bf16", "--train", *SMALL])
    check_figures(data, macs, batch=2, iters=3, train=True)
    assert data["channels_last"] is True and data["amp"] == "bf16" and data["compute_dtype"] == "bfloat16"


def test_torch_fused_json(tiny: Path) -> None:
    from archgen.compiler.fuse import fuse

    network = archgen.compile_spec(tiny)[1]
    data = run_json([tiny, "--fuse", *SMALL])
    check_figures(data, fuse(network).flops, batch=2, iters=3, train=False)
    assert data["fuse"] is True and data["channels_last"] is True  # the inference form's layout
    assert fuse(network).flops == network.flops  # the norms' work is not counted as MACs either way


@pytest.mark.parametrize(
    "overrides", [(), ("head.activation=softmax",), (FEATURES,)], ids=["logits", "softmax", "features"]
)
def test_torch_steps_do_what_they_say(tiny: Path, overrides: tuple[str, ...]) -> None:
    import torch
    from archgen.backends.torch.bench import prepare

    network = archgen.compile_spec(tiny, list(overrides))[1]
    runner = prepare(network, BenchOptions(batch=2, train=True))
    model = runner.model
    assert model.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = runner.step()
    assert loss.ndim == 0 and torch.isfinite(loss)
    after = model.state_dict()
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])  # the SGD step moved it
    assert not torch.equal(before["bn1.running_mean"], after["bn1.running_mean"])  # train-mode norms

    runner = prepare(network, BenchOptions(batch=2, channels_last=True, amp="bf16"))
    assert not runner.model.training
    out = runner.step()
    maps = out if isinstance(out, list) else [out]
    assert all(m.is_inference() and m.dtype == torch.bfloat16 for m in maps)
    assert runner.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_keras_eval_and_train_json(tiny: Path) -> None:
    import keras

    macs = archgen.compile_spec(tiny)[1].flops
    data = run_json([tiny, "-b", "keras", *SMALL])
    check_figures(data, macs, batch=2, iters=3, train=False)
    assert data["backend"] == "keras" and data["runtime"].endswith("on tensorflow, tf.function")
    assert data["channels_last"] is True  # Keras' own layout
    data = run_json([tiny, "-b", "keras", "--train", "--amp", "bf16", *SMALL])
    check_figures(data, macs, batch=2, iters=3, train=True)
    assert data["compute_dtype"] == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    data = run_json([tiny, "-b", "keras", "--compile", *SMALL])
    assert data["compile"] is True and data["runtime"].endswith("tf.function + XLA (jit_compile)")


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_keras_steps_do_what_they_say(tiny: Path, train: bool) -> None:
    import keras
    import numpy as np
    from archgen.backends.keras.bench import prepare

    network = archgen.compile_spec(tiny, [FEATURES])[1]  # a features model: its loss is its outputs' mean
    runner = prepare(network, BenchOptions(backend="keras", batch=2, train=train, amp="bf16"))
    try:
        model = runner.model
        assert model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
        assert keras.config.dtype_policy().name == "float32"  # only while building
        weights = {n: [w.copy() for w in model.get_layer(n).get_weights()] for n in ("conv1", "bn1")}
        out = runner.step()
        now = {n: model.get_layer(n).get_weights() for n in weights}
        moved = {n: [not np.array_equal(a, b) for a, b in zip(weights[n], now[n], strict=True)] for n in weights}
        if train:
            assert np.isfinite(out)
            assert moved["conv1"] == [True]  # the SGD step
            assert moved["bn1"][2]  # the moving mean: train mode
        else:
            assert [o.shape for o in out] == [(2, 32, 32, 8), (2, 16, 16, 16)]
            assert not any(moved["conv1"] + moved["bn1"])  # inference: nothing moves
    finally:
        runner.close()


def test_table_output(tiny: Path) -> None:
    result = invoke(["bench", tiny, *SMALL])
    out = result.stdout
    for row in ("images/s", "latency p50", "latency p90", "latency p99", "peak memory", "TFLOP/s", "channels_last"):
        assert row in out
    assert "tiny: torch eval on cpu, batch 2 at 32x32" in out and "peak RSS" in out
    assert result.stderr == ""  # no progress display where stderr is not a terminal


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--device", "cuda"], 3, "--device 'cuda': no CUDA GPU is visible on this machine"),
        (["--device", "gpu"], 2, "--device 'gpu': not a PyTorch device"),
        (["-b", "keras", "--device", "cuda"], 3, "--device 'cuda': Keras (tensorflow backend) sees no GPU"),
        (["-b", "keras", "--channels-last"], 2, "--channels-last applies to the torch backend"),
        (["--amp", "fp16"], 2, "Invalid value for '--amp'"),
        (["--compile", "--warmup", "0"], 2, "--compile with --warmup 0"),
        (["--iters", "0"], 2, "Invalid value for '--iters'"),
        (["--backend", "jax"], 2, "'jax' is not one of 'keras', 'torch'"),
        (["--fuse", "--train"], 2, "--fuse with --train: the fused model is an inference form"),
        (["-b", "keras", "--fuse"], 2, "--fuse: the keras backend has no inference form"),
    ],
)
def test_bad_options_are_refused(tiny: Path, args: list[str], code: int, message: str) -> None:
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke(["bench", tiny, *args], code=code)
    assert message in result.output and "Traceback" not in result.output


def test_a_missing_framework_is_named(tiny: Path, tmp_path: Path) -> None:
    hidden = hide_modules(tmp_path / "hidden", ["torch", "tensorflow", "keras"])
    for backend in ("torch", "keras"):
        result = run_archgen(["bench", tiny, "-b", backend], hidden=hidden)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert f"error: the {backend} backend needs {backend}, which is not installed" in result.stderr


def test_bad_spec_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("block: bottleneck\nstages: 50\nhead: {clases: 10}\n")
    result = invoke(["bench", bad], code=2)
    assert "head.clases: unknown field 'clases'" in result.output and "Traceback" not in result.output


def test_percentile_is_numpys_linear_interpolation() -> None:
    import numpy as np

    values = list(np.random.default_rng(0).exponential(size=17))
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([3.0], 99) == 3.0


def _touched(nbytes: int) -> bytearray:
    """``nbytes`` of memory, every page written (resident)."""
    block = bytearray(nbytes)
    for i in range(0, nbytes, 4096):
        block[i] = 1
    return block


@pytest.mark.parametrize("writable", [True, False], ids=["clear_refs", "sampled"])
def test_rss_meter_measures_the_peak_of_its_span(writable: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    mib = 2**20
    if not writable:
        monkeypatch.setattr(bench, "_CLEAR_REFS", "/proc/self/no_such_file")
    _touched(512 * mib)  # an earlier, higher peak (freed at once), which the meter must not report
    meter = RssMeter()
    meter.start()
    base = (bench._status_kib("VmRSS") or 0) * 1024
    block = _touched(128 * mib)
    # The sampling thread's turn: on a loaded machine it may wait its time slice longer than any fixed
    # sleep (0.2 s missed it under load), so wait until the block is resident for one more sample.
    deadline = time.monotonic() + 10
    while not writable and meter._peak_kib * 1024 < base + 120 * mib and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    del block
    peak, kind = meter.stop()
    assert meter.method == ("clear_refs" if writable else "sampled") and "peak RSS" in kind
    assert peak is not None and base + 120 * mib <= peak < base + 400 * mib


# A cold torch.compile of the tiny net takes 20-25 s here: CI compiles the eval step, ARCHGEN_EXPENSIVE=1 the
# training step too.
@pytest.mark.parametrize(
    "train", [False, True] if EXPENSIVE else [False], ids=["eval", "train"][: 2 if EXPENSIVE else 1]
)
def test_compiled(tiny: Path, train: bool) -> None:
    macs = archgen.compile_spec(tiny)[1].flops
    mode = ["--train"] if train else []
    data = run_json([tiny, "--compile", "--amp", "bf16", "--channels-last", *mode, *SMALL])
    check_figures(data, macs, batch=2, iters=3, train=train)
    assert data["runtime"] == "torch.compile (inductor)" and data["compile"] is True
    data = run_json([tiny, "-b", "keras", "--compile", *mode, *SMALL])
    check_figures(data, macs, batch=2, iters=3, train=train)
