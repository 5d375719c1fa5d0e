"""The ``archgen`` command line.

Exit codes: 0 success; 1 a built model disagrees with the IR (a bug in a
backend); 2 invalid input (spec, override, option), reported without a
traceback as ``file:line:column: field: message``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from . import __version__, compile_spec, registry
from .errors import SpecError
from .ir import Network
from .summary import gflops, network_table, shape_text

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
SPEC_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


def _spec_error(exc: SpecError) -> NoReturn:
    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(2)


def _compile(path: Path, overrides: tuple[str, ...], input_size: int | None) -> Network:
    try:
        return compile_spec(path, list(overrides), input_size)[1]
    except SpecError as exc:
        _spec_error(exc)


def _console() -> Console:
    return Console(highlight=False, width=max(100, Console().width))


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Override a spec field (repeatable), e.g. --set stages.2.depth=36 --set head.classes=10.",
)
input_option = click.option(
    "--input-size", type=click.IntRange(min=1, max=8192), help="Input resolution (square), instead of the spec's."
)
specs_option = click.option(
    "--specs",
    "spec_dir",
    type=click.Path(file_okay=False, path_type=Path),  # checked where read: emit SPEC -o works anywhere
    default="specs",
    show_default=True,
    help="Folder of specs (for list, and emit --all).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary instead.")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def main() -> None:
    """Compile declarative ResNet-family specs (YAML) into PyTorch and Keras 3 models.

    \b
    archgen validate specs/*.yaml          check specs (no framework imported)
    archgen summary specs/resnet50.yaml    layer table from the IR alone
    archgen build specs/resnetrs152.yaml   compile, instantiate and check a live model
    archgen compare specs/resnet50d.yaml   PyTorch vs Keras, stage by stage
    archgen port r50.pth --spec specs/resnet50.yaml --to keras -o r50.weights.h5
    """


@main.command(context_settings=CONTEXT)
@click.argument("specs", nargs=-1, required=True, type=SPEC_PATH)
def validate(specs: tuple[Path, ...]) -> None:
    """Check SPECS: YAML, fields, shapes (no framework is imported). Exit 2 if any is invalid."""
    failed = False
    for path in specs:
        try:
            _, network = compile_spec(path)
        except SpecError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            continue
        click.echo(f"ok: {path} ({network.name}, {network.params:,} params)")
    if failed:
        sys.exit(2)


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=SPEC_PATH)
@set_option
@input_option
@json_option
def summary(spec: Path, overrides: tuple[str, ...], input_size: int | None, as_json: bool) -> None:
    """Print the per-section table of SPEC (shapes, params, FLOPs) from the IR alone."""
    network = _compile(spec, overrides, input_size)
    if as_json:
        click.echo(json.dumps(network.to_json(), indent=2))
    else:
        _console().print(network_table(network))


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=SPEC_PATH)
@click.option(
    "--backend",
    "-b",
    type=click.Choice(registry.names()),
    default="torch",
    show_default=True,
    help="Framework to build the live model in.",
)
@click.option("--device", default=None, help="Device to build and run on (e.g. cpu, cuda). Default: the backend's.")
@set_option
@input_option
@json_option
def build(
    spec: Path, backend: str, device: str | None, overrides: tuple[str, ...], input_size: int | None, as_json: bool
) -> None:
    """Compile SPEC, instantiate the model, run one dummy forward pass and check it against the IR.

    The output shape, the shapes after the stem and every stage, and the
    trainable-parameter and normalisation-statistics counts must equal the
    IR's; a mismatch exits 1.
    """
    network = _compile(spec, overrides, input_size)
    impl = _backend_or_exit(backend)
    model = impl.build(network, device=device)
    params, stats = impl.counts(model)
    shapes = impl.trace(model, network, device=device)
    expected = network.boundaries()
    checks: list[dict[str, Any]] = [
        {"check": "trainable params", "ir": network.params, "model": params},
        {"check": "norm statistics", "ir": network.stats, "model": stats},
    ]
    checks += [
        {"check": f"shape {name}", "ir": shape_text(expected[name]), "model": shape_text(shapes.get(name, ()))}
        for name in expected
    ]
    ok = all(c["ir"] == c["model"] for c in checks)
    if as_json:
        click.echo(json.dumps({**network.to_json(), "backend": backend, "checks": checks, "ok": ok}, indent=2))
    else:
        console = _console()
        console.print(network_table(network, f"{network.name} [{backend}]  (input {shape_text(network.input_shape)})"))
        for c in checks:
            if c["ir"] != c["model"]:
                console.print(f"MISMATCH {c['check']}: IR {c['ir']}, model {c['model']}", style="bold red")
        if ok:
            console.print(
                f"ok: {backend} model matches the IR ({params:,} params, {stats:,} norm statistics, "
                f"output {shape_text(shapes['output'])})"
            )
    if not ok:
        sys.exit(1)


def _backend_or_exit(name: str) -> Any:
    try:
        return registry.get(name)
    except ImportError as exc:
        raise click.ClickException(
            f"the {name} backend needs {exc.name or 'its framework'}: pip install 'archgen[{name}]'"
        ) from None


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=SPEC_PATH)
@click.option(
    "--backend",
    "-b",
    "other",
    type=click.Choice([n for n in registry.names() if n != "torch"]),
    default="keras",
    show_default=True,
    help="Backend to compare with PyTorch.",
)
@click.option(
    "--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True, help="Precision."
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PyTorch checkpoint (.pth/.pt/.bin/.safetensors) to compare with, instead of random weights.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights and input.")
@click.option("--batch", type=click.IntRange(1, 256), default=2, show_default=True, help="Batch size of the input.")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    help="Largest relative difference accepted (default: 1e-4 in float32, 1e-9 in float64).",
)
@click.option("--device", default=None, help="Device for the PyTorch model (e.g. cuda).")
@set_option
@input_option
@json_option
def compare(
    spec: Path,
    other: str,
    dtype: str,
    weights: Path | None,
    seed: int,
    batch: int,
    tolerance: float | None,
    device: str | None,
    overrides: tuple[str, ...],
    input_size: int | None,
    as_json: bool,
) -> None:
    """Build SPEC in PyTorch and another backend, move the weights across, run one input through
    both and print the largest difference after the stem, every stage and the head.

    Weights are random (every one, norm statistics calibrated) unless --weights names a
    checkpoint. Differences are relative to max(1, the largest PyTorch value at that point);
    the first point beyond the tolerance is named, and the command then exits 1.

    \b
    archgen compare specs/resnet50d.yaml --input-size 64
    archgen compare specs/resnetrs152.yaml --dtype float64 --weights rs152.safetensors
    """
    from .compare import compare as run_compare
    from .port import check_state, read_torch_checkpoint

    network = _compile(spec, overrides, input_size)
    for name in ("torch", other):
        _backend_or_exit(name)
    try:
        given = check_state(read_torch_checkpoint(weights), network, weights) if weights else None
    except SpecError as exc:
        _spec_error(exc)
    result = run_compare(
        network, other, dtype=dtype, seed=seed, batch=batch, weights=given, device=device, tolerance=tolerance
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        console = _console()
        console.print(result.table())
        console.print(result.verdict(), style=None if result.ok else "bold red")
    if not result.ok:
        sys.exit(1)


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--spec", "spec", required=True, type=SPEC_PATH, help="The spec the weights belong to.")
@click.option("--to", "target", required=True, type=click.Choice(["keras", "torch"]), help="Framework to port to.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write: NAME.weights.h5 (--to keras); NAME.pth, .pt, .bin or .safetensors (--to torch).",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Before the output appears, read it back and compare both models stage by stage on a random batch.",
)
@set_option
def port(checkpoint: Path, spec: Path, target: str, output: Path, verify: bool, overrides: tuple[str, ...]) -> None:
    """Port CHECKPOINT of SPEC's model from one framework to the other.

    \b
    --to keras: CHECKPOINT is a PyTorch state_dict (torchvision/timm style; .pth, .pt,
                .bin or .safetensors; a 'state_dict'/'model' wrapper and a 'module.'
                prefix are accepted); OUT is a Keras weights file for the spec's Keras
                model (model.load_weights(OUT)).
    --to torch: CHECKPOINT is such a Keras weights file; OUT a PyTorch state_dict.

    Every tensor's name and shape is checked against the spec first: a missing,
    unexpected or misshapen one is named (exit 2) and nothing is written. The
    output is written beside its final name and renamed when complete (and verified).

    \b
    archgen port resnet50.pth --spec specs/resnet50.yaml --to keras -o resnet50.weights.h5
    archgen port resnet50.weights.h5 --spec specs/resnet50.yaml --to torch -o back.safetensors
    """
    from rich.progress import track

    from . import port as porting

    sources = porting.TORCH_SUFFIXES if target == "keras" else (porting.KERAS_SUFFIX,)
    outputs = (porting.KERAS_SUFFIX,) if target == "keras" else porting.TORCH_SUFFIXES
    out_hint = "'-o' / '--output'"
    problem = None
    if not checkpoint.name.endswith(sources):
        problem = f"--to {target} reads a {' / '.join(sources)} file, not '{checkpoint.name}'", "'CHECKPOINT'"
    elif not output.name.endswith(outputs):
        problem = f"--to {target}: the output must end with {' / '.join(outputs)}, not '{output.name}'", out_hint
    elif output.resolve() == checkpoint.resolve():
        problem = "the output would overwrite the checkpoint", out_hint
    elif not output.parent.is_dir():
        problem = f"the output's folder '{output.parent}' does not exist", out_hint
    if problem:
        raise click.BadParameter(problem[0], param_hint=problem[1])
    network = _compile(spec, overrides, None)
    for name in ("torch", "keras"):
        _backend_or_exit(name)
    stderr = Console(stderr=True, highlight=False)

    def progress(items: Any, description: str, total: int) -> Any:
        return track(items, description=description, total=total, console=stderr, transient=True)

    run = porting.torch_to_keras if target == "keras" else porting.keras_to_torch
    try:
        weights, result = run(checkpoint, network, output, progress=progress, check=verify)
    except SpecError as exc:
        _spec_error(exc)
    except porting.VerificationError as exc:
        _console().print(exc.comparison.table())
        click.echo(f"error: the ported weights do not compute what the checkpoint does: {exc}", err=True)
        click.echo(f"nothing was written to {output}", err=True)
        sys.exit(1)
    tensors = sum(len(t) for t in weights.values())
    click.echo(
        f"wrote {output}: {tensors} tensors of {len(weights)} layers "
        f"({network.params:,} params, {network.stats:,} norm statistics) for {network.name}"
    )
    if result is not None:
        click.echo(f"verified: {result.verdict().removeprefix('ok: ')} over {len(result.points)} boundaries")


@main.command("list", context_settings=CONTEXT)
@specs_option
def list_specs(spec_dir: Path) -> None:
    """List the specs in a folder with their input, params and FLOPs."""
    _spec_folder(spec_dir)
    table = Table(title=f"specs in {spec_dir}", title_justify="left")
    for col, justify in (("spec", "left"), ("input", "right"), ("params", "right"), ("FLOPs (MACs)", "right")):
        table.add_column(col, justify=justify)
    failed = False
    for path in sorted(spec_dir.glob("*.yaml")):
        try:
            _, network = compile_spec(path)
        except SpecError as exc:
            failed = True
            table.add_row(path.stem, "-", "invalid", str(exc.problems[0]))
            continue
        table.add_row(network.name, shape_text(network.input_shape), f"{network.params:,}", gflops(network.flops))
    _console().print(table)
    if failed:
        sys.exit(2)


def _spec_folder(path: Path) -> Path:
    if not path.is_dir():
        raise click.BadParameter(f"folder '{path}' does not exist", param_hint="'--specs'")
    return path


def _source_name(path: Path) -> str:
    """The spec's path as written in emitted headers: relative to the working folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


@main.command(context_settings=CONTEXT)
@click.argument("spec", required=False, type=SPEC_PATH)
@click.option(
    "--backend",
    "-b",
    "backends",
    type=click.Choice(registry.emitters()),
    multiple=True,
    help="Backend to emit for (repeatable). Default: torch for one spec, every backend with --all.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (one spec, one backend)."
)
@click.option("--all", "all_specs", is_flag=True, help="Emit every spec of --specs for every backend into --out.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming every stale, missing or extra file.")
@specs_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="generated",
    show_default=True,
    help="Folder of emitted files.",
)
@set_option
def emit(
    spec: Path | None,
    backends: tuple[str, ...],
    output: Path | None,
    all_specs: bool,
    check: bool,
    spec_dir: Path,
    out_dir: Path,
    overrides: tuple[str, ...],
) -> None:
    """Write SPEC as a standalone model file that imports only its framework.

    \b
    archgen emit specs/resnet50d.yaml                  -> generated/resnet50d_torch.py
    archgen emit specs/resnet50d.yaml -o model.py --set head.classes=10
    archgen emit --all                                 regenerate generated/ from specs/
    archgen emit --all --check                         exit 1 if generated/ is stale

    Files are formatted, identical on every run, and written atomically: an
    invalid spec leaves any existing file untouched.
    """
    from . import emit as emitter

    if all_specs == (spec is not None):
        raise click.UsageError("give either SPEC or --all")
    if all_specs and (output or overrides):
        raise click.UsageError("-o and --set apply to a single SPEC, not --all")
    chosen = list(backends) or (registry.emitters() if all_specs else ["torch"])
    if output and len(chosen) > 1:
        raise click.UsageError("-o names one file: give one --backend")
    paths = sorted(_spec_folder(spec_dir).glob("*.yaml")) if all_specs else [spec]
    wanted: dict[Path, str] = {}
    try:
        for path in paths:
            _, network = compile_spec(path, list(overrides))
            source = _source_name(path)
            for backend in chosen:
                target = output or emitter.default_path(network.name, backend, out_dir)
                wanted[target] = emitter.emit(network, backend, source, overrides)
    except SpecError as exc:
        _spec_error(exc)
    if check:
        stale = [p for p, text in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        extra = []
        if all_specs and out_dir.is_dir():
            extra = [p for p in sorted(out_dir.glob("*.py")) if p not in wanted]
        for p in stale:
            click.echo(f"stale: {p}" if p.exists() else f"missing: {p}", err=True)
        for p in extra:
            click.echo(f"extra: {p} (no spec emits it)", err=True)
        if stale or extra:
            click.echo("run: archgen emit --all", err=True)
            sys.exit(1)
        click.echo(f"ok: {len(wanted)} emitted files are current")
        return
    for target, text in wanted.items():
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            emitter.write_atomic(target, text)
        click.echo(f"wrote {target}")


@main.command(context_settings=CONTEXT)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option("--check", is_flag=True, help="With -o: exit 1 if the file is not current, writing nothing.")
def schema(output: Path | None, check: bool) -> None:
    """Print the JSON Schema of the spec language (or write it, only when it changed)."""
    from .schema import schema_text

    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    current = output.read_text() if output.exists() else None
    if current == text:
        return
    if check:
        click.echo(f"{output} is stale: run 'archgen schema -o {output}'", err=True)
        sys.exit(1)
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)


if __name__ == "__main__":
    main()
