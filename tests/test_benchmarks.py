"""benchmarks/run.py's verdicts on its targets (the measuring itself is the benchmark's, not a test's)."""

from __future__ import annotations

import pytest
from helpers import ROOT, import_file

RUN = import_file(ROOT / "benchmarks" / "run.py", "archgen_benchmarks_run")


def measured(ratio: float, spread: tuple[float, float], ours: float = 1.0) -> object:
    return RUN.Measurement("m", ours=ours, reference=1.0, ratio=ratio, spread=spread)


@pytest.mark.parametrize(
    ("on", "bound", "ratio", "spread", "verdict"),
    [
        ("ratio", 1.0, 0.99, (0.95, 1.02), "met"),
        ("ratio", 1.0, 1.02, (0.96, 1.06), "tie"),  # within 3%, samples on both sides
        ("ratio", 1.0, 1.02, (1.01, 1.06), "not met"),  # within 3%, but every sample misses
        ("ratio", 1.0, 1.07, (0.90, 1.12), "not met"),  # samples on both sides, but 7% off
        ("ratio", 0.5, 0.51, (0.51, 0.51), "not met"),  # one sample
        ("speedup", 1.2, 0.855, (0.80, 0.89), "tie"),  # time ratio 0.855: 1.17x throughput; samples 1.12-1.25x
        ("speedup", 1.2, 0.86, (0.81, 0.96), "not met"),  # 1.163x throughput: 3.1% off
        ("speedup", 1.2, 0.82, (0.82, 0.84), "met"),
    ],
)
def test_a_target_is_met_tied_or_not_met(
    on: str, bound: float, ratio: float, spread: tuple[float, float], verdict: str
) -> None:
    target = RUN.Target("label", bound, on)
    said = target.verdict(measured(ratio, spread))
    assert said.split(" (")[0] == verdict, said


def test_a_time_target_has_no_tie() -> None:
    target = RUN.Target("validate < 0.25 s", 0.25, "seconds")
    assert target.verdict(measured(1.0, (0.9, 1.1), ours=0.251)).startswith("not met (0.251 s")
    assert target.verdict(measured(1.0, (0.9, 1.1), ours=0.249)) == "met"
