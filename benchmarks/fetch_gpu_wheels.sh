#!/usr/bin/env bash
# Download into .whl/ the wheels that benchmarks/gpu.sh installs on a lent GPU machine (Python 3.12,
# x86-64, no package registry there): the packages archgen's core, its Keras backend and the tests it
# runs there import, minus those the machine's image already holds (torch, torchvision, timm, jax,
# numpy, h5py, ml-dtypes, absl-py, rich, click, jinja2, pyyaml, pytest, pytest-xdist, hypothesis, ...:
# /work/.library/device/KINDS.md). Run it here, from the repository's root, once:
#
#     bash benchmarks/fetch_gpu_wheels.sh
#
# then name .whl in the device call's carry. .whl/ is ignored by git (.gitignore). The versions are the
# development venv's (pydantic 2.14 needs typing-extensions >= 4.16, newer than the image's); ruff
# (11 MiB) is left out: it only formats emitted files, and gpu.sh emits nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
    pydantic==2.14.4
    pydantic-core==2.50.5
    annotated-types==0.8.0
    typing-inspection==0.4.5
    typing-extensions==4.16.0
    keras==3.15.1
    namex==0.1.0
    optree==0.20.0
)

mkdir -p .whl
for wheel in "${WHEELS[@]}"; do
    # The device README's command, verbatim but for NAME==VERSION.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$wheel"
done

# One version of each package: two make the install on the device fail as a whole.
dupes=$(ls .whl/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dupes" ]; then
    echo "error: .whl/ holds several versions of: $dupes (delete the older ones)" >&2
    exit 1
fi
du -ch .whl/*.whl
