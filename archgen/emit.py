"""Standalone source emission: IR -> a neutral context -> a backend's jinja2 templates.

The context says what the network is made of in terms a template can write
out directly: the stem and head as named layers, one entry per distinct block
class with the list of its convs, one row per stage, and the helpers the spec
needs (nothing else is emitted). A backend brings only its ``templates/``
folder and a few filters (``FILTERS`` in its ``emit`` module). The live
builder of a backend executes the same rendered source, so live and emitted
models cannot drift.
"""

from __future__ import annotations

import importlib
import json
import linecache
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from . import __version__
from .ir import Block, Layer, Network, Stage

CLASS_NAMES = {
    ("basic", False): "BasicBlock",
    ("bottleneck", False): "Bottleneck",
    ("basic", True): "PreActBasicBlock",
    ("bottleneck", True): "PreActBottleneck",
    ("plain", False): "PlainBlock",
}


@dataclass(frozen=True)
class Conv:
    """One conv of a block class, in terms of the constructor's arguments."""

    index: int
    in_chs: str
    out_chs: str
    kernel: int
    strided: bool
    groups: int
    bias: bool


@dataclass
class BlockClass:
    name: str
    kind: str
    preact: bool
    convs: list[Conv]
    shortcut: str
    shortcut_bias: bool
    se: dict[str, Any] | None
    se_class: str | None
    zero_init: str | None
    doc: str


@dataclass
class StageRow:
    name: str
    block: str
    depth: int
    in_chs: int
    mid_chs: int
    out_chs: int
    stride: int
    stride_last: bool


@dataclass
class Group:
    """A top-level module of the stem or head: one layer, or an nn.Sequential of several."""

    name: str
    layers: list[Layer]

    @property
    def sequential(self) -> bool:
        return len(self.layers) > 1 or "." in self.layers[0].name


@dataclass
class Context:
    name: str
    description: str
    source: str
    digest: str
    version: str
    network: Network
    stem: list[Group]
    head: list[Group]
    blocks: list[BlockClass]
    stages: list[StageRow]
    se_classes: list[dict[str, Any]]
    options: dict[str, Any]
    init: dict[str, Any]
    residual: bool
    uses: set[str] = field(default_factory=set)
    overrides: list[str] = field(default_factory=list)

    @property
    def classes(self) -> int | None:
        head = self.options["head"]
        return head["classes"] if head["type"] == "classifier" else None

    @property
    def drop_path_rate(self) -> float:
        return self.options["drop_path"]["rate"]

    @property
    def stride_last(self) -> bool:
        """Some stage carries its stride on its last block (a table column is needed)."""
        return any(s.stride_last for s in self.stages)

    @property
    def columns(self) -> list[str]:
        """Names of the stage table's columns (mid_chs only for residual blocks)."""
        cols = ["name", "block", "depth", "in_chs", "mid_chs", "out_chs", "stride", "stride_last"]
        if not self.residual:
            cols.remove("mid_chs")
        if not self.stride_last:
            cols.remove("stride_last")
        return cols

    @property
    def rows(self) -> list[list[str]]:
        """The stage table, as source literals in the order of ``columns``."""
        return [[f'"{s.name}"' if c == "name" else str(getattr(s, c)) for c in self.columns] for s in self.stages]

    @property
    def plain(self) -> bool:
        return any(b.kind == "plain" for b in self.blocks)

    @property
    def zero_init(self) -> bool:
        return any(b.zero_init for b in self.blocks)


def _bias(network: Network, normed: bool) -> bool:
    mode = network.options["conv_bias"]
    return mode == "always" or (mode == "unnormed" and not normed)


def _convs(network: Network, config: dict[str, Any]) -> list[Conv]:
    kind, preact = config["kind"], config["preact"]
    if kind == "plain":
        return [Conv(1, "in_chs", "out_chs", config["kernel"], True, 1, _bias(network, True))]
    if kind == "basic":
        plan = [("in_chs", "mid_chs", 3, True, 1), ("mid_chs", "out_chs", 3, False, 1)]
    else:
        at = config["stride_at"]
        plan = [
            ("in_chs", "mid_chs", 1, at == "1x1", 1),
            ("mid_chs", "mid_chs", 3, at == "3x3", config["groups"]),
            ("mid_chs", "out_chs", 1, False, 1),
        ]
    n = len(plan)
    return [
        Conv(i, a, b, k, s, g, _bias(network, normed=not (preact and i == n)))
        for i, (a, b, k, s, g) in enumerate(plan, start=1)
    ]


def _groups(layers: tuple[Layer, ...]) -> list[Group]:
    groups: dict[str, Group] = {}
    for layer in layers:
        top = layer.name.split(".")[0]
        groups.setdefault(top, Group(top, [])).layers.append(layer)
    return list(groups.values())


def _numbered(base: str, key: str, registry: dict[str, str], taken: set[str]) -> str:
    """A class name per distinct configuration: Bottleneck, Bottleneck2, ..."""
    if key not in registry:
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        registry[key] = name
        taken.add(name)
    return registry[key]


def _stage_stride(stage: Stage) -> int:
    return max(b.stride for b in stage.blocks)


def build_context(network: Network, source: str) -> Context:
    blocks: dict[str, BlockClass] = {}
    class_of: dict[str, str] = {}
    se_of: dict[str, str] = {}
    se_classes: list[dict[str, Any]] = []
    taken: set[str] = set()
    stages: list[StageRow] = []
    uses: set[str] = set()
    for stage in network.stages:
        config = stage.config
        first: Block = stage.blocks[0]
        key = json.dumps({k: v for k, v in config.items() if k not in ("mid", "out")}, sort_keys=True)
        cls_name = _numbered(CLASS_NAMES[(config["kind"], config["preact"])], key, class_of, taken)
        if cls_name not in blocks:
            se = config.get("se")
            se_class = None
            if se:
                se_key = json.dumps({"bias": se["bias"], "act": se["act"]}, sort_keys=True)
                se_class = _numbered("SqueezeExcite", se_key, se_of, taken)
                if all(c["name"] != se_class for c in se_classes):
                    se_classes.append({"name": se_class, **se})
                uses.add(f"round_{se['rounding']}")
            shortcut = config.get("shortcut", "none")
            if config["kind"] != "plain":
                uses.add(f"shortcut_{shortcut}")
            blocks[cls_name] = BlockClass(
                name=cls_name,
                kind=config["kind"],
                preact=config["preact"],
                convs=_convs(network, config),
                shortcut=shortcut,
                shortcut_bias=_bias(network, normed=not config["preact"]),
                se=se,
                se_class=se_class,
                zero_init=first.zero_init,
                doc=_block_doc(config),
            )
        stages.append(
            StageRow(
                name=stage.name,
                block=cls_name,
                depth=len(stage.blocks),
                in_chs=stage.in_shape[0],
                mid_chs=config["mid"],
                out_chs=config["out"],
                stride=_stage_stride(stage),
                stride_last=config["stride_block"] == "last",
            )
        )
    residual = any(b.kind != "plain" for b in blocks.values())
    for layer in network.layers():
        if layer.op == "max_pool" and layer.attrs.get("pad_value") == "zero" and layer.attrs["padding"]:
            uses.add("zero_pad_max_pool")
    return Context(
        name=network.name,
        description=network.description,
        source=pystr(source),  # a file path may hold a newline: it must not end the header comment
        digest=network.digest,
        version=__version__,
        network=network,
        stem=_groups(network.stem),
        head=_groups(network.head),
        blocks=list(blocks.values()),
        stages=stages,
        se_classes=se_classes,
        options=network.options,
        init=network.init,
        residual=residual,
        uses=uses,
    )


def _block_doc(config: dict[str, Any]) -> str:
    kind = config["kind"]
    if kind == "plain":
        return f"{config['kernel']}x{config['kernel']} conv, norm, activation; no shortcut."
    parts = ["Pre-activation " if config["preact"] else ""]
    if kind == "basic":
        parts.append("two 3x3 convs, the stride on the first")
    else:
        parts.append(f"1x1 reduce, 3x3{' grouped' if config['groups'] > 1 else ''}, 1x1 expand")
        parts.append(f"; the stride on the {config['stride_at']}")
    if config.get("se"):
        parts.append("; squeeze-excitation on the branch")
    text = "".join(parts)
    return text[0].upper() + text[1:] + "."


def pystr(text: str) -> str:
    """Text safe on one comment line: no line breaks, printable ASCII only."""
    return "".join(c if c.isprintable() and c.isascii() else repr(c)[1:-1] for c in str(text))


def docstring(text: str, width: int = 88) -> str:
    """Free text made safe inside a triple-quoted docstring, wrapped."""
    text = pystr(text).replace("\\", "\\\\").replace('"' * 3, "'" * 3)
    return "\n".join(textwrap.wrap(text, width))


def load_source(source: str, module_name: str) -> types.ModuleType:
    """Execute generated source as an importable module (tracebacks show its lines)."""
    filename = f"<archgen {module_name}>"
    module = types.ModuleType(module_name)
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    sys.modules[module_name] = module  # lets pickle and inspect find the classes
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def _environment(backend: str) -> tuple[jinja2.Environment, str]:
    module = importlib.import_module(f"backends.{backend}.emit")
    env = jinja2.Environment(
        # The backend's templates first, then the framework-free pieces they share.
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(f"backends.{backend}", "templates"), jinja2.PackageLoader("archgen", "templates")]
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Python source, not HTML; every value is a number or a validated identifier
    )
    env.filters.update(pystr=pystr, docstring=docstring)  # the same for every backend
    env.filters.update(module.FILTERS)
    return env, module.TEMPLATE


def render(network: Network, backend: str, source: str, overrides: tuple[str, ...] | list[str] = ()) -> str:
    """The backend's source for the network, unformatted (valid Python)."""
    env, template = _environment(backend)
    ctx = build_context(network, source)
    ctx.overrides = list(overrides)
    return env.get_template(template).render(ctx=ctx)


def format_source(text: str) -> str:
    """ruff format, with the project's settings, so every emitted file reads the same."""
    from ruff.__main__ import find_ruff_bin

    config = Path(__file__).resolve().parent / "emit_ruff.toml"
    result = subprocess.run(
        [find_ruff_bin(), "format", "--config", str(config), "--stdin-filename", "model.py", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff could not format the emitted source:\n{result.stderr}")
    return result.stdout


def emit(network: Network, backend: str, source: str, overrides: tuple[str, ...] | list[str] = ()) -> str:
    """The formatted standalone source: what ``archgen emit`` writes."""
    return format_source(render(network, backend, source, overrides))


def default_path(spec_name: str, backend: str, folder: Path = Path("generated")) -> Path:
    return folder / f"{spec_name}_{backend}.py"


def emit_files(
    specs: list[Path],
    backends: list[str],
    out_dir: Path = Path("generated"),
    overrides: tuple[str, ...] | list[str] = (),
    output: Path | None = None,
) -> dict[Path, str]:
    """What ``archgen emit`` writes: every spec for every backend, path -> formatted source (nothing written).

    Every spec is compiled before any file is produced, so one invalid spec means no output at all.
    """
    from . import catalog, compile_spec

    wanted: dict[Path, str] = {}
    for path in specs:
        _, network = compile_spec(path, list(overrides))
        for backend in backends:
            target = output or default_path(network.name, backend, out_dir)
            wanted[target] = emit(network, backend, catalog.source_name(path), overrides)
    return wanted


def stale_files(wanted: dict[Path, str], out_dir: Path | None = None) -> list[tuple[str, Path]]:
    """``("stale" | "missing" | "extra", path)`` of every file that differs from what would be emitted;
    with ``out_dir``, also the ``.py`` files there that nothing emits."""
    found: list[tuple[str, Path]] = []
    for path, text in wanted.items():
        if not path.exists():
            found.append(("missing", path))
        elif path.read_text(encoding="utf-8") != text:
            found.append(("stale", path))
    if out_dir is not None and out_dir.is_dir():
        found += [("extra", p) for p in sorted(out_dir.glob("*.py")) if p not in wanted]
    return found
