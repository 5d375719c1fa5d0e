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
    type=click.Path(exists=True, file_okay=False, path_type=Path),
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
    try:
        impl = registry.get(backend)
    except ImportError as exc:
        raise click.ClickException(
            f"the {backend} backend needs {exc.name or 'its framework'}: pip install 'archgen[{backend}]'"
        ) from None
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


@main.command("list", context_settings=CONTEXT)
@specs_option
def list_specs(spec_dir: Path) -> None:
    """List the specs in a folder with their input, params and FLOPs."""
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
    paths = sorted(spec_dir.glob("*.yaml")) if all_specs else [spec]
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
