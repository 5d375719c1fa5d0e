"""Data-parallel training of a model on two CPU processes (gloo): DistributedDataParallel, with the
SyncBatchNorm conversion, and FSDP2's fully_shard per block. Each test starts two workers as torchrun
does, runs the worker functions below in them, and reads what they saved; a hang fails at TIMEOUT.

The workers are functions of this module, run in fresh interpreters (``python -c`` importing it), so
that they are linted as the tests are; they import no pytest fixture.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

import archgen

pytestmark = pytest.mark.torch

TESTS = Path(__file__).resolve().parent
TIMEOUT = 240  # seconds for a whole launch (two workers start in about 10 s on 2 cores, measured)
WORLD = 2
SPEC = "resnet18"
FIELDS: dict[str, Any] = {"input_size": 32, "head__classes": 10}
STAGES = ("layer1", "layer2", "layer3", "layer4")


# -- launching -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process leading its own process group, its output to ``log`` (a pipe could fill and block it)."""
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def wait_all(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Wait for every process; at TIMEOUT stop them (SIGTERM, which torchrun passes on to its workers,
    then SIGKILL) and fail with what they printed."""
    try:
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, sig)
            try:
                for proc in procs:
                    proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        outputs = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
        pytest.fail(f"no result after {TIMEOUT} s (a hang?)\n{outputs}")
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, f"{proc.args}: exit {proc.returncode}\n{log.read_text(errors='replace')[-6000:]}"


def results(out: Path) -> list[dict[str, Any]]:
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


def launch(worker: str, out: Path) -> list[dict[str, Any]]:
    """Two processes with the environment torchrun gives its workers (MASTER_ADDR, MASTER_PORT, RANK,
    WORLD_SIZE, LOCAL_RANK, ...), each running ``worker(out)``, which saves its results to out/rank<N>.pt."""
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_distributed as t; t.{worker}({str(out)!r})"
    port = free_port()
    procs, logs = [], []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "LOCAL_WORLD_SIZE": str(WORLD),
            "OMP_NUM_THREADS": "1",
        }
        logs.append(out / f"rank{rank}.log")
        procs.append(start([sys.executable, "-c", code], logs[-1], env))
    wait_all(procs, logs)
    return results(out)


def launch_torchrun(worker: str, out: Path) -> list[dict[str, Any]]:
    """The command line of docs/distributed.md: ``torchrun --standalone --nproc-per-node 2 SCRIPT``."""
    script = out / "train.py"
    lines = ["import sys", f"sys.path.insert(0, {str(TESTS)!r})", "import test_distributed", ""]
    script.write_text("\n".join([*lines, f"test_distributed.{worker}({str(out)!r})", ""]))
    log = out / "torchrun.log"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}", str(script)]
    wait_all([start(command, log)], [log])
    return results(out)


def rank_batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each rank its own data (as a DistributedSampler gives it)."""
    gen = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen)


def init() -> int:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=TIMEOUT // 2))
    assert dist.get_world_size() == WORLD
    return dist.get_rank()


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- DistributedDataParallel -----------------------------------------------------------------------------------


def ddp_worker(out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    rank = init()
    try:
        torch.manual_seed(0)  # DDP broadcasts rank 0's weights anyway; the same start makes it visible
        model = archgen.build(SPEC, **FIELDS)
        start = state(model)

        synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(archgen.build(SPEC, **FIELDS))
        sync = {
            "norms": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()),
            "batchnorms": sum(type(m) is torch.nn.BatchNorm2d for m in model.modules()),
            "same_keys": list(synced.state_dict()) == list(start),
        }
        try:  # on the CPU, DDP refuses SyncBatchNorm (it needs CUDA, HPU or XPU tensors)
            DistributedDataParallel(synced)
            sync["ddp_error"] = None
        except ValueError as e:
            sync["ddp_error"] = str(e)
        try:  # and so does SyncBatchNorm's own forward in training mode
            synced.train()(rank_batch(rank, 0)[0])
            sync["forward_error"] = None
        except ValueError as e:
            sync["forward_error"] = str(e)

        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
        losses, batches = [], []
        for step in range(2):
            x, y = rank_batch(rank, step)
            optimizer.zero_grad()
            loss = F.cross_entropy(ddp(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            batches.append(x)
        trained = state(model)
        ddp.eval()
        with torch.no_grad():  # the forward starts by copying rank 0's buffers to every rank
            ddp(batches[-1])
        evaluated = state(model)
        results = {"start": start, "trained": trained, "evaluated": evaluated, "losses": losses, "sync": sync}
        torch.save({**results, "batches": batches}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_trains_two_cpu_processes_to_the_same_weights(tmp_path: Path) -> None:
    ranks = launch_torchrun("ddp_worker", tmp_path)
    zero, one = ranks
    assert not torch.equal(zero["batches"][0], one["batches"][0])  # each rank its own data
    assert all(math.isfinite(loss) for r in ranks for loss in r["losses"])
    norms = [k.removesuffix(".running_mean") for k in zero["start"] if k.endswith(".running_mean")]
    statistics = {f"{n}.{s}" for n in norms for s in ("running_mean", "running_var")}
    for key, start in zero["start"].items():
        assert torch.equal(start, one["start"][key]), key
        if key in statistics:  # BatchNorm2d: each rank's statistics are of its own batches
            assert not torch.equal(zero["trained"][key], one["trained"][key]), key
        else:  # the weights (and step counters) are the same on both ranks, and they have moved
            assert torch.equal(zero["trained"][key], one["trained"][key]), key
        if start.is_floating_point():
            assert not torch.equal(zero["trained"][key], start), key
        # after one more forward through DDP every rank holds rank 0's statistics
        assert torch.equal(zero["evaluated"][key], zero["trained"][key]), key
        assert torch.equal(one["evaluated"][key], zero["trained"][key]), key

    # convert_sync_batchnorm replaces every BatchNorm2d and keeps the checkpoint keys; on the CPU,
    # DDP refuses the converted model
    sync = zero["sync"]
    assert sync["norms"] == sync["batchnorms"] == len(norms) > 0 and sync["same_keys"]
    assert sync["ddp_error"] == "SyncBatchNorm layers only work with GPU modules"
    assert sync["forward_error"] == "SyncBatchNorm expected input tensor to be on GPU or XPU or privateuseone"


# -- FSDP2 -------------------------------------------------------------------------------------------------------


def fsdp_worker(out: str) -> None:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    rank = init()
    try:
        torch.manual_seed(0)  # the same full weights on every rank before each takes its shard
        model = archgen.build(SPEC, **FIELDS)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        for stage in STAGES:
            for block in getattr(model, stage):
                fully_shard(block)
        fully_shard(model)
        params = dict(model.named_parameters())
        assert list(params) == list(start)
        sharding = {
            n: (
                isinstance(p, DTensor)
                and p.placements == (Shard(0),)
                and p.device_mesh.size() == WORLD
                and tuple(p.shape) == tuple(start[n].shape),
                p.to_local().shape[0] if isinstance(p, DTensor) else None,
            )
            for n, p in params.items()
        }
        local = {n: p.to_local().detach().clone() for n, p in params.items()}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = rank_batch(rank, 0)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        full = {n: p.full_tensor().detach().clone() for n, p in model.named_parameters()}
        buffers = {n: b.detach().clone() for n, b in model.named_buffers()}  # not sharded
        results = {"start": start, "sharding": sharding, "local": local, "loss": loss.item(), "full": full}
        results["buffers"] = buffers
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_fsdp2_shards_blocks_over_two_cpu_processes(tmp_path: Path) -> None:
    zero, one = launch("fsdp_worker", tmp_path)
    assert math.isfinite(zero["loss"]) and math.isfinite(one["loss"]) and zero["loss"] != one["loss"]
    for name, start in zero["start"].items():
        assert torch.equal(start, one["start"][name]), name
        # a DTensor of the full shape, sharded on dim 0 over both ranks: each holds its half
        (dtensor0, rows0), (dtensor1, rows1) = zero["sharding"][name], one["sharding"][name]
        assert dtensor0 and dtensor1, name
        assert (rows0, rows1) == (math.ceil(start.shape[0] / 2), start.shape[0] - math.ceil(start.shape[0] / 2)), name
        assert torch.equal(torch.cat([zero["local"][name], one["local"][name]]), start), name
        # after the step the gathered weights are the same on both ranks, and they have moved
        assert torch.equal(zero["full"][name], one["full"][name]), name
        assert not torch.equal(zero["full"][name], start), name
    # the norms' running statistics are plain tensors, each rank's of its own batch
    assert zero["buffers"].keys() == one["buffers"].keys()
    for name, value in zero["buffers"].items():
        assert not isinstance(value, DTensor), name
        assert torch.equal(value, one["buffers"][name]) == name.endswith("num_batches_tracked"), name
