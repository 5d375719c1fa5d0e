#!/usr/bin/env bash
# archgen on a lent GPU machine (one NVIDIA H200: Python 3.12 with torch, torchvision, timm and JAX; no
# tensorflow, no pydantic, no keras; no package registry), in under 8 minutes:
#
#   (a) installs the wheels carried in .whl/ (benchmarks/fetch_gpu_wheels.sh downloads them here) into
#       /tmp/site, and makes this checkout importable as archgen without installing it (below);
#   (b) runs the cross-backend tests that need no tensorflow, with Keras on its JAX backend: PyTorch on
#       CUDA against Keras on JAX (on the GPU too) for a set of specs covering every block, shortcut and
#       stem kind (tests/test_keras.py: shapes and counts, then outputs after the weight transfer in
#       float64 and float32), tests/test_keras_backends.py on JAX (its own CPU workers), and PyTorch's
#       own CUDA tests (tests/test_specs.py, tests/test_fuse.py: every test taking `device`, on cuda);
#   (c) runs the runtime and memory benchmark on CUDA (benchmarks/run.py --device cuda: archgen against
#       timm for resnet50d and resnetrs152 at batch 128, 224 px, in float32, channels_last, bf16
#       autocast, the fused model and torch.compile; peak allocated memory of a training step).
#
# Everything it writes lands in $OUT: tests.log, tests_keras_jax.xml, tests_torch_cuda.xml (junit),
# bench.log, performance_gpu.md (the figures, for docs/performance.md) and env.txt.
#
# On the device (the `run` tool, from the repository's root, carry [".whl"]; first, here, once:
# bash benchmarks/fetch_gpu_wheels.sh):
#
#     bash benchmarks/gpu.sh
#
# Rehearsal on a CPU machine: ARCHGEN_GPU_SH_CPU=1 bash benchmarks/gpu.sh runs the same steps with the
# device cpu, two specs and the CUDA plan at tiny sizes (run.py --device cpu --plan cuda --quick), with
# the checkout's .venv/bin/python, OUT=/tmp/archgen-gpu-sh unless set, and the carried wheels checked by
# a pip install for Python 3.12 into a scratch folder instead of used (this machine's Python is 3.11).
#
# How it was tested: only as that rehearsal, on the 2-core CPU development machine (no GPU was lent to
# the task that wrote it): the wheel check, the source-tree links, both pytest runs (on cpu) with the
# keras_float64 plugin under xdist, and run.py's CUDA plan at CPU sizes all ran there. Not run anywhere
# yet: the wheels installed into Python 3.12, JAX on a GPU, the CUDA code of run.py (synchronisation,
# max_memory_allocated), and the 8-minute budget (the timeouts below enforce it: 170 s of tests, then
# 270 s of benchmark, whose document is rewritten after every measurement, so a cut keeps the rest).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
REHEARSAL=${ARCHGEN_GPU_SH_CPU:-0}
TESTS_TIMEOUT=${TESTS_TIMEOUT:-170}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-270}
export PYTHONUNBUFFERED=1
if [ "$REHEARSAL" = 1 ]; then
    OUT=${OUT:-/tmp/archgen-gpu-sh}
    PY=${PYTHON:-$REPO/.venv/bin/python}
    DEV=cpu
    WORKERS=2
    SPECS="resnet18 imagenette_cnn"
    TORCH_K="cpu and (resnet18] or imagenette_cnn])"
    BENCH_ARGS=(--device cpu --plan cuda --quick)
else
    PY=${PYTHON:-python3}
    DEV=cuda
    WORKERS=8
    # every block (basic, bottleneck, pre-activation, plain), shortcut (conv, avg-pool, max-pool), stem
    # (classic, deep, ResNet-RS) and option (SE, groups, conv biases, stride on the 1x1, softmax)
    SPECS="resnet18 resnet50d resnet50v2 seresnet50 resnext50_32x4d resnetrs50 keras_resnet50 imagenette_cnn"
    TORCH_K="cuda"
    BENCH_ARGS=(--device cuda)
fi
mkdir -p "$OUT"
step() { echo "== $* ($(date -u +%H:%M:%S))"; }

step "(a) wheels and the source tree"
SITE=/tmp/site
if [ "$REHEARSAL" = 1 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/archgen-gpu-sh-site \
        --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 .whl/*.whl || exit 1
    SITE=
else
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
fi
# archgen's setup maps archgen.backends to backends/ and archgen.specs to specs/ (an installed or editable
# archgen has them there); without installing, a folder of links gives the same layout: archgen/'s files,
# plus backends and specs inside it. The checkout itself goes on the path too: tests import `backends.torch`.
SRC=/tmp/archgen-src
rm -rf "$SRC" && mkdir -p "$SRC/archgen"
for f in "$REPO"/archgen/*; do ln -s "$f" "$SRC/archgen/"; done
ln -s "$REPO/backends" "$SRC/archgen/backends"
ln -s "$REPO/specs" "$SRC/archgen/specs"
export PYTHONPATH="$SRC:$REPO:$REPO/benchmarks${SITE:+:$SITE}"
# No working folder first on sys.path (python -m, -c and - put it there; xdist's workers are python -c),
# where the checkout's own archgen/, which has no backends/ inside, would shadow the links.
export PYTHONSAFEPATH=1
if [ "$REHEARSAL" = 1 ]; then
    # As on the device, no archgen installed: drop the venv's editable-install finder, which would
    # otherwise find archgen.backends whatever the path says.
    mkdir -p /tmp/archgen-gpu-sh-nofinder
    cat >/tmp/archgen-gpu-sh-nofinder/sitecustomize.py <<'EOF'
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
EOF
    export PYTHONPATH="$PYTHONPATH:/tmp/archgen-gpu-sh-nofinder"
fi
{
    date -u
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    KERAS_BACKEND=jax "$PY" - <<'EOF'
import importlib, importlib.metadata as md, sys
print(sys.version)
for name in ("torch", "torchvision", "timm", "jax", "jaxlib", "keras", "numpy", "pydantic", "pydantic_core",
             "typing_extensions", "optree", "yaml", "jinja2", "click", "rich", "h5py", "ml_dtypes", "pytest",
             "xdist", "hypothesis", "archgen", "archgen.backends.torch", "archgen.backends.keras"):
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', '')} {getattr(module, '__file__', '')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: MISSING ({type(exc).__name__}: {exc})")
import torch
print("cuda:", torch.cuda.is_available(), torch.version.cuda, torch.cuda.device_count())
EOF
} >"$OUT/env.txt" 2>&1
grep -E "MISSING|^cuda" "$OUT/env.txt"

step "(b) tests: Keras on JAX against PyTorch on $DEV"
# JAX: float64 on (the float64 comparisons), no preallocation of 75% of the GPU (PyTorch shares it),
# float32 convolutions in float32, not TF32 (tests/conftest.py turns TF32 off for PyTorch alike), and
# XLA's LLVM optimisation off, which compiles Keras' per-op programs several times faster
# (tests/test_keras_backends.py). benchmarks/keras_float64.py lifts Keras' float64 -> float32 narrowing
# on non-TensorFlow backends, which the float64 bound of tests/test_keras.py (1e-9) was set without.
export KERAS_BACKEND=jax JAX_ENABLE_X64=1 XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_DEFAULT_MATMUL_PRECISION=highest
export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0"
[ "$REHEARSAL" = 1 ] && export JAX_PLATFORMS=cpu
NODES=()
for s in $SPECS; do
    NODES+=("tests/test_keras.py::test_keras_model_matches_ir[$s]")
    NODES+=("tests/test_keras.py::test_same_function_as_torch_in_float64_and_float32[$DEV-$s]")
done
[ "$REHEARSAL" = 1 ] || NODES+=("tests/test_keras_backends.py::test_live_and_emitted_models_agree_with_torch[jax]")
half=$((TESTS_TIMEOUT * 2 / 3))
timeout -s INT -k 15 "$half" "$PY" -m pytest -p no:cacheprovider -p keras_float64 -n "$WORKERS" -q -rfE \
    --junitxml="$OUT/tests_keras_jax.xml" "${NODES[@]}" 2>&1 | tee "$OUT/tests.log"
keras_rc=${PIPESTATUS[0]}
unset KERAS_BACKEND JAX_PLATFORMS

step "(b) tests: PyTorch on $DEV"
timeout -s INT -k 15 "$((TESTS_TIMEOUT - half))" "$PY" -m pytest -p no:cacheprovider -n "$WORKERS" -q -rfE \
    --junitxml="$OUT/tests_torch_cuda.xml" tests/test_specs.py tests/test_fuse.py -k "$TORCH_K" 2>&1 | tee -a "$OUT/tests.log"
torch_rc=${PIPESTATUS[0]}

step "(c) benchmark: python benchmarks/run.py ${BENCH_ARGS[*]}"
timeout -s TERM -k 15 "$BENCH_TIMEOUT" "$PY" benchmarks/run.py "${BENCH_ARGS[@]}" --out "$OUT/performance_gpu.md" 2>&1 \
    | grep --line-buffered -v -E "^(WARNING|I0000|W0000)" | tee "$OUT/bench.log"
bench_rc=${PIPESTATUS[0]}

step "done: tests (Keras on JAX) exit $keras_rc, tests (PyTorch) exit $torch_rc, benchmark exit $bench_rc (124: cut by its timeout)"
ls -l "$OUT"
[ "$keras_rc" = 0 ] && [ "$torch_rc" = 0 ] && [ "$bench_rc" = 0 ]
