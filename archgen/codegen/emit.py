"""Standalone source emission: IR -> a neutral context -> a backend's jinja2 templates.

The context says what the network is made of in terms a template can write
out directly: the stem and head as named layers, one entry per distinct block
design (the IR's ``BlockDesign``, decided by the resolver: templates render it,
they never re-derive it), one row per stage, and the helpers the spec needs
(nothing else is emitted). A backend brings only its ``templates/`` folder and
a few filters (its ``EMITTER``, found through the registry). The live builder of
a backend executes the same rendered source, so live and emitted models cannot
drift.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.bccache

from .. import registry
from ..describe import attention_title
from ..errors import Problem, SpecError
from ..ir import (
    Act,
    Attention,
    AttentionDesign,
    AvgPool,
    BlockDesign,
    BlurPool,
    Conv,
    ConvSlot,
    DropPathOptions,
    FinalNorm,
    Fold,
    GlobalPool,
    InitOptions,
    Layer,
    Linear,
    MaxPool,
    Naming,
    Network,
    Norm,
    NormAct,
    NormOptions,
    ShortcutDesign,
    Softmax,
)
from ..version import __version__

BASE_NAMES = {
    ("basic", False): "BasicBlock",
    ("bottleneck", False): "Bottleneck",
    ("basic", True): "PreActBasicBlock",
    ("bottleneck", True): "PreActBottleneck",
    ("plain", False): "PlainBlock",
}


@dataclass(frozen=True)
class AttentionClass:
    """An attention module class of the emitted file: one per kind and the design fields the class builds
    in (``class_fields``); the others are the block's arguments. ``attention_<kind>.py.j2`` renders it."""

    name: str
    design: AttentionDesign

    @property
    def kind(self) -> str:
        return self.design.kind

    @property
    def template(self) -> str:
        return f"attention_{self.design.kind}.py.j2"


@dataclass(frozen=True)
class BlockClass:
    """One block class of the emitted file: a name for one design."""

    name: str
    design: BlockDesign
    attn_class: AttentionClass | None

    @property
    def kind(self) -> str:
        return self.design.kind

    @property
    def preact(self) -> bool:
        return self.design.preact

    @property
    def convs(self) -> tuple[ConvSlot, ...]:
        return self.design.convs

    @property
    def shortcut(self) -> ShortcutDesign | None:
        return self.design.shortcut

    @property
    def attn(self) -> AttentionDesign | None:
        return self.design.attn

    @property
    def zero_init(self) -> str | None:
        return self.design.zero_init

    @property
    def doc(self) -> str:
        return block_doc(self.design)

    @property
    def folds(self) -> tuple[tuple[str, str], ...]:
        return self.design.folds


@dataclass(frozen=True)
class StageRow:
    name: str
    block: str
    depth: int
    in_chs: int
    mid_chs: int
    out_chs: int
    stride: int
    stride_last: bool
    dilation: int = 1
    first_dilation: int = 1


@dataclass
class Group:
    """A top-level module of the stem or head: one layer, or an nn.Sequential of several."""

    name: str
    layers: list[Layer]

    @property
    def sequential(self) -> bool:
        return len(self.layers) > 1 or self.layers[0].name != self.name

    @property
    def global_pool(self) -> bool:
        return isinstance(self.layers[0], GlobalPool)


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
    attention_classes: list[AttentionClass]
    uses: set[str] = field(default_factory=set)
    overrides: list[str] = field(default_factory=list)

    @property
    def act(self) -> str:
        return self.network.act

    @property
    def naming(self) -> Naming:
        return self.network.naming

    @property
    def freeze_text(self) -> str:
        """What the spec's freeze fixes, in a phrase."""
        freeze = self.network.freeze
        parts = []
        if freeze.modules:
            stages = [m for m in freeze.modules if m in {s.name for s in self.network.stages}]
            parts.append("the stem" + (f" and {', '.join(stages)}" if stages else "") + " take no gradient")
        if freeze.norm == "eval":
            parts.append("every batch norm keeps its running statistics")
        elif freeze.norm == "frozen":
            parts.append("every batch norm keeps its statistics, scale and shift")
        return "; ".join(parts)

    @property
    def weight_std(self) -> float | None:
        """The eps of the network's weight-standardised convs (None: its convs are plain)."""
        return next((x.std_eps for x in self.network.layers() if isinstance(x, Conv) and x.std_eps), None)

    @property
    def head_container(self) -> str | None:
        """The classifier's container module, made before its children (None: the model holds them)."""
        container = self.naming.head.rstrip(".")
        return container if container and any(g.name.startswith(container + ".") for g in self.head) else None

    @property
    def fc(self) -> Linear | None:
        return next((x for x in self.network.head if isinstance(x, Linear)), None)

    @property
    def global_pool(self) -> GlobalPool | None:
        return next((x for x in self.network.head if isinstance(x, GlobalPool)), None)

    @property
    def final_norm_layers(self) -> tuple[Layer, ...]:
        """A pre-activation network's final norm and act (empty if it has none)."""
        part = self.network.head_part(FinalNorm)
        return part.layers if part is not None else ()

    @property
    def norm(self) -> NormOptions:
        return self.network.norm

    @property
    def drop_path(self) -> DropPathOptions:
        return self.network.drop_path

    @property
    def init(self) -> InitOptions:
        return self.network.init

    @property
    def classes(self) -> int | None:
        return self.network.classes

    @property
    def residual(self) -> bool:
        return any(b.design.residual for b in self.blocks)

    @property
    def final_norm(self) -> bool:
        """A pre-activation network's head starts with the norm + act its last block left out."""
        return self.network.head_part(FinalNorm) is not None

    @property
    def softmax(self) -> bool:
        return self.network.head_part(Softmax) is not None

    @property
    def plain(self) -> bool:
        return any(not b.design.residual for b in self.blocks)

    @property
    def zero_init(self) -> bool:
        return any(b.zero_init for b in self.blocks)

    @property
    def stride_last(self) -> bool:
        """Some stage carries its stride on its last block (a table column is needed)."""
        return any(s.stride_last for s in self.stages)

    @property
    def dilated(self) -> bool:
        """Some stage dilates its convs (output_stride): the blocks take dilation arguments."""
        return any(s.dilation > 1 for s in self.stages)

    @property
    def model_args(self) -> list[tuple[str, str, str]]:
        """The model's arguments that the spec decides, as (name, type, default): the names
        timm's ``create_model`` gives them."""
        args = []
        if self.classes:
            args.append(("num_classes", "int", str(self.classes)))
        if self.residual:
            args.append(("drop_path_rate", "float", str(self.drop_path.rate)))
        return args

    def block_args(self, residual: bool) -> list[tuple[str, str, str]]:
        """A block's arguments as (name, type, what the stage loop passes): its widths and stride,
        and for a residual block its bottleneck width and drop-path rate too."""
        args = [("in_chs", "int", "chs")]
        args += [("mid_chs", "int", "stage.mid_chs")] if residual else []
        args += [("out_chs", "int", "stage.out_chs"), ("stride", "int", "stride")]
        args += [("drop_path", "float", "next(rates)")] if residual else []
        return args

    @property
    def columns(self) -> list[str]:
        """Names of the stage table's columns (mid_chs only for residual blocks; the dilations only
        where some stage dilates)."""
        cols = ["name", "block", "depth", "in_chs", "mid_chs", "out_chs", "stride", "stride_last"]
        if not self.residual:
            cols.remove("mid_chs")
        if not self.stride_last:
            cols.remove("stride_last")
        if self.dilated:
            cols += ["dilation", "first_dilation"]
        return cols

    @property
    def truncated(self) -> bool:
        """A features head ends the network before the spec's last stage: the drop-path schedule
        still runs over every stage of the spec."""
        return len(self.drop_path.depths) != len(self.stages)

    @property
    def stem_tap(self) -> str | None:
        """The IR name of the stem layer whose output is taken (out_indices 0), if it is."""
        first = self.network.feature_info[0].module if self.network.stem else None
        if first is None or first not in self.taps:
            return None
        return [x.name for x in self.network.stem if self.naming.group(x.name) == first][-1]

    @property
    def stem_folds(self) -> list[Fold]:
        """The folds of a fused network's stem (the blocks' follow from their designs)."""
        stem = {x.name for x in self.network.stem}
        return [f for f in self.network.folds if f.conv in stem]

    @property
    def taps(self) -> dict[str, int]:
        """Top-level module -> position in the output list, for a features head with out_indices."""
        taken = self.network.out_indices or ()
        return {self.network.feature_info[i].module: n for n, i in enumerate(taken)}

    @property
    def rows(self) -> list[dict[str, str]]:
        """The stage table: each row's columns as source literals (the block as its class name)."""
        return [{c: f'"{s.name}"' if c == "name" else str(getattr(s, c)) for c in self.columns} for s in self.stages]

    @property
    def other_weights(self) -> bool:
        """Some weighted layer is no 2-D conv, norm or linear: init_weights gives it PyTorch's default."""
        usual = (Norm, NormAct, Linear)
        return any(
            x.weighted and not (isinstance(x, usual) or (isinstance(x, Conv) and x.dims == 2))
            for x in self.network.layers()
        )

    @property
    def attention_acts(self) -> list[str]:
        """The activations the attention classes apply besides their gates, class by class."""
        return [fn for a in self.attention_classes for fn in a.design.acts]

    @property
    def extra_activations(self) -> list[str]:
        """Activations of the stem, blocks and head other than the network's (attention gates are written
        inline)."""
        gates = {id(p.gate) for s in self.network.stages for b in s.blocks for p in b.parts if isinstance(p, Attention)}
        return sorted(
            {x.fn for x in self.network.layers() if isinstance(x, Act) and x.fn != self.act and id(x) not in gates}
        )


def _groups(layers: tuple[Layer, ...], naming: Naming) -> list[Group]:
    groups: dict[str, Group] = {}
    for layer in layers:
        top = naming.group(layer.name)
        groups.setdefault(top, Group(top, [])).layers.append(layer)
    return list(groups.values())


def attr(path: str, owner: str = "self") -> str:
    """The Python expression of the module at a dotted path: stages.0.blocks -> self.stages[0].blocks."""
    out = owner
    for part in path.split("."):
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def _numbered(base: str, key: object, names: dict[object, str], taken: set[str]) -> str:
    """A class name per distinct design: Bottleneck, Bottleneck2, ..."""
    if key not in names:
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        names[key] = name
        taken.add(name)
    return names[key]


def _uses(network: Network, blocks: list[BlockClass]) -> set[str]:
    """The helpers a file needs (nothing else is emitted)."""
    uses: set[str] = set()
    for b in blocks:
        if b.attn is not None:
            uses.update(b.attn.uses)
        if b.design.anti_alias is not None and b.design.anti_alias.kind == "blur":
            uses.add("blur_pool")
        if b.shortcut is not None and b.shortcut.kind == "zero_pad":
            uses.add("zero_pad_shortcut")
    if any(isinstance(x, BlurPool) for x in network.stem):
        uses.add("blur_pool")
    if any(isinstance(x, Linear) and x.conv for x in network.head):
        uses.add("pointwise_linear")
    if any(isinstance(x, Conv) and x.std_eps for x in network.layers()):
        uses.add("std_conv")
    if network.naming.shortcut_parts == "role" and any(b.shortcut is not None for b in blocks):
        uses.add("ordered_dict")
    for layer in (*network.stem, *network.head):
        if isinstance(layer, MaxPool):
            uses.add("max_pool")
            if layer.pad_value == "neg_inf":
                uses.add("neg_inf_pad")
    # Average pools of stride 3 or more: "same" padding would shift their windows (Keras).
    if any(isinstance(x, AvgPool) and x.ceil_mode and x.stride > 2 for x in network.layers()):
        uses.add("ceil_avg_pool")
    return uses


def build_context(network: Network, source: str) -> Context:
    class_of: dict[object, str] = {}
    attn_of: dict[object, str] = {}
    taken: set[str] = set()
    blocks: dict[str, BlockClass] = {}
    attention_classes: dict[str, AttentionClass] = {}
    stages: list[StageRow] = []
    for stage in network.stages:
        design = stage.design
        cls_name = _numbered(BASE_NAMES[(design.kind, design.preact)], design, class_of, taken)
        if cls_name not in blocks:
            attn_class = None
            if design.attn is not None:
                attn = design.attn
                key = (type(attn), *(getattr(attn, f) for f in attn.class_fields))
                name = _numbered(attn.class_name, key, attn_of, taken)
                attn_class = attention_classes.setdefault(name, AttentionClass(name, attn))
            blocks[cls_name] = BlockClass(cls_name, design, attn_class)
        stages.append(
            StageRow(
                name=stage.name,
                block=cls_name,
                depth=stage.depth,
                in_chs=stage.in_shape[0],
                mid_chs=stage.mid_chs,
                out_chs=stage.out_shape[0],
                stride=stage.stride,
                stride_last=design.stride_last,
                dilation=stage.dilation,
                first_dilation=stage.first_dilation,
            )
        )
    classes = list(blocks.values())
    return Context(
        name=network.name,
        description=network.description,
        source=pystr(source),  # a file path may hold a newline: it must not end the header comment
        digest=network.digest,
        version=__version__,
        network=network,
        stem=_groups(network.stem, network.naming),
        head=_groups(network.head, network.naming),
        blocks=classes,
        stages=stages,
        attention_classes=list(attention_classes.values()),
        uses=_uses(network, classes),
    )


def block_doc(design: BlockDesign) -> str:
    """The block class's docstring: what the design is, in a sentence."""
    if design.kind == "plain":
        k = design.convs[0].kernel
        return f"{k}x{k} conv, norm, activation; no shortcut."
    parts = ["Pre-activation " if design.preact else ""]
    if design.kind == "basic":
        parts.append("two 3x3 convs, the stride on the first")
    else:
        grouped = design.convs[1].groups > 1
        at = next(f"{c.kernel}x{c.kernel}" for c in design.convs if c.strided)
        parts.append(f"1x1 reduce, 3x3{' grouped' if grouped else ''}, 1x1 expand; the stride on the {at}")
    if design.attn is not None:
        parts.append(f"; {attention_title(design.attn)} on the branch")
    text = "".join(parts)
    return text[0].upper() + text[1:] + "."


def params(args: list[tuple[str, str, str]], first: str | None = None, last: str | None = None) -> str:
    """A signature's parameters with their types and defaults, between ``first`` and ``last``."""
    items = [f"{name}: {kind} = {default}" for name, kind, default in args]
    return ", ".join([*([first] if first else []), *items, *([last] if last else [])])


def keywords(args: list[tuple[str, str, str]]) -> str:
    """A call's keyword arguments: each (name, type, value) as ``name=value``."""
    return ", ".join(f"{name}={value}" for name, _, value in args)


def passed(args: list[tuple[str, str, str]]) -> str:
    """The parameters of ``params`` passed on to a call of the same names: ``name=name``."""
    return ", ".join(f"{name}={name}" for name, *_ in args)


def blockdoc(text: str, indent: int = 4, limit: int = 100) -> str:
    """A one-sentence docstring at ``indent``, wrapped so no line passes the emitted files' ``limit``."""
    lines = textwrap.wrap(text, limit - indent - 6)  # room for both quote triples on one line
    return '"""' + ("\n" + " " * indent).join(lines) + '"""'


def pystr(text: str) -> str:
    """Text safe on one comment line: no line breaks, printable ASCII only."""
    return "".join(c if c.isprintable() and c.isascii() else repr(c)[1:-1] for c in str(text))


def docstring(text: str, width: int = 88) -> str:
    """Free text made safe inside a triple-quoted docstring, wrapped."""
    text = pystr(text).replace("\\", "\\\\").replace('"' * 3, "'" * 3)
    return "\n".join(textwrap.wrap(text, width))


@functools.cache
def _environment(backend: str) -> tuple[jinja2.Environment, str]:
    """The backend's jinja2 environment, made once per process: it keeps its compiled templates
    (compiling model.py.j2 again took most of a live Keras ResNet-50 render, ~0.1 s) and reloads
    any template whose file changed."""
    emitter = registry.emitter(backend)
    env = jinja2.Environment(
        # The backend's templates first, then the framework-free pieces they share.
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(emitter.package, "templates"), jinja2.PackageLoader("archgen.codegen", "templates")]
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Python source, not HTML; every value is a number or a validated identifier
    )
    shared = {"pystr": pystr, "docstring": docstring, "blockdoc": blockdoc, "params": params, "attr": attr}
    env.filters.update(shared, keywords=keywords, passed=passed)  # the same for every backend
    env.filters.update(emitter.filters)
    env.bytecode_cache = _bytecode_cache(env)
    return env, emitter.template


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """jinja2's per-user cache folder (private, in the temp folder) that never fails a render: a file
    it cannot write is only a template compiled again next time."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache(env: jinja2.Environment) -> jinja2.BytecodeCache | None:
    """Compiled templates kept between processes: the first render of a process compiled the Keras
    model.py.j2 in ~95 ms, and loads it in ~4 ms. jinja2 recompiles a template whose source changed;
    the file names hold what else the compiled code depends on (the versions, the syntax options)."""
    syntax = (env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline, env.newline_sequence, env.autoescape)
    options = (__version__, jinja2.__version__, sys.version_info[:2], syntax, env.optimized)
    tag = hashlib.sha256(repr(options).encode()).hexdigest()[:16]
    try:
        return _BytecodeCache(pattern=f"__archgen_{tag}_%s.cache")
    except (OSError, RuntimeError):  # no private temp folder: compile in every process
        return None


def render_template(backend: str, template: str, **values: object) -> str:
    """Another template of the backend's (not the model file), with ``version`` and ``values``."""
    env, _ = _environment(backend)
    return env.get_template(template).render(version=__version__, **values)


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


def default_path(spec_name: str, backend: str, folder: Path = Path("generated"), fused: bool = False) -> Path:
    return folder / f"{spec_name}_{backend}{'_fused' if fused else ''}.py"


def emit_files(
    specs: list[Path],
    backends: list[str],
    out_dir: Path = Path("generated"),
    overrides: tuple[str, ...] | list[str] = (),
    output: Path | None = None,
    *,
    fuse: bool = False,
) -> dict[Path, str]:
    """What ``archgen emit`` writes: every spec for every backend, path -> formatted source (nothing written).

    Every spec is compiled before any file is produced, so one invalid spec means no output at all.
    ``fuse``: the inference form (``archgen.compiler.fuse``; PyTorch's templates only).
    """
    from ..compiler.fuse import fuse as fused
    from ..compiler.pipeline import compile_spec

    wanted: dict[Path, str] = {}
    emitted_by: dict[Path, Path] = {}
    for path in specs:
        _, network = compile_spec(path, list(overrides))
        network = fused(network) if fuse else network
        for backend in backends:
            target = output or default_path(network.name, backend, out_dir, fuse)
            if target in emitted_by:  # two specs of one name would write one file: neither silently wins
                first = emitted_by[target]
                message = f"name: '{network.name}' is also the name of {first}; both would be emitted as {target.name}"
                raise SpecError(Problem(str(path), None, None, "name", message))
            emitted_by[target] = path
            wanted[target] = emit(network, backend, _header_source(path, target), overrides)
    return wanted


def _header_source(spec: Path, target: Path) -> str:
    """The spec as an emitted header names it: ``specs/NAME.yaml`` for a shipped spec, else its path
    relative to the emitted file's folder, so that the file is the same from whatever folder it is made."""
    from ..language import catalog

    if catalog.is_shipped(spec) or str(target) == "-":
        return catalog.source_name(spec)
    try:
        return Path(os.path.relpath(os.path.realpath(spec), os.path.realpath(target.parent))).as_posix()
    except ValueError:  # another drive (Windows)
        return spec.as_posix()


def stale_files(wanted: dict[Path, str], out_dir: Path | None = None) -> list[tuple[str, Path]]:
    """``("stale" | "missing" | "extra" | "leftover", path)`` of every file that differs from what would be
    emitted; with ``out_dir``, also the ``.py`` files there that nothing emits and the temporaries an
    interrupted archgen left there."""
    from ..atomic import current_bytes, is_temporary

    found: list[tuple[str, Path]] = []
    for path, text in wanted.items():
        if not os.path.lexists(path):
            found.append(("missing", path))
        elif current_bytes(path) != text.encode("utf-8"):
            found.append(("stale", path))
    if out_dir is not None and out_dir.is_dir():
        entries = sorted(out_dir.iterdir())
        found += [("extra", p) for p in entries if p.suffix == ".py" and p not in wanted and not is_temporary(p.name)]
        found += [("leftover", p) for p in entries if is_temporary(p.name)]
    return found
