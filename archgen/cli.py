"""The ``archgen`` command line: a few lines per command over the library.

Exit codes: 0 success; 1 a built model disagrees with the IR, two backends
disagree (``compare``, ``port``), or an exported file with its live model
(``export``); 2 invalid input (a spec, an override, an option, a checkpoint) or
a missing framework, or an output path that cannot be written, reported as one
line per problem without a traceback; 3 the machine could not run it (out of
memory, no such device, a full or read-only disk); 130 and 143 SIGINT and
SIGTERM (temporary files removed); 141 stdout closed by its reader.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .compiler.pipeline import compile_spec
from .errors import MissingFramework, OptionError, Problem, RunError, SpecError, printable
from .language import catalog
from .version import __version__

# A command imports the modules it needs where it runs, so that every start (validate's above all, and
# --help) pays only for those of the command given: rich where a command prints a table, the backends'
# templates, the export formats, graphviz, the summary tables.
if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod

    from .ir import Network

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_MISMATCH, EXIT_INPUT, EXIT_RUNTIME = 1, 2, 3
EXIT_INTERRUPT, EXIT_PIPE, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGPIPE, 128 + signal.SIGTERM
# OS errors that say the machine could not store the result (exit 3); every other one is about what the
# user named (a folder as a file, a name too long, no permission): exit 2.
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.ENOMEM}
_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the filesystem is read-only",
    errno.EIO: "the device reported an input/output error",
}


def _fail(lines: list[str], code: int) -> NoReturn:
    for line in lines:
        click.echo(f"error: {printable(line)}", err=True)
    sys.exit(code)


def _spec_error(exc: SpecError) -> NoReturn:
    _fail([str(p) for p in exc.problems], EXIT_INPUT)


def os_error_exit(exc: OSError) -> tuple[str, int]:
    """One line and the exit code for an OS error: 3 where the machine failed, 2 where the path did."""
    code = exc.errno if exc.errno is not None else 0
    reason = exc.strerror or str(exc)
    hint = _ERRNO_HINTS.get(code)
    where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
    return f"{where}{reason}" + (f" ({hint})" if hint else ""), EXIT_RUNTIME if code in _MACHINE_ERRNOS else EXIT_INPUT


_NO_ARGS: tuple[type[click.UsageError], ...] = tuple(
    t for t in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if t is not None
)


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that every ``finally`` (temporary files) runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _quiet_stdout() -> None:
    """After a closed pipe: later writes (and the interpreter's last flush) go nowhere instead of failing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# pydantic looks for plugins (the "pydantic" entry-point group of every installed package) when it
# builds a model's validator; the scan takes some 12 ms of validate's start. The command line's models
# are archgen's own, so while a command runs pydantic is told, in its documented way, to load none
# (https://docs.pydantic.dev/latest/concepts/plugins/): the variable is set only if the user has not
# set it (PYDANTIC_DISABLE_PLUGINS= brings the plugins back) and removed when the command ends, so a
# program that calls the CLI in its own process and builds models after it scans as before. Library
# use (import archgen) never sets it.
_PYDANTIC_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"


class ArchgenGroup(click.Group):
    """Turns every user-facing failure of a command into ``error: ...`` lines and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Signals and streams for the whole run: SIGTERM unwinds as an exception (exit 143), text the
        terminal's encoding cannot show is escaped, not fatal, and output is flushed while errors still
        have a place to go."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        global _as_program
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
        _as_program = (args[0] if args else kwargs.get("args")) is None
        plugins_set = _PYDANTIC_PLUGINS not in os.environ
        if plugins_set:
            os.environ[_PYDANTIC_PLUGINS] = "__all__"
        try:
            try:
                if not kwargs.pop("standalone_mode", True):
                    return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
                sys.exit(self._standalone(*args, **kwargs))
            finally:
                if plugins_set:
                    os.environ.pop(_PYDANTIC_PLUGINS, None)
                _as_program = False
                sys.stdout.flush()  # a full disk or closed pipe behind stdout is reported here, not at exit
        except BrokenPipeError:
            _quiet_stdout()
            sys.exit(EXIT_PIPE)
        except OSError as exc:
            line, code = os_error_exit(exc)
            with contextlib.suppress(OSError):
                click.echo(f"error: stdout: {printable(line)}", err=True)
            _quiet_stdout()
            sys.exit(code)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)

    def _standalone(self, *args: Any, **kwargs: Any) -> int:
        """click's standalone mode with archgen's error format: a usage error is one ``error:`` line
        (and where to find help) with exit 2, as every other refusal is, not click's three-line block."""
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except _NO_ARGS as exc:  # 'archgen' alone: the help, as click gives it
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message(), err=True)
            return exc.exit_code
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail([exc.format_message() + where], exc.exit_code)
        except click.ClickException as exc:
            _fail([exc.format_message()], exc.exit_code)
        except (click.Abort, KeyboardInterrupt):  # Ctrl-C while the arguments were read
            _fail(["interrupted (SIGINT)"], EXIT_INTERRUPT)
        except EOFError:
            _fail(["end of input"], EXIT_INPUT)
        return rv if isinstance(rv, int) else 0

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as exc:  # CheckpointError too
            _spec_error(exc)
        except (OptionError, MissingFramework) as exc:
            _fail([str(exc)], EXIT_INPUT)
        except RunError as exc:
            _fail([str(exc)], EXIT_RUNTIME)
        except BrokenPipeError:
            _quiet_stdout()
            sys.exit(EXIT_PIPE)
        except OSError as exc:
            line, code = os_error_exit(exc)
            _fail([line], code)
        except KeyboardInterrupt:
            _fail(["interrupted (SIGINT)"], EXIT_INTERRUPT)
        except Terminated:
            _fail(["terminated (SIGTERM)"], EXIT_TERMINATED)


class LazyChoice(click.Choice):  # type: ignore[type-arg]  # generic only in click stubs >= 8.2
    """A choice whose values are looked up when an option is parsed or its help shown, not when the
    command line starts: they come from modules that only their own command should pay for."""

    def __init__(self, values: Callable[[], list[str]]) -> None:
        self.values = values
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        return self.values()

    @choices.setter
    def choices(self, _: object) -> None:  # click.Choice.__init__ assigns it
        pass


class BackendChoice(LazyChoice):
    """The installed backends: finding the plug-in ones scans every installed package's entry points."""

    def __init__(self, *, exclude: tuple[str, ...] = ()) -> None:
        self.exclude = exclude
        super().__init__(self._names)

    def _names(self) -> list[str]:
        from . import registry

        return [n for n in registry.names() if n not in self.exclude]


def _emitters() -> list[str]:
    """The backends that bring templates (their packages imported, no framework)."""
    from . import registry

    return registry.emitters()


def _weighing() -> list[str]:
    """The backends that bring weights files (their packages imported, no framework)."""
    from . import registry

    return registry.weighing()


def _export_formats() -> list[str]:
    from .runtime.export import FORMATS

    return list(FORMATS)


class SpecRef(click.ParamType):  # type: ignore[type-arg]  # generic only in click stubs >= 8.2
    """A spec file, or the name of a shipped spec (``resnet50d``) when no file of that name is here."""

    name = "spec"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if isinstance(value, Path):
            return value
        if Path(value).is_dir():
            self.fail(f"'{value}' is a folder, not a spec file", param, ctx)
        try:
            found = catalog.locate(value)  # a FIFO or a dangling link is the loader's to refuse, by name
        except LookupError as exc:
            self.fail(exc.args[0], param, ctx)
        if not os.path.lexists(found):
            self.fail(f"file '{value}' does not exist", param, ctx)
        return found


SPEC = SpecRef()


def _compile(path: Path, overrides: tuple[str, ...], input_size: int | None) -> Network:
    _import_language()
    return compile_spec(path, list(overrides), input_size)[1]


def _import_language() -> None:
    """Import the spec language (pydantic's models) and the IR with the cyclic garbage collector paused.

    Their imports create tens of thousands of objects, all of which stay alive, and set off some 65
    collections that find nothing to free (about 25 ms of validate's 0.3 s, measured); the first
    collection after them would still go through them all (15 ms). The collector is paused for the
    imports alone, and only if it was running; where archgen is the program (``main()`` reading
    sys.argv, as the ``archgen`` script does), what they made is then frozen (``gc.freeze``: left out
    of every later collection, the one at exit included), which a program that calls ``main(args)``
    in its own process is spared."""
    if "archgen.compiler.resolve" in sys.modules:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .compiler import resolve  # noqa: F401
        from .language import loader  # noqa: F401
    finally:
        if enabled:
            if _as_program:
                gc.freeze()
            gc.enable()


_as_program = False  # main() was called as the program, its arguments from sys.argv


# Box drawing as ASCII, for tables written into a pipe or file: each table keeps its layout.
_ASCII_RULES = str.maketrans(
    {
        **dict.fromkeys("─━═╌╍┄┅", "-"),
        **dict.fromkeys("│┃║╎╏┆┇", "|"),
        **dict.fromkeys("┏┓┗┛┡┩┳┻╇╋┼├┤┬┴┌┐└┘╭╮╰╯┠┨┯┷┿╂╞╡╪╤╧", "+"),
    }
)


def _console(width: int = 100, **options: Any) -> Console:
    """rich's console, at least ``width`` columns wide (tables of long module paths are cut otherwise).

    Into a pipe or file it writes plain text for other programs: ASCII table rules, no trailing
    spaces, no escape codes; NO_COLOR (https://no-color.org) turns off bold and italic as well as colour."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich exits 1 itself; the CLI ends a closed pipe its own way
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

        def print(self, *objects: Any, **kwargs: Any) -> None:
            if self.is_terminal:
                return super().print(*objects, **kwargs)
            with self.capture() as captured:
                super().print(*objects, **kwargs)
            text = captured.get().translate(_ASCII_RULES)
            self.file.write("\n".join(line.rstrip() for line in text.split("\n")))
            self.file.flush()
            return None

    if os.environ.get("NO_COLOR"):
        options.setdefault("color_system", None)
    return _Console(highlight=False, width=max(width, Console().width), **options)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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
    default=None,
    help="Folder of specs (for list, and emit --all). Default: the specs shipped with archgen.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary instead.")


@click.group(cls=ArchgenGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def main() -> None:
    """Compile declarative ResNet-family specs (YAML) into PyTorch and Keras 3 models.

    \b
    archgen validate specs/*.yaml          check specs (no framework imported)
    archgen summary specs/resnet50.yaml    layer table from the IR alone
    archgen graph resnet50d -o r50d.svg    a diagram of the network, laid out by graphviz
    archgen build specs/resnetrs152.yaml   compile, instantiate and check a live model
    archgen build resnet50d                a shipped spec, by name, from any folder
    archgen compare specs/resnet50d.yaml   PyTorch vs Keras, stage by stage
    archgen port r50.pth --spec specs/resnet50.yaml --to keras -o r50.weights.h5
    archgen export resnet50d --format onnx --weights r50d.pth -o r50d.onnx
    archgen bench resnet50 --device cuda --amp bf16 --train   images/s, latency, memory, TFLOP/s
    archgen diff resnet50 resnet50d        what differs between the two networks (exit 1 if anything)
    archgen new r50d_se --from resnet50d --set 'block.se={ratio: 0.0625}'   a new spec that extends one

    SPEC is a spec file, or the name of a spec shipped with archgen ('archgen list').
    Exit codes: 0 ok; 1 a model disagrees with the IR, another backend or its export (diff: the
    networks differ); 2 invalid input, an output path that cannot be written, or a missing
    framework; 3 out of memory, no such device, or a full or read-only disk; 130/143 SIGINT/SIGTERM;
    141 stdout closed by its reader. Files appear whole or not at all.
    """


@main.command(context_settings=CONTEXT)
@click.argument("specs", nargs=-1, required=True, metavar="SPECS...")
@json_option
def validate(specs: tuple[str, ...], as_json: bool) -> None:
    """Check SPECS: YAML, fields, shapes (no framework is imported). Every spec is checked, a missing
    one too; exit 2 if any is invalid or missing. --json: one object per spec, in order: spec, ok,
    and name/params/flops or the problems (file, line, column, field, message)."""
    failed = False
    report: list[dict[str, Any]] = []
    _import_language()
    for given in specs:
        try:
            path = SPEC.convert(given, None, None)
            _, network = compile_spec(path)
        except click.BadParameter as exc:  # no such file or shipped spec: reported, and the others checked
            failed = True
            problem = Problem(given, None, None, "", exc.message)
            report.append({"spec": given, "ok": False, "problems": [_problem_json(problem)]})
            if not as_json:
                click.echo(f"error: {printable(exc.message)}", err=True)
            continue
        except SpecError as exc:
            failed = True
            report.append({"spec": given, "ok": False, "problems": [_problem_json(p) for p in exc.problems]})
            if not as_json:
                for problem in exc.problems:
                    click.echo(f"error: {printable(str(problem))}", err=True)
            continue
        report.append(
            {"spec": given, "ok": True, "name": network.name, "params": network.params, "flops": network.flops}
        )
        if not as_json:
            click.echo(f"ok: {printable(str(path))} ({network.name}, {network.params:,} params)")
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if failed:
        sys.exit(2)


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "field": problem.field,
        "message": problem.message,
    }


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=SPEC)
@set_option
@input_option
@json_option
@click.option(
    "--layers",
    is_flag=True,
    help="One row per layer (module path, op, output shape, params, MACs, activations), grouped by "
    "section, then the totals (float32 sizes for one sample); with --json, every row.",
)
def summary(spec: Path, overrides: tuple[str, ...], input_size: int | None, as_json: bool, layers: bool) -> None:
    """Print the per-section table of SPEC (shapes, params, FLOPs) from the IR alone; --layers: every layer."""
    from .tools.summary import layers_json, layers_report, network_table

    network = _compile(spec, overrides, input_size)
    if as_json:
        click.echo(json.dumps(layers_json(network) if layers else network.to_json(), indent=2))
    elif layers:  # wide enough for the longest module paths and ops without wrapping
        _console(120).print(layers_report(network))
    else:
        _console().print(network_table(network))


@main.command("graph", context_settings=CONTEXT)
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write; its suffix names the format: .svg, .png or .pdf (laid out and rendered by graphviz), "
    "or .dot (the DOT source, written without graphviz).",
)
@click.option(
    "--detail",
    type=click.Choice(["stage", "block"]),
    default="stage",
    show_default=True,
    help="stage: one node per stage. block: each stage as a cluster that draws its first block layer by layer "
    "(convs, norms, acts, SE, drop path, the shortcut branch, the addition) and every later block that differs "
    "from those drawn before it in shape, stride, dilation or layers (typically the first with an identity "
    "shortcut); each run of the other blocks is one node, 'N blocks as layerS.B'.",
)
@set_option
@input_option
def graph_command(spec: Path, output: Path, detail: str, overrides: tuple[str, ...], input_size: int | None) -> None:
    """Draw SPEC's resolved network as a diagram, laid out by graphviz's dot, from the IR alone.

    The input; the stem (classic or deep: its convs, widths and pool); every stage (block type
    and depth, channels in -> mid -> out, where the stride sits, dilation, shortcut, SE ratio,
    drop-path rates, output shape); the head; the output, or for a features head every map it
    returns, drawn from where it is tapped. Each section shows its params and FLOPs as
    'archgen summary' counts them.

    .svg, .png and .pdf need graphviz: pygraphviz (pip install 'archgen[graph]'; its wheels
    bundle graphviz), else graphviz's dot on PATH; with neither the command exits 2. A .dot
    file needs neither. FILE's folder must exist; FILE is written beside its name and renamed
    (an error leaves an existing FILE as it was; a file it replaces keeps its mode).

    \b
    archgen graph resnet50d -o resnet50d.svg
    archgen graph specs/resnet50.yaml -o r50.pdf --detail block --set stages.2.depth=9
    archgen graph resnet50d -o resnet50d.dot --input-size 160
    """
    from . import atomic
    from .tools import graph as graphing

    problem = graphing.path_problem(output)
    if problem:
        raise click.BadParameter(problem, param_hint="'-o' / '--output'")
    network = _compile(spec, overrides, input_size)
    atomic.check_output(output)  # an unwritable target is refused before the layout
    fmt = graphing.format_of(output) or "dot"
    graphing.require(fmt)  # a missing graphviz is reported before any layout
    graphing.write(network, output, detail)
    click.echo(
        f"wrote {printable(str(output))} ({fmt}, --detail {detail}): {network.name}, {len(network.stages)} stages"
    )


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=SPEC)
@click.option(
    "--backend",
    "-b",
    type=BackendChoice(),
    default="torch",
    show_default=True,
    help="Framework to build the live model in.",
)
@click.option("--device", default=None, help="Device to build and run on (e.g. cpu, cuda). Default: the backend's.")
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PyTorch state_dict of SPEC (.pth/.pt/.bin/.safetensors) to load, checked tensor by tensor "
    "as 'archgen port' does (exit 2). PyTorch then initialises nothing.",
)
@click.option(
    "--fuse",
    is_flag=True,
    help="PyTorch: the inference form (every norm after a conv folded into it, channels_last), checked "
    "against the fused IR and, at every boundary, against the unfused model (1e-4).",
)
@set_option
@input_option
@json_option
def build(
    spec: Path,
    backend: str,
    device: str | None,
    weights: Path | None,
    fuse: bool,
    overrides: tuple[str, ...],
    input_size: int | None,
    as_json: bool,
) -> None:
    """Compile SPEC, instantiate the model, run one dummy forward pass and check it against the IR.

    The output shape, the shapes after the stem and every stage, and the
    trainable-parameter and normalisation-statistics counts must equal the
    IR's; a mismatch exits 1.
    """
    from .ir import shape_text
    from .runtime.checks import check_build
    from .tools.summary import network_table

    network = _compile(spec, overrides, input_size)
    _, report = check_build(network, backend, device, weights=weights, fuse=fuse)
    folded = None
    if fuse:
        from .runtime.compare import compare_fused
        from .runtime.weights import read_state_dict

        given = read_state_dict(weights, network) if weights else None
        folded = compare_fused(network, weights=given, device=device)
    network = report.network
    if as_json:
        extra = {"fused_vs_unfused": folded.to_json()} if folded is not None else {}
        click.echo(json.dumps(report.to_json() | extra, indent=2))
    else:
        console = _console()
        console.print(network_table(network, f"{network.name} [{backend}]  (input {shape_text(network.input_shape)})"))
        for c in report.mismatches:
            console.print(_escape(f"MISMATCH {c.name}: IR {c.ir}, model {c.model}"), style="bold red")
        if report.ok:
            console.print(
                f"ok: {backend} model matches the {'fused ' if fuse else ''}IR ({report.params:,} params, "
                f"{report.stats:,} norm statistics, output {shape_text(report.output_shape)})"
            )
        if folded is not None:
            console.print(f"fused vs unfused model: {folded.verdict()}", style=None if folded.ok else "bold red")
    if not report.ok or (folded is not None and not folded.ok):
        sys.exit(EXIT_MISMATCH)


@main.command(context_settings=CONTEXT)
@click.argument("spec", type=SPEC)
@click.option(
    "--backend",
    "-b",
    "other",
    type=BackendChoice(exclude=("torch",)),
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
    from . import registry
    from .runtime.compare import compare as run_compare
    from .runtime.weights import read_state_dict

    network = _compile(spec, overrides, input_size)
    for name in ("torch", other):
        registry.get(name)  # a missing framework is reported before any work
    given = read_state_dict(weights, network) if weights else None
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
        sys.exit(EXIT_MISMATCH)


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--spec", "spec", required=True, type=SPEC, help="The spec the weights belong to (file or name).")
@click.option("--to", "target", required=True, type=LazyChoice(_weighing), help="Backend to port to.")
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

    from . import atomic, registry
    from .runtime import port as porting

    problem = porting.path_problem(checkpoint, output, target)
    if problem:
        raise click.BadParameter(problem[0], param_hint=problem[1])
    network = _compile(spec, overrides, None)
    source = registry.weights_owner(checkpoint) or target  # path_problem refused a file no backend reads
    for name in (source, target):
        registry.get(name)  # a missing framework is reported before any work
    atomic.check_output(output)  # so is an unwritable target
    stderr = _console(stderr=True)

    def progress(items: Any, description: str, total: int) -> Any:
        return track(items, description=description, total=total, console=stderr, transient=True)

    try:
        weights, result = porting.port(checkpoint, network, target, output, progress=progress, check=verify)
    except porting.VerificationError as exc:
        _console().print(exc.comparison.table())
        click.echo(f"error: the ported weights do not compute what the checkpoint does: {exc}", err=True)
        click.echo(f"nothing was written to {printable(str(output))}", err=True)
        sys.exit(EXIT_MISMATCH)
    tensors = sum(len(t) for t in weights.values())
    click.echo(
        f"wrote {printable(str(output))}: {tensors} tensors of {len(weights)} layers "
        f"({network.params:,} params, {network.stats:,} norm statistics) for {network.name}"
    )
    if result is not None:
        click.echo(f"verified: {result.verdict().removeprefix('ok: ')} over {len(result.points)} boundaries")


@main.command("export", context_settings=CONTEXT)
@click.argument("spec", type=SPEC)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=LazyChoice(_export_formats),
    help="From PyTorch: onnx (OUT.onnx), torchscript (OUT.pt or OUT.ts), exported-program (torch.export, "
    "OUT.pt2); from Keras: saved_model (a TensorFlow SavedModel folder OUT), litert (OUT.tflite).",
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PyTorch state_dict of SPEC (.pth/.pt/.bin/.safetensors) to export. Default: random weights.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="File to write (a folder for saved_model); its suffix must fit --format.",
)
@click.option(
    "--fuse",
    is_flag=True,
    help="Export PyTorch's inference form (every norm after a conv folded into it); the file is held "
    "to the unfused model's outputs.",
)
@set_option
@input_option
def export_command(
    spec: Path,
    fmt: str,
    weights: Path | None,
    output: Path,
    fuse: bool,
    overrides: tuple[str, ...],
    input_size: int | None,
) -> None:
    """Export SPEC's PyTorch model (eval mode) as an ONNX, TorchScript or torch.export file, or its
    Keras model (Keras' own model.export) as a TensorFlow SavedModel or a LiteRT file.

    The file is written beside OUT, loaded back as a user would (onnxruntime,
    torch.jit.load, torch.export.load, tf.saved_model.load, the LiteRT
    interpreter) and run against the live model on a random
    batch of 2 at the spec's input size (or --input-size); every output must be
    within 1e-4 of the live model's (max |diff| / max |live output|), otherwise the
    command exits 1 and nothing is written (an existing OUT is left as it was).
    Then it is renamed to OUT (keeping the mode of a file it replaces). The batch
    dimension is dynamic. Without --weights every weight is random (useful to try
    a format, not to deploy).
    --weights (a PyTorch state_dict, for either framework) is checked tensor by
    tensor against SPEC first, as 'archgen port' does (exit 2). --format onnx needs
    onnx, onnxscript and onnxruntime, --format litert ai-edge-litert:
    pip install 'archgen[export]'; the Keras formats need archgen[keras].

    \b
    archgen export resnet50d --format onnx --weights resnet50d.pth -o resnet50d.onnx
    archgen export specs/resnet18.yaml --format torchscript -o r18.pt --set head.classes=10 --input-size 64
    archgen export resnet50d --format saved_model --weights resnet50d.pth -o resnet50d_savedmodel
    archgen export resnet50d --format torchscript --fuse --weights resnet50d.pth -o resnet50d_fused.pt
    """
    from . import atomic
    from .ir import shape_text
    from .runtime import export as exporting
    from .runtime.weights import read_state_dict

    problem = exporting.path_problem(output, fmt, weights)
    if problem:
        raise click.BadParameter(problem[0], param_hint=problem[1])
    network = _compile(spec, overrides, input_size)
    too_big = exporting.size_problem(network, fmt)
    if too_big:
        raise OptionError(too_big)
    exporting.require(fmt)  # a missing framework is reported before any work
    atomic.check_output(output, folder=fmt in exporting.FOLDERS)  # so is an unwritable target
    given = read_state_dict(weights, network) if weights else None
    try:
        result = exporting.export(network, fmt, output, given, fuse=fuse)
    except exporting.ExportMismatch as exc:
        click.echo(f"error: {printable(f'{output}: {exc}')}", err=True)
        click.echo(f"nothing was written to {printable(str(output))}", err=True)
        sys.exit(EXIT_MISMATCH)
    source = "random weights (no --weights given)" if result.random_weights else f"the weights of {weights}"
    click.echo(
        printable(  # one line, whatever the file names hold
            f"ok: wrote {output} ({fmt}{', fused' if fuse else ''}, {result.size:,} bytes): {network.name} with "
            f"{source}; loaded with "
            f"{result.loader} it gives the live model's outputs on a batch of {shape_text(result.input_shape)} "
            f"within {result.verification.describe()}"
        )
    )


@main.command("bench", context_settings=CONTEXT)
@click.argument("spec", type=SPEC)
@click.option(
    "--backend",
    "-b",
    type=BackendChoice(),
    default="torch",
    show_default=True,
    help="Framework to build and run the model in.",
)
@click.option("--device", default="cpu", show_default=True, help="Device to run on: cpu, cuda or cuda:N.")
@click.option(
    "--batch", type=click.IntRange(1, 65536), default=32, show_default=True, help="Images per iteration (batch size)."
)
@input_option
@click.option(
    "--channels-last",
    is_flag=True,
    help="torch: model and input in torch.channels_last (Keras models are channels-last already; refused there).",
)
@click.option(
    "--amp",
    type=click.Choice(["bf16"]),
    default=None,
    help="Mixed precision: torch.autocast to bfloat16 (torch), the mixed_bfloat16 policy (keras); float32 weights.",
)
@click.option(
    "--compile",
    "use_compile",
    is_flag=True,
    help="torch.compile(model) (torch); jit_compile=True, XLA on TensorFlow (keras). Compiled in the warmup.",
)
@click.option(
    "--train", is_flag=True, help="Time a training step (forward, loss, backward, SGD step) instead of an eval forward."
)
@click.option(
    "--fuse",
    is_flag=True,
    help="torch: time the inference form (every norm after a conv folded into it, channels_last); eval only.",
)
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True, help="Untimed iterations first.")
@click.option("--iters", type=click.IntRange(min=1), default=20, show_default=True, help="Timed iterations.")
@set_option
@json_option
def bench_command(
    spec: Path,
    backend: str,
    device: str,
    batch: int,
    input_size: int | None,
    channels_last: bool,
    amp: str | None,
    use_compile: bool,
    train: bool,
    fuse: bool,
    warmup: int,
    iters: int,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Measure SPEC's model (random init) on a random batch: images/s, latency, peak memory, TFLOP/s.

    Eval mode runs the forward pass under torch.inference_mode() (Keras: predict_on_batch);
    --train a full training step in train mode: forward, cross-entropy on random labels (the
    mean of the output for a features model), backward, an SGD step (Keras: train_on_batch).
    --warmup iterations run untimed (their wall time is reported: with --compile, the
    compilation), then each of --iters iterations is timed on its own, between two device
    synchronisations on CUDA.

    \b
    images/s     batch / median latency
    latency      p50, p90, p99 (interpolated) and min over the timed iterations, in ms
    peak memory  CUDA: torch.cuda.max_memory_allocated over the timed iterations; CPU: the
                 process's peak resident set size (RSS) over them, which includes everything
                 it holds in RAM (framework, model, activations, gradients)
    TFLOP/s      the IR's FLOPs of one step / median latency. The IR counts the
                 multiply-accumulates (MACs) of convs and linear layers per sample and forward
                 pass ('archgen summary'); one MAC = 2 FLOPs, so a step is 2 x MACs x batch FLOPs,
                 and a training step counts 3x the forward (backward = 2x forward)

    \b
    archgen bench resnet50 --batch 64 --device cuda --channels-last --amp bf16 --compile
    archgen bench resnet18 --input-size 32 --batch 8 --train --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .runtime import bench as benching

    options = benching.BenchOptions(
        backend=backend,
        device=device,
        batch=batch,
        train=train,
        channels_last=channels_last,
        amp=amp,
        compile=use_compile,
        fuse=fuse,
        warmup=warmup,
        iters=iters,
    )
    benching.check_options(options)  # a refused combination is reported before the spec is compiled
    network = _compile(spec, overrides, input_size)
    stderr = _console(stderr=True)
    if as_json or not stderr.is_terminal:
        result = benching.bench(network, options)
    else:
        labels = {"building": "building the model", "warmup": "warmup", "timing": "timing"}
        if use_compile:
            labels["warmup"] = "warmup (compiling)"
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        # Redrawn between iterations only, outside the timed part: no refresh thread competes with the model.
        with Progress(*columns, TimeElapsedColumn(), console=stderr, transient=True, auto_refresh=False) as bar:
            task = bar.add_task(labels["building"], total=None)
            bar.refresh()

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(task, description=labels.get(phase, phase), completed=done, total=total or None)
                bar.refresh()

            result = benching.bench(network, options, progress)
    if as_json:
        click.echo(result.json_text())
    else:
        _console().print(result.table())


@main.command("list", context_settings=CONTEXT)
@specs_option
@json_option
def list_specs(spec_dir: Path | None, as_json: bool) -> None:
    """List the specs in a folder (default: those shipped with archgen) with their input, params and FLOPs.

    --json: one object per spec (spec file, name, input shape, params, norm statistics, flops, or its
    problems)."""
    folder = _spec_folder(spec_dir)
    _import_language()
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for path in _spec_files(folder):
        try:
            _, network = compile_spec(path)
        except SpecError as exc:
            problems += exc.problems
            rows.append({"spec": path.name, "ok": False, "problems": [_problem_json(p) for p in exc.problems]})
            continue
        rows.append(
            {
                "spec": path.name,
                "ok": True,
                "name": network.name,
                "input": list(network.input_shape),
                "params": network.params,
                "stats": network.stats,
                "flops": network.flops,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        if problems:
            sys.exit(EXIT_INPUT)
        return
    from rich.table import Table

    from .ir import shape_text
    from .tools.summary import flops_text

    title = "specs shipped with archgen" if spec_dir is None else f"specs in {spec_dir}"
    table = Table(title=_escape(printable(title)), title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("spec", "left"),
        ("input", "right"),
        ("params", "right"),
        ("FLOPs (MACs)", "right"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for row in rows:
        if row["ok"]:
            shape = shape_text(tuple(row["input"]))
            table.add_row(row["name"], shape, f"{row['params']:,}", flops_text(row["flops"]))
        else:
            table.add_row(_escape(printable(Path(row["spec"]).stem)), "-", "invalid", "-")
    _console().print(table)
    if problems:
        _fail([str(p) for p in problems], EXIT_INPUT)


def _spec_files(folder: Path) -> list[Path]:
    """The specs of a folder: its .yaml and .yml files, less hidden ones (an editor's, or archgen's
    temporaries)."""
    found = [*folder.glob("*.yaml"), *folder.glob("*.yml")]
    return sorted(p for p in found if not p.name.startswith(".") and p.is_file())


def _spec_folder(path: Path | None) -> Path:
    if path is None:
        return catalog.shipped_dir()
    try:
        return catalog.folder(path)
    except LookupError as exc:
        raise click.BadParameter(exc.args[0], param_hint="'--specs'") from None


@main.command(context_settings=CONTEXT)
@click.argument("spec", required=False, type=SPEC)
@click.option(
    "--backend",
    "-b",
    "backends",
    type=LazyChoice(_emitters),
    multiple=True,
    help="Backend to emit for (repeatable). Default: torch for one spec, every backend with --all.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="File to write (one spec, one backend; '-': stdout).",
)
@click.option(
    "--all", "all_specs", is_flag=True, help="Emit every spec of --specs (default: the shipped ones) into --out."
)
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
@click.option(
    "--fuse",
    is_flag=True,
    help="PyTorch: the inference form, every norm after a conv folded into it (SPEC_torch_fused.py); "
    "its fold_state_dict turns a checkpoint of SPEC into its weights.",
)
@set_option
def emit(
    spec: Path | None,
    backends: tuple[str, ...],
    output: Path | None,
    all_specs: bool,
    check: bool,
    spec_dir: Path | None,
    out_dir: Path,
    fuse: bool,
    overrides: tuple[str, ...],
) -> None:
    """Write SPEC as a standalone model file that imports only its framework.

    \b
    archgen emit specs/resnet50d.yaml                  -> generated/resnet50d_torch.py
    archgen emit specs/resnet50d.yaml -o model.py --set head.classes=10
    archgen emit --all                                 regenerate generated/ from the shipped specs
    archgen emit --all --check                         exit 1 if generated/ is stale
    archgen emit resnet50d --fuse                      -> generated/resnet50d_torch_fused.py

    Files are formatted, identical on every run, and written atomically: an
    invalid spec leaves any existing file untouched.
    """
    from . import atomic, registry
    from .codegen import emit as emitter

    if all_specs == (spec is not None):
        raise click.UsageError("give either SPEC or --all")
    if all_specs and (output or overrides):
        raise click.UsageError("-o and --set apply to a single SPEC, not --all")
    chosen = list(backends) or (registry.emitters() if all_specs else ["torch"])
    if output and len(chosen) > 1:
        raise click.UsageError("-o names one file: give one --backend")
    if fuse and chosen != ["torch"]:
        raise click.UsageError("--fuse: only the torch backend has an inference form (give --backend torch)")
    paths = _spec_files(_spec_folder(spec_dir)) if all_specs else [spec]
    wanted = emitter.emit_files([p for p in paths if p is not None], chosen, out_dir, overrides, output, fuse=fuse)
    if check:
        found = emitter.stale_files(wanted, out_dir if all_specs else None)
        for kind, path in found:
            why = {"extra": " (no spec emits it)", "leftover": " (a temporary file of an interrupted archgen)"}
            click.echo(f"{kind}: {printable(str(path))}" + why.get(kind, ""), err=True)
        if found:
            click.echo("run: archgen emit --all", err=True)
            sys.exit(EXIT_MISMATCH)
        click.echo(f"ok: {len(wanted)} emitted files are current")
        return
    if output is not None and str(output) == "-":  # the one file, to stdout
        click.echo(next(iter(wanted.values())), nl=False)
        return
    changed = {t: text for t, text in wanted.items() if atomic.current_bytes(t) != text.encode("utf-8")}
    if changed:  # emit makes the folders it writes into (documented)
        (out_dir if all_specs else next(iter(changed)).parent).mkdir(parents=True, exist_ok=True)
    if all_specs and changed:  # every changed file at once, or none
        atomic.write_folder_files(out_dir, {t.name: text.encode("utf-8") for t, text in changed.items()})
    else:
        for target, text in changed.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(target, text)
    for target in wanted:
        click.echo(f"wrote {printable(str(target))}")


@main.command(context_settings=CONTEXT)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write to this file ('-': stdout).",
)
@click.option("--check", is_flag=True, help="With -o: exit 1 if the file is not current, writing nothing.")
def schema(output: Path | None, check: bool) -> None:
    """Print the JSON Schema of the spec language (or write it, only when it changed)."""
    from . import atomic
    from .language.schema import schema_text

    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    if atomic.current_bytes(output) == text.encode("utf-8"):
        return
    if check:
        click.echo(f"{printable(str(output))} is stale: run 'archgen schema -o {printable(str(output))}'", err=True)
        sys.exit(EXIT_MISMATCH)
    atomic.write_text(output, text)


@main.command("diff", context_settings=CONTEXT)
@click.argument("spec_a", metavar="A", type=SPEC)
@click.argument("spec_b", metavar="B", type=SPEC)
@input_option
@click.option("--json", "as_json", is_flag=True, help="Print the changes and figures as one JSON object instead.")
def diff_command(spec_a: Path, spec_b: Path, input_size: int | None, as_json: bool) -> None:
    """Say what differs between the networks A and B resolve to (not their YAML), then the params,
    FLOPs and output shape of each section (the rows of 'archgen summary') and the totals.

    A change every stage makes alike is said once ('SE added to every block'). Names and
    descriptions are not compared: a spec that extends another without changing anything is
    identical to it. Exit 0 when the networks are identical, 1 when they differ, 2 on invalid input.

    \b
    archgen diff resnet50 resnet50d
    archgen diff specs/resnet50.yaml my_variant.yaml --input-size 128 --json
    """
    from .tools import diff as differ
    from .tools.summary import flops_text

    networks, problems = [], []
    for path in (spec_a, spec_b):
        try:
            networks.append(_compile(path, (), input_size))
        except SpecError as exc:
            problems += list(exc.problems)
    if problems:
        raise SpecError(problems)
    result = differ.diff(networks[0], networks[1])
    sources = (catalog.source_name(spec_a), catalog.source_name(spec_b))
    if as_json:
        click.echo(json.dumps(result.to_json(sources), indent=2))
    else:
        a, b = (f"{n.name} ({printable(s)})" for n, s in zip(networks, sources, strict=True))
        if result.identical:
            click.echo(
                f"identical: {a} and {b} resolve to the same network "
                f"({networks[0].params:,} params, {flops_text(networks[0].flops)} FLOPs)"
            )
            return
        click.echo(f"{a} -> {b}")
        for line in result.lines():
            click.echo(f"  {line}")
        click.echo(f"per section: {networks[1].name}'s figures, and the difference (Δ) from {networks[0].name}'s")
        _console().print(result.table())
        click.echo(result.totals())
    if not result.identical:
        sys.exit(EXIT_MISMATCH)


@main.command("new", context_settings=CONTEXT)
@click.argument("name")
@click.option("--from", "base", required=True, type=SPEC, help="The parent spec (file or shipped name) to extend.")
@set_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write, ending in .yaml, in an existing folder. Default: NAME.yaml in the working folder.",
)
def new_command(name: str, base: Path, overrides: tuple[str, ...], output: Path | None) -> None:
    """Write a new spec NAME that extends BASE with the --set overrides, as nested YAML mappings.

    The file starts with the schema line, then 'extends' (a shipped spec by name, or as
    archgen:NAME where a file beside the new one has that name; a file beside the new one by its
    file name; another by its path relative to the new file, inside its project root: the nearest
    folder above holding .archgen, .git or pyproject.toml), 'name: NAME' and what the overrides change. It is loaded
    and resolved as 'archgen validate' does, and must resolve to BASE's network with the same
    --set, before it is written (atomically). An existing file is never replaced; NAME must be an
    identifier; --set may not change name or extends; an invalid NAME, BASE or override
    exits 2 with nothing written.

    \b
    archgen new r50d_se --from resnet50d --set 'block.se={ratio: 0.0625}' --set head.classes=10
    archgen new r101_deep3 --from resnet101 --set stages.2.depth=36 -o experiments/r101_deep3.yaml
    """
    from .tools import new as authoring
    from .tools.summary import flops_text

    planned = authoring.plan(name, base, overrides, output if output is not None else Path(f"{name}.yaml"))
    authoring.write(planned)
    network = planned.network
    click.echo(
        f"ok: wrote {printable(str(planned.path))}: {name} extends {printable(planned.extends)}"
        f" ({network.params:,} params, {flops_text(network.flops)} FLOPs)"
    )
    if not planned.schema_found:
        where = printable(str(planned.path.parent / authoring.SCHEMA_FILE))
        click.echo(f"note: its schema line names {authoring.SCHEMA_FILE} beside it: archgen schema -o {where}")


if __name__ == "__main__":
    main()
