"""A diagram of a resolved network (``archgen graph``), at the level a paper draws it.

The IR becomes a small typed diagram (``Diagram``: nodes, clusters and edges, each node a few lines
of text), which ``dot_text`` writes as graphviz DOT; graphviz's ``dot`` lays it out. Everything here
reads the IR alone (no framework), and the per-section params and FLOPs are the summary table's
(``Network.sections``, ``summary.flops_text``), so the two cannot disagree.

Detail ``stage``: the input, the stem, one node per stage, the head and the output(s). Detail
``block``: each stage is a cluster that draws, layer by layer, its first block and every later block
whose form differs from those drawn before it (shapes, stride, dilation or layers: typically the
projecting first block and the first identity one); each run of the other blocks is one node.

A .dot file needs nothing but this module. SVG, PNG and PDF are rendered in-process by pygraphviz
(whose wheels bundle graphviz: ``archgen[graph]``), else by graphviz's ``dot`` on PATH.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, assert_never

from .. import atomic
from ..describe import attention_detail, attention_stage_line, attention_title, kernel_text, layer_text
from ..errors import MissingFramework, OptionError, RunError
from ..ir import (
    Act,
    AntiAlias,
    AnyLayer,
    Attention,
    AvgPool,
    Block,
    BlurPool,
    Classifier,
    Conv,
    ConvUnit,
    Dropout,
    DropPath,
    FinalNorm,
    GlobalPool,
    GroupNorm,
    Layer,
    Linear,
    MaxPool,
    Network,
    Norm,
    NormAct,
    PostAct,
    Section,
    Shortcut,
    Softmax,
    Stage,
    StemConvs,
    StemPool,
    StochasticDepth,
    ZeroPad,
    shape_text,
)
from .summary import flops_text

DETAILS = ("stage", "block")  # --detail
FORMATS = ("svg", "png", "pdf", "dot")  # the output file's suffix names its format
PNG_DPI = 144
INSTALL_HINT = (
    "pip install 'archgen[graph]' (pygraphviz, whose wheels bundle graphviz), or put graphviz's dot "
    "on PATH (Debian: apt-get install graphviz); a .dot file needs neither"
)

# What a node draws as; the DOT writer maps each kind to a shape and a colour.
NodeKind = Literal["io", "stem", "stage", "head", "conv", "norm", "act", "pool", "se", "drop", "add", "rest"]
LineStyle = Literal["title", "body", "note"]


# -- the diagram model ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    text: str
    style: LineStyle = "body"


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    lines: tuple[Line, ...]
    tooltip: str = ""  # the IR name of a layer: SVG viewers show it on hover


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""
    dashed: bool = False  # shortcut branches and feature taps


@dataclass(frozen=True)
class Cluster:
    id: str
    lines: tuple[Line, ...]
    items: tuple[Node | Cluster, ...]


@dataclass(frozen=True)
class Diagram:
    name: str
    comment: str  # the DOT file's first line
    title: tuple[Line, ...]
    items: tuple[Node | Cluster, ...]
    edges: tuple[Edge, ...]

    def nodes(self) -> Iterator[Node]:
        def walk(items: tuple[Node | Cluster, ...]) -> Iterator[Node]:
            for item in items:
                if isinstance(item, Node):
                    yield item
                else:
                    yield from walk(item.items)

        return walk(self.items)


@dataclass
class _Parts:
    """What a section of the diagram adds: its items and edges, and the node the next section follows."""

    items: list[Node | Cluster] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    exit: str = ""


# -- text of layers and sections --------------------------------------------------------------------------------
def _counts(row: Section) -> Line:
    return Line(f"{row.params:,} params · {flops_text(row.flops)} FLOPs", "note")


def _stem_lines(network: Network) -> list[Line]:
    """classic (one conv) or deep (a stack of convs), then its pool."""
    convs_part, pool = network.stem_part(StemConvs), network.stem_part(StemPool)
    body = convs_part.layers if convs_part is not None else ()
    convs = [x for x in body if isinstance(x, Conv)]
    norms = sum(isinstance(x, Norm | GroupNorm) for x in body)
    acts = sorted({x.fn for x in body if isinstance(x, Act)})
    text = "conv " + ", ".join(kernel_text(c) for c in convs) + ": " + "-".join(str(c.out_ch) for c in convs)
    if norms:
        after = "each" if norms == len(convs) else "the first" if norms == 1 else f"the first {norms}"
        text += f" (bn + {'/'.join(acts)} after {after})" if len(convs) > 1 else f", bn, {'/'.join(acts)}"
    kind = convs_part.kind if convs_part is not None else "classic"
    lines = [Line(f"stem: {kind}", "title"), Line(text)]
    if pool is None:
        lines.append(Line("no pool"))
    elif pool.kind == "conv":
        conv, pool_acts = pool.of(Conv)[0], pool.of(Act)
        aa = "".join(f", {layer_text(x)}" for x in pool.layers if isinstance(x, AvgPool | BlurPool))
        lines.append(Line(f"conv pool {kernel_text(conv)}{aa}" + (", bn, " + pool_acts[-1].fn if pool_acts else "")))
    else:
        lines.append(Line(", ".join(layer_text(x) for x in pool.layers)))
    return lines


def _local(block: Block, layer: Layer) -> str:
    return layer.name[len(block.name) + 1 :]


def _shortcut_layers(block: Block) -> tuple[AnyLayer, ...]:
    return block.shortcut.layers if block.shortcut is not None else ()


def _stride_text(stage: Stage) -> str:
    # The layer that takes the stride: a conv, or the anti-aliasing pool after it.
    strided: list[tuple[Block, Conv | AvgPool | BlurPool]] = []
    for b in stage.blocks:
        for p in b.parts:
            if isinstance(p, ConvUnit) and p.conv.stride > 1:
                strided.append((b, p.conv))
            elif isinstance(p, AntiAlias) and isinstance(p.layers[0], AvgPool | BlurPool) and p.layers[0].stride > 1:
                strided.append((b, p.layers[0]))
    if not strided:
        text = f"stride {stage.stride}"
    else:
        block, layer = strided[0]
        what = f"{layer.kernel}x{layer.kernel}" if isinstance(layer, Conv) else layer_text(layer)
        text = f"stride {layer.stride} at {block.name}.{_local(block, layer)} ({what})"
    if stage.dilation > 1:
        text += f", dilation {stage.dilation}"
        if stage.first_dilation != stage.dilation:
            text += f" (from {stage.first_dilation} in {stage.blocks[0].name})"
    return text


def _rates(blocks: tuple[Block, ...] | list[Block]) -> str:
    low, high = min(b.drop_path for b in blocks), max(b.drop_path for b in blocks)
    return f"drop path {low:.3g}" if low == high else f"drop path {low:.3g}–{high:.3g}"


def _has_drop_path(blocks: tuple[Block, ...] | list[Block]) -> bool:
    return any(isinstance(x, DropPath) for b in blocks for x in b.layers)


def _stage_lines(stage: Stage, row: Section) -> list[Line]:
    design = stage.design
    kind = ("pre-act " if design.preact else "") + design.kind
    c_in, c_out = stage.in_shape[0], stage.out_shape[0]
    widths = f"{c_in} → {c_out}" if design.kind == "plain" else f"{c_in} → {stage.mid_chs} → {c_out}"
    groups = max(slot.groups for slot in design.convs)
    lines = [
        Line(f"{stage.name}: {kind} × {stage.depth}", "title"),
        Line(f"channels {widths}" + (f", {groups} groups" if groups > 1 else "")),
        Line(_stride_text(stage)),
    ]
    if design.shortcut is not None:
        changing = [(b, _shortcut_layers(b)) for b in stage.blocks if _shortcut_layers(b)]
        shown = "; ".join(f"{' + '.join(layer_text(x) for x in layers)} ({b.name})" for b, layers in changing[:2])
        more = f"; +{len(changing) - 2} more" if len(changing) > 2 else ""
        # The design's kind, then what each block whose shape changes has (a stride-1 avgpool one: no pool).
        kind = design.shortcut.kind
        lines.append(Line(f"shortcut ({kind}): {shown}{more}" if changing else f"shortcut ({kind}): identity"))
    attention = stage.blocks[0].attention
    if attention is not None:
        lines.append(Line(attention_stage_line(attention, c_out)))
    if _has_drop_path(stage.blocks):
        lines.append(Line(_rates(stage.blocks)))
    lines += [Line(f"out {shape_text(stage.out_shape)}"), _counts(row)]
    return lines


def _head_lines(network: Network, row: Section | None) -> list[Line]:
    kind = "classifier" if network.classes is not None else "features"
    lines = [Line(f"head: {kind}", "title")]
    for part in network.head_parts:
        match part:
            case FinalNorm():
                lines.append(Line(", ".join(["bn", *(x.fn for x in part.of(Act))])))
            case Classifier():
                lines += [Line(layer_text(x)) for x in part.layers]
            case Softmax():
                lines.append(Line("softmax"))
            case _:
                assert_never(part)
    return lines + ([_counts(row)] if row is not None else [])


# -- stage detail -----------------------------------------------------------------------------------------------
def _stage_node(stage: Stage, row: Section) -> _Parts:
    return _Parts([Node(stage.name, "stage", tuple(_stage_lines(stage, row)))], [], stage.name)


# -- block detail -----------------------------------------------------------------------------------------------
def _form(block: Block) -> tuple[object, ...]:
    """What makes two blocks of a stage draw alike: shapes, stride, dilation and the layers' names and
    kinds (not their drop-path rates, which the schedule varies from block to block)."""
    layers = tuple((_local(block, x), x.kind) for x in block.layers)
    return (block.in_shape, block.out_shape, block.stride, block.first_dilation, block.dilation, layers)


def _layer_node(layer: AnyLayer) -> Node:
    kind: NodeKind
    match layer:
        case Conv() | Linear():
            kind = "conv"
        case Norm() | GroupNorm() | NormAct():
            kind = "norm"
        case Act():
            kind = "act"
        case MaxPool() | AvgPool() | BlurPool() | ZeroPad() | GlobalPool():
            kind = "pool"
        case DropPath() | Dropout():
            kind = "drop"
        case _:
            assert_never(layer)
    lines = [Line(layer_text(layer))]
    if isinstance(layer, Conv | MaxPool | AvgPool | BlurPool):
        lines.append(Line(shape_text(layer.out_shape), "note"))
    return Node(layer.name, kind, tuple(lines), layer.name)


def _chain(nodes: list[Node], edges: list[Edge], dashed: bool = False) -> None:
    edges += [Edge(a.id, b.id, dashed=dashed) for a, b in itertools.pairwise(nodes)]


def _block_parts(block: Block, entry: str) -> _Parts:
    """One block, layer by layer, in a cluster: the residual branch, the shortcut branch, the addition.

    The shortcut leaves from the block's input, except in a pre-activation block whose shortcut
    projects: that one takes the pre-activated map (``act1``), as timm and Keras V2 build it."""
    design = block.design
    shortcut = _shortcut_layers(block)
    main: list[Node] = []
    post: AnyLayer | None = None  # the act after the addition
    for part in block.parts:
        match part:
            case ConvUnit() | AntiAlias() | StochasticDepth():
                main += [_layer_node(x) for x in part.layers]
            case Attention():  # one node
                main.append(_attention_node(part))
            case PostAct():
                post = part.layers[0]
            case Shortcut():
                pass
            case _:
                assert_never(part)
    sc_nodes = [_layer_node(x) for x in shortcut]
    parts = _Parts()
    parts.edges.append(Edge(entry, main[0].id))
    _chain(main, parts.edges)
    nodes = list(main)
    exit_id = main[-1].id
    if design.residual:
        add = Node(f"{block.name}.add", "add", (Line("+"),), f"{block.name}: residual + shortcut")
        nodes.append(add)
        parts.edges.append(Edge(main[-1].id, add.id))
        source = entry
        if design.preact and any(isinstance(x, Conv) for x in shortcut):
            first = next(p for p in block.parts if isinstance(p, ConvUnit))
            source = first.of(Act)[0].name
        if sc_nodes:
            nodes += sc_nodes
            parts.edges.append(Edge(source, sc_nodes[0].id, dashed=True))
            _chain(sc_nodes, parts.edges, dashed=True)
            parts.edges.append(Edge(sc_nodes[-1].id, add.id, dashed=True))
        else:
            parts.edges.append(Edge(source, add.id, "identity", dashed=True))
        exit_id = add.id
        if post is not None:
            nodes.append(_layer_node(post))
            parts.edges.append(Edge(add.id, post.name))
            exit_id = post.name
    title = (Line(block.name, "title"), Line(f"{shape_text(block.in_shape)} → {shape_text(block.out_shape)}", "note"))
    parts.items.append(Cluster(f"cluster_{block.name}", title, tuple(nodes)))
    parts.exit = exit_id
    return parts


def _attention_node(part: Attention) -> Node:
    lines = (Line(attention_title(part.design)), Line(attention_detail(part), "note"))
    return Node(part.module, "se", lines, part.module)


def _rest_node(run: list[Block], like: Block) -> Node:
    names = run[0].name if len(run) == 1 else f"{run[0].name} – {run[-1].name}"
    count = "1 block" if len(run) == 1 else f"{len(run)} blocks"
    lines = [Line(names, "title"), Line(f"{count} as {like.name}")]
    if _has_drop_path(run):
        lines.append(Line(_rates(run), "note"))
    return Node(f"{run[0].name}.rest", "rest", tuple(lines))


def _stage_cluster(stage: Stage, row: Section, entry: str) -> _Parts:
    # The stage's own node heads the cluster and is where its first block starts: a cluster's label
    # would sit where the edges into the cluster run.
    header = Node(stage.name, "stage", tuple(_stage_lines(stage, row)))
    drawn: dict[tuple[object, ...], Block] = {}
    inner = _Parts([header], [Edge(entry, header.id)], header.id)
    run: list[Block] = []

    def flush() -> None:
        if run:
            node = _rest_node(run, drawn[_form(run[0])])
            inner.items.append(node)
            inner.edges.append(Edge(inner.exit, node.id))
            inner.exit = node.id
            run.clear()

    for block in stage.blocks:
        form = _form(block)
        if form in drawn and (not run or _form(run[0]) == form):
            run.append(block)
            continue
        flush()
        if form in drawn:
            run.append(block)
            continue
        drawn[form] = block
        part = _block_parts(block, inner.exit)
        inner.items += part.items
        inner.edges += part.edges
        inner.exit = part.exit
    flush()
    cluster = Cluster(f"cluster_{stage.name}", (), tuple(inner.items))
    return _Parts([cluster], inner.edges, inner.exit)


# -- the whole network ------------------------------------------------------------------------------------------
def diagram(network: Network, detail: str = "stage") -> Diagram:
    """The diagram of ``network``: input, stem, stages (nodes, or clusters of layers), head, outputs."""
    if detail not in DETAILS:
        raise OptionError(f"--detail: expected {' or '.join(DETAILS)}; received {detail!r}")
    rows = {row.name: row for row in network.sections()}
    items: list[Node | Cluster] = [Node("input", "io", (Line("input", "title"), Line(shape_text(network.input_shape))))]
    edges: list[Edge] = []
    exits: dict[str, str] = {}  # a section's name -> the node its map leaves from (for feature taps)
    last = "input"
    if network.stem:
        items.append(Node("stem", "stem", (*_stem_lines(network), *_section_tail(rows["stem"]))))
        edges.append(Edge(last, "stem"))
        last = exits["stem"] = "stem"
    for stage in network.stages:
        if detail == "block":
            part = _stage_cluster(stage, rows[stage.name], last)
        else:
            part = _stage_node(stage, rows[stage.name])
            part.edges.append(Edge(last, stage.name))
        items += part.items
        edges += part.edges
        last = exits[stage.name] = part.exit
    if network.head:
        items.append(Node("head", "head", tuple(_head_lines(network, rows.get("head")))))
        edges.append(Edge(last, "head"))
        last = "head"
    outputs, taps = _outputs(network, exits, last)
    items += outputs
    edges += taps
    inputs = shape_text(network.input_shape)
    title = (
        Line(network.name, "title"),
        Line(f"{network.params:,} params · {flops_text(network.flops)} FLOPs (MACs) · input {inputs}", "note"),
    )
    comment = f"archgen graph of {network.name} (spec sha256 {network.digest}), --detail {detail}"
    return Diagram(network.name, comment, title, tuple(items), tuple(edges))


def _section_tail(row: Section) -> tuple[Line, ...]:
    return (Line(f"out {shape_text(row.out_shape)}"), _counts(row))


def _outputs(network: Network, exits: dict[str, str], last: str) -> tuple[list[Node], list[Edge]]:
    """The output node, or with out_indices one per feature map taken, joined to where it is tapped."""
    if network.out_indices is None:
        if network.classes is not None:
            what = "probabilities" if network.head_part(Softmax) is not None else "logits"
            text = f"{network.classes} {what}"
        else:
            text = f"features {shape_text(network.output_shape)}"
        return [Node("output", "io", (Line("output", "title"), Line(text)))], [Edge(last, "output")]
    nodes, edges = [], []
    for j, index in enumerate(network.out_indices):
        info = network.feature_info[index]
        source = exits.get(info.module, exits.get("stem", "input"))  # the stem's map is tapped inside it
        lines = (
            Line(f"output {j} (out_indices: {index})", "title"),  # its place in the list, and its index
            Line(f"{info.module} {shape_text(info.shape)}"),
            Line(f"reduction {info.reduction}", "note"),
        )
        nodes.append(Node(f"output.{j}", "io", lines))
        edges.append(Edge(source, f"output.{j}", dashed=True))
    return nodes, edges


# -- DOT --------------------------------------------------------------------------------------------------------
FONT = "Helvetica"
# kind -> DOT node attributes: sections as filled boxes, layers as small boxes, the addition as a circle.
STYLES: dict[NodeKind, str] = {
    "io": 'shape=box, style="rounded", color="#444444"',
    "stem": 'shape=box, style="rounded,filled", fillcolor="#e3f0e3"',
    "stage": 'shape=box, style="rounded,filled", fillcolor="#e4ecf7"',
    "head": 'shape=box, style="rounded,filled", fillcolor="#f7ece0"',
    "conv": 'shape=box, style="filled", fillcolor="#e4ecf7"',
    "norm": 'shape=box, style="filled", fillcolor="#f2f2f2", fontsize=9, height=0.25',
    "act": 'shape=box, style="filled,rounded", fillcolor="#fdf6d8", fontsize=9, height=0.25',
    "pool": 'shape=box, style="filled", fillcolor="#e3f0e3"',
    "se": 'shape=box, style="filled", fillcolor="#f3e5f5"',
    "drop": 'shape=box, style="filled,dashed", fillcolor="#ffffff", fontsize=9, height=0.25',
    "add": 'shape=circle, style="filled", fillcolor="#ffffff", width=0.3, fixedsize=true',
    "rest": 'shape=box, style="rounded,dashed", color="#777777"',
}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape(text: str) -> str:
    """Text inside an HTML-like label: the markup characters as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _label(lines: tuple[Line, ...]) -> str:
    """An HTML-like label: a bold title, body lines, smaller grey notes."""
    out = []
    for line in lines:
        text = _escape(line.text)
        if line.style == "title":
            text = f"<B>{text}</B>"
        elif line.style == "note":
            text = f'<FONT POINT-SIZE="9" COLOR="#555555">{text}</FONT>'
        out.append(text)
    return "<" + "<BR/>".join(out) + ">"


def _items(items: tuple[Node | Cluster, ...], indent: str) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, Node):
            attrs = f"label={_label(item.lines)}, {STYLES[item.kind]}"
            if item.tooltip:
                attrs += f", tooltip={_quote(item.tooltip)}"
            out.append(f"{indent}{_quote(item.id)} [{attrs}];")
        else:
            out.append(f"{indent}subgraph {_quote(item.id)} {{")
            # An empty label, not none: a cluster would inherit the graph's title.
            label = _label(item.lines) if item.lines else '""'
            out.append(f'{indent}  graph [label={label}, labeljust=l, style="rounded", color="#999999"];')
            out += _items(item.items, indent + "  ")
            out.append(f"{indent}}}")
    return out


def dot_text(d: Diagram) -> str:
    """The diagram as graphviz DOT source (deterministic: the same network gives the same text)."""
    lines = [
        f"// {d.comment}",
        f"digraph {_quote(d.name)} {{",
        f'  graph [rankdir=TB, labelloc=t, label={_label(d.title)}, fontname="{FONT}", fontsize=14,'
        " nodesep=0.25, ranksep=0.3, newrank=true];",
        f'  node [fontname="{FONT}", fontsize=11, margin="0.12,0.05", color="#555555"];',
        f'  edge [fontname="{FONT}", fontsize=9, color="#555555", arrowsize=0.6];',
    ]
    lines += _items(d.items, "  ")
    for e in d.edges:
        attrs = [f"label={_quote(e.label)}"] if e.label else []
        attrs += ["style=dashed"] if e.dashed else []
        lines.append(f"  {_quote(e.src)} -> {_quote(e.dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_dot(network: Network, detail: str = "stage") -> str:
    """The DOT source of ``network``'s diagram."""
    return dot_text(diagram(network, detail))


# -- rendering --------------------------------------------------------------------------------------------------
def format_of(output: Path) -> str | None:
    """The format an output file's suffix names (svg, png, pdf, dot), or None."""
    fmt = output.suffix.lower().lstrip(".")
    return fmt if fmt in FORMATS else None


def path_problem(output: Path) -> str | None:
    """What is wrong with an output file name; None if nothing (as ``archgen export`` checks its -o)."""
    if format_of(output) is None:
        shown = f"'{output.suffix}'" if output.suffix else "no suffix"
        return f"the suffix names the format: .svg, .png, .pdf or .dot; '{output.name}' has {shown}"
    if output.is_dir():
        return f"'{output}' is a folder"
    if not output.parent.is_dir():
        return f"the output's folder '{output.parent}' does not exist"
    return None


def _pygraphviz() -> Any | None:
    """pygraphviz, or None where it is not installed (or its bundled libraries cannot load)."""
    try:
        return importlib.import_module("pygraphviz")  # untyped: read as Any
    except ImportError:
        return None


def require(fmt: str) -> None:
    """Raise MissingFramework when ``fmt`` needs graphviz and neither pygraphviz nor ``dot`` is here."""
    if fmt != "dot" and _pygraphviz() is None and shutil.which("dot") is None:
        raise MissingFramework(f"writing .{fmt} needs graphviz's layout engine: {INSTALL_HINT}")


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Collect what C libraries write to file descriptor 2 meanwhile (pygraphviz renders in-process)."""
    lines: list[str] = []
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to collect
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines += tmp.read().decode("utf-8", "replace").splitlines()


def _report(lines: list[str]) -> None:
    """Pass graphviz's own warnings on. Dropped: the bundled fontconfig's complaints about a newer
    system font configuration it cannot parse (it still finds the fonts)."""
    for line in lines:
        if line.strip() and not line.startswith("Fontconfig warning"):
            print(f"graphviz: {line}", file=sys.stderr)


def _args(fmt: str) -> str:
    """dot's options for a format: a PNG at 144 dpi (graphviz's 96 blurs the small notes)."""
    return f"-Gdpi={PNG_DPI}" if fmt == "png" else ""


def render(dot: str, fmt: str) -> bytes:
    """Lay out and render DOT source as svg, png or pdf with graphviz's dot layout."""
    pgv = _pygraphviz()
    if pgv is not None:
        with _native_stderr() as said:
            try:
                data: bytes = pgv.AGraph(string=dot).draw(format=fmt, prog="dot", args=_args(fmt))
            except (ValueError, OSError) as exc:
                raise RunError(f"graphviz could not render the diagram as {fmt}: {exc}") from None
        _report(said)
        return data
    binary = shutil.which("dot")
    if binary is None:
        raise MissingFramework(f"writing .{fmt} needs graphviz's layout engine: {INSTALL_HINT}")
    args = [binary, f"-T{fmt}", *_args(fmt).split()]
    done = subprocess.run(args, input=dot.encode(), capture_output=True, timeout=300, check=False)
    said = done.stderr.decode("utf-8", "replace").splitlines()
    if done.returncode != 0 or not done.stdout:
        reason = next((x for x in reversed(said) if x.strip()), f"exit code {done.returncode}")
        raise RunError(f"graphviz's {binary} could not render the diagram as {fmt}: {reason}")
    _report(said)
    return done.stdout


def write(network: Network, output: Path, detail: str = "stage") -> str:
    """Write ``network``'s diagram to ``output`` in the format its suffix names; returns that format.

    Rendered completely first, then written beside ``output`` and renamed over it (an error leaves an
    existing file as it was; a file it replaces keeps its mode). An unchanged file is not rewritten."""
    fmt = format_of(output)
    if fmt is None:
        raise OptionError(f"-o {output}: {path_problem(output)}")
    text = graph_dot(network, detail)
    data = text.encode() if fmt == "dot" else render(text, fmt)
    if atomic.current_bytes(output) != data:
        atomic.write_bytes(output, data)
    return fmt
