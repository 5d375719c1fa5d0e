"""docs/zoo.md: every model of the reference registries archgen reproduces, or why not yet.

The registries are timm's ``resnet.py`` and ``resnetv2.py`` and torchvision's ResNets, read from the
installed libraries (test dependencies) when this runs, so a model either adds shows up here as
unlisted instead of silently absent. A model is reproduced when ``specs/`` ships a spec of its name,
which tests/test_zoo.py holds to the reference (counts, strict load, equal outputs); the parameters
and FLOPs in the table are the spec's own (archgen's IR, no framework).

    python benchmarks/zoo.py            # rewrite docs/zoo.md
    python benchmarks/zoo.py --check    # exit 1 where docs/zoo.md is stale (as CI checks it)
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "zoo.md"
TIMM_MODULES = ("resnet", "resnetv2")
# torchvision.models' ResNet builders (its resnet.py lists them; listed here to need no torchvision import).
TORCHVISION = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)
# He et al.'s CIFAR-10 ResNets (Deep Residual Learning, 2015, Table 6): no library registers them, so they are
# held to the parameter counts the paper publishes, in millions, as printed there.
CIFAR = {
    "cifar_resnet20": "0.27",
    "cifar_resnet32": "0.46",
    "cifar_resnet44": "0.66",
    "cifar_resnet56": "0.85",
    "cifar_resnet110": "1.7",
    "cifar_resnet1202": "19.4",
}
# Registry entries that are not published architectures.
EXCLUDED = {"test_resnet": "timm's tiny model for its own unit tests, not a published architecture"}
# Models not reproduced yet, by name pattern (first match), with the language feature each needs.
PENDING: dict[str, str] = {
    "*_pruned": "per-block widths (the pruned models' irregular channel counts)",
}


def registry() -> dict[str, list[str]]:
    """Every reference model -> the libraries that register it (timm, torchvision, or both)."""
    import timm

    models: dict[str, list[str]] = {}
    for module in TIMM_MODULES:
        for name in timm.list_models(module=module):
            models.setdefault(name, []).append("timm")
    for name in TORCHVISION:
        models.setdefault(name, []).append("torchvision")
    return dict(sorted(models.items()))


def pending_reason(name: str) -> str | None:
    return next((why for pattern, why in PENDING.items() if fnmatch.fnmatchcase(name, pattern)), None)


def shipped() -> set[str]:
    import archgen

    return set(archgen.list_models())


def render(models: dict[str, list[str]]) -> str:
    import archgen

    specs = shipped()
    rows, done, waiting = [], 0, 0
    for name, libraries in models.items():
        library = ", ".join(libraries)
        if name in EXCLUDED:
            continue
        if name in specs:
            _, network = archgen.compile_spec(name)
            flops = f"{network.flops / 1e9:.2f}"
            rows.append(f"| `{name}` | {library} | {network.params:,} | {flops} | reproduced: `specs/{name}.yaml` |")
            done += 1
        else:
            why = pending_reason(name) or "**unlisted**: neither shipped nor pending (add a spec or a reason)"
            rows.append(f"| `{name}` | {library} | | | not yet: {why} |")
            waiting += 1
    excluded = "; ".join(f"`{n}` ({why})" for n, why in EXCLUDED.items())
    lines = [
        "# The zoo",
        "",
        "Every model of timm's `resnet.py` and `resnetv2.py` registries and of torchvision's ResNets, and",
        "whether archgen reproduces it. A reproduced model has a spec of its name in `specs/`, and",
        "tests/test_zoo.py holds each to its reference: equal parameter and norm-statistic counts and the",
        "same state_dict names and shapes (a strict load), and for each distinct design equal outputs of",
        "a randomised reference at a small input. Parameters and FLOPs (multiply-accumulates at 224 px)",
        "are the spec's own, from archgen's IR.",
        "",
        f"Written by `python benchmarks/zoo.py` (CI checks it is current). {done} reproduced, {waiting} not yet;",
        f"left out: {excluded}.",
        "",
        "| model | library | params | GMACs | status |",
        "| --- | --- | ---: | ---: | --- |",
        *rows,
        "",
        "## He et al.'s CIFAR-10 ResNets",
        "",
        "The networks of *Deep Residual Learning for Image Recognition* (2015), section 4.2 and Table 6, which no",
        "library registers: 32x32 inputs, a 3x3 conv of 16 channels, three stages of basic blocks at 16, 32 and",
        "64 channels, option-A shortcuts (`shortcut: zero_pad`: every second pixel, zero channels appended; no",
        "weights) and a 10-way classifier. Held to the parameter counts the paper prints (tests/test_zoo.py);",
        "GMACs at 32 px.",
        "",
        "| model | params | published | GMACs |",
        "| --- | ---: | ---: | ---: |",
        *cifar_rows(),
        "",
    ]
    return "\n".join(lines)


def cifar_rows() -> list[str]:
    import archgen

    rows = []
    for name, published in CIFAR.items():
        _, network = archgen.compile_spec(name)
        rows.append(f"| `{name}` | {network.params:,} | {published} M | {network.flops / 1e9:.3f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 where docs/zoo.md is stale; write nothing")
    args = parser.parse_args(argv)
    text = render(registry())
    if args.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python benchmarks/zoo.py", file=sys.stderr)
            return 1
        print(f"ok: {DOC.relative_to(ROOT)} is current")
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
