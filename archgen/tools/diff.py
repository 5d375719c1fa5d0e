"""What differs between two resolved networks, as a person says it (``archgen diff``).

Works on the IR alone (``Network``: its stem and head layers, its stages, their block designs), never
on the YAML, so two specs that resolve to the same network are identical however their files are
written. Two networks are the same when everything but their names, descriptions and digests is equal
(``same_network``). A difference is a ``Change``: where (the network, the stem, a stage, every stage,
the head), what (depth, SE, shortcut, ...) and the two values as text; a change that every stage makes
alike is one ``Change`` for every stage. The per-section figures are the summary's
(``Network.sections()``, the rows of ``archgen summary``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from ..describe import anti_alias_text, attention_fields, attention_sentence, attention_short, stem_kind, stem_pool
from ..ir import (
    Act,
    Attention,
    AttentionDesign,
    Classifier,
    Conv,
    Dropout,
    FinalNorm,
    GroupNorm,
    Network,
    Norm,
    Section,
    Softmax,
    Stage,
    StemConvs,
    shape_text,
)
from .summary import flops_text

EVERY_STAGE = "every stage"
NETWORK = "network"
# Stage aspects whose values, when every stage has its own, read well as one list (3-4-6-3 -> 3-8-36-3).
_LISTED = ("depth", "width", "channels")


@dataclass(frozen=True)
class Change:
    """One difference: ``before`` is A's value, ``after`` B's; None where that network has no such part."""

    where: str  # NETWORK, "stem", "layer3", EVERY_STAGE, "head"
    aspect: str  # "depth", "SE", ...; "" where the part itself changed (stem: classic -> deep)
    before: str | None
    after: str | None

    def text(self) -> str:
        what = f"{self.aspect} " if self.aspect else ""
        if self.before is None or self.after is None:
            added = self.before is None
            value = self.after if added else self.before
            if self.where == EVERY_STAGE:
                return f"{self.aspect} {'added to' if added else 'removed from'} every block ({value})"
            return f"{self.where}: {what}{'added' if added else 'removed'} ({value})"
        if self.where == NETWORK:
            return f"{self.aspect}: {self.before} -> {self.after}"
        return f"{self.where}: {what}{self.before} -> {self.after}"

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "text": self.text()}


@dataclass(frozen=True)
class SectionDelta:
    """One row of the summary (stem, a stage, the head) in either network; None where it has none."""

    name: str
    a: Section | None
    b: Section | None

    def _figure(self, field: str) -> int:
        return (getattr(self.b, field) if self.b else 0) - (getattr(self.a, field) if self.a else 0)

    @property
    def params(self) -> int:
        return self._figure("params")

    @property
    def stats(self) -> int:
        return self._figure("stats")

    @property
    def flops(self) -> int:
        return self._figure("flops")

    @property
    def output(self) -> str:
        a = shape_text(self.a.out_shape) if self.a else "none"
        b = shape_text(self.b.out_shape) if self.b else "none"
        return a if a == b else f"{a} -> {b}"


@dataclass(frozen=True)
class NetworkDiff:
    """What ``diff(a, b)`` found: the changes (none when ``identical``) and every section's figures."""

    a: Network
    b: Network
    identical: bool
    changes: tuple[Change, ...]
    sections: tuple[SectionDelta, ...]

    def lines(self) -> list[str]:
        return [c.text() for c in self.changes]

    def totals(self) -> str:
        a, b = self.a, self.b
        return (
            f"total: {_signed(b.params - a.params)} params ({a.params:,} -> {b.params:,}), "
            f"{_signed(b.flops - a.flops)} FLOPs ({flops_text(a.flops)} -> {flops_text(b.flops)})"
        )

    def table(self) -> Table:
        table = Table()
        for column in ("section", "output", "params", "Δ params", "FLOPs (MACs)", "Δ FLOPs"):
            table.add_column(column, justify="left" if column == "section" else "right")
        for row in self.sections:
            params = f"{row.b.params:,}" if row.b else "-"
            flops = flops_text(row.b.flops) if row.b else "-"
            table.add_row(row.name, row.output, params, _signed_count(row.params), flops, _signed(row.flops))
        return table

    def to_json(self, sources: tuple[str, str] = ("", "")) -> dict[str, Any]:
        def side(network: Network, source: str) -> dict[str, Any]:
            keys = ("name", "digest", "input", "output", "params", "stats", "flops")
            return {"source": source} | {k: v for k, v in network.to_json().items() if k in keys}

        def section(row: Section | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {"output": list(row.out_shape), "params": row.params, "stats": row.stats, "flops": row.flops}

        return {
            "identical": self.identical,
            "a": side(self.a, sources[0]),
            "b": side(self.b, sources[1]),
            "changes": [c.to_json() for c in self.changes],
            "sections": [
                {
                    "name": r.name,
                    "a": section(r.a),
                    "b": section(r.b),
                    "delta": {"params": r.params, "stats": r.stats, "flops": r.flops},
                }
                for r in self.sections
            ],
            "delta": {
                "params": self.b.params - self.a.params,
                "stats": self.b.stats - self.a.stats,
                "flops": self.b.flops - self.a.flops,
            },
        }


def _signed(n: int) -> str:
    """A difference with the summary's unit: +18.99 M, -2.049 M, 0."""
    return "0" if n == 0 else f"{'+' if n > 0 else '-'}{flops_text(abs(n))}"


def _signed_count(n: int) -> str:
    return "0" if n == 0 else f"{n:+,}"


# -- sameness ---------------------------------------------------------------------------------------------------
def _essence(network: Network) -> Network:
    """The network without what names it: its name, description and digest (the sha256 of a spec that
    holds them), and ``output_stride`` as written (the strides and dilations it causes stay)."""
    return dataclasses.replace(network, name="", description="", digest="", output_stride=None)


def same_network(a: Network, b: Network) -> bool:
    """Whether two networks are the same layers, options and outputs, however they are named."""
    return _essence(a) == _essence(b)


# -- describing the parts ---------------------------------------------------------------------------------------
def _num(x: float) -> str:
    """A computed rate, as people write it: 0.0, 0.2, 0.1333."""
    return repr(round(x, 4))


def _stem_norm(network: Network) -> str | None:
    """The norm and activation after the stem's last conv, by their module names."""
    part = network.stem_part(StemConvs)
    if part is None:
        return None
    last = max(i for i, x in enumerate(part.layers) if isinstance(x, Conv))
    return ", ".join(x.name for x in part.layers[last + 1 :]) or None


def _classifier(network: Network) -> str:
    if network.classes is not None:
        return f"classifier ({network.classes} classes)"
    if network.out_indices is None:
        return "features (the last stage's map)"
    return f"features (out_indices {list(network.out_indices)})"


def _head_pool(network: Network) -> str | None:
    classifier = network.head_part(Classifier)
    return classifier.pool.pool if classifier is not None else None


def _head_dropout(network: Network) -> str:
    classifier = network.head_part(Classifier)
    dropout = classifier.of(Dropout) if classifier is not None else []
    return repr(dropout[0].rate) if dropout else "none"


def _head_activation(network: Network) -> str:
    softmax = network.head_part(Softmax)
    return softmax.of(Act)[0].fn if softmax is not None else "none"


def _head_fc(network: Network) -> str | None:
    classifier = network.head_part(Classifier)
    return None if classifier is None else "1x1 conv" if classifier.fc.conv else "linear"


def _head_norm(network: Network) -> str | None:
    part = network.head_part(FinalNorm)
    return ", ".join(x.name for x in part.layers) if part is not None else None


def _convs_with_norm_after(network: Network) -> Iterator[tuple[Conv, bool]]:
    """Every conv but attention's (whose bias is its own), with whether a norm follows it in its section."""
    own = {
        id(x) for s in network.stages for b in s.blocks for p in b.parts if isinstance(p, Attention) for x in p.layers
    }
    sections = [network.stem, *(b.layers for s in network.stages for b in s.blocks), network.head]
    for layers in sections:
        for i, layer in enumerate(layers):
            if isinstance(layer, Conv) and id(layer) not in own:
                yield layer, i + 1 < len(layers) and isinstance(layers[i + 1], Norm | GroupNorm)


def _conv_bias(network: Network) -> str:
    convs = list(_convs_with_norm_after(network))
    biased = [c.bias for c, _ in convs]
    if not any(biased):
        return "none"
    if all(biased):
        return "every conv"
    if biased == [not normed for _, normed in convs]:
        return "convs without a norm after them"
    return f"{sum(biased)} of {len(biased)} convs"


def _zero_init(network: Network) -> str:
    if not network.init.zero_init_last:
        return "off"
    targets = sorted({s.design.zero_init for s in network.stages if s.design.zero_init})
    return f"on ({', '.join(targets)})" if targets else "on"


def _drop_path(network: Network) -> str:
    if network.drop_path.rate == 0:
        return "none"
    rates = [b.drop_path for s in network.stages for b in s.blocks if b.design.residual]
    low, high = min(rates, default=0.0), max(rates, default=0.0)
    span = _num(low) if low == high else f"{_num(low)}-{_num(high)}"
    return f"{span} {network.drop_path.schedule}"


def _schedule(a: Network, b: Network) -> list[Change]:
    """The schedule where neither network sets a rate (``_drop_path`` names it otherwise): a rate given
    later, to the emitted ``build_model(drop_path_rate=...)``, follows it."""
    before, after = a.drop_path.schedule, b.drop_path.schedule
    if a.drop_path.rate or b.drop_path.rate or before == after:
        return []
    return [Change(NETWORK, "drop path schedule", before, after)]


def _freeze(network: Network) -> str:
    freeze = network.freeze
    stages = [s.name for s in network.stages if s.name in freeze.modules]
    frozen = ("stem" + "".join(f", {s}" for s in stages)) if freeze.modules else "nothing"
    return f"{frozen} frozen, norms {freeze.norm}" if freeze.active else "none"


def _conv_init(network: Network) -> str:
    init = network.init
    return "default" if init.conv == "default" else f"{init.conv} ({init.mode})"


# The network-wide aspects: (name, description); None where the network has no such thing.
NETWORK_ASPECTS: tuple[tuple[str, Callable[[Network], str | None]], ...] = (
    ("activation", lambda n: n.act),
    ("norm", lambda n: f"{n.norm.kind} ({n.norm.groups} groups)" if n.norm.groups else n.norm.kind),
    ("norm eps", lambda n: repr(n.norm.eps)),
    ("norm momentum", lambda n: repr(n.norm.momentum) if n.norm.kind == "batch" else None),
    ("conv bias", _conv_bias),
    ("conv init", _conv_init),
    ("zero-init last", _zero_init),
    ("drop path", _drop_path),
    ("output stride", lambda n: str(n.feature_info[-1].reduction)),
    ("module names", lambda n: n.naming.scheme),
    ("freeze", lambda n: _freeze(n)),
    (
        "weight standardisation",
        lambda n: next((f"eps {x.std_eps!r}" for x in n.layers() if isinstance(x, Conv) and x.std_eps), "none"),
    ),
)


def _block_kind(stage: Stage) -> str:
    return f"{'pre-activation ' if stage.design.preact else ''}{stage.design.kind}"


def _stride(stage: Stage) -> str:
    return f"{stage.stride}" + (f" (dilation {stage.dilation})" if stage.dilation > 1 else "")


def _stride_on(stage: Stage) -> str:
    slot = next(s for s in stage.design.convs if s.strided)
    return f"conv{slot.index} ({slot.kernel}x{slot.kernel})"


def _shortcut(stage: Stage) -> str:
    shortcut = stage.design.shortcut
    if shortcut is None:
        return "none"
    every = ", on every block (option C)" if shortcut.always else ""
    if shortcut.kernel > 1:
        return f"{shortcut.kind} ({shortcut.kernel}x{shortcut.kernel} where the block strides{every})"
    if shortcut.always:
        return f"{shortcut.kind} (on every block: option C)"
    return {"avgpool": "avgpool (ResNet-D)"}.get(shortcut.kind, shortcut.kind)


def _groups(stage: Stage) -> str:
    return str(max(s.groups for s in stage.design.convs))


def _kernel(stage: Stage) -> str | None:
    return str(stage.design.convs[0].kernel) if stage.design.kind == "plain" else None


STAGE_ASPECTS: tuple[tuple[str, Callable[[Stage], str | None]], ...] = (
    ("block", _block_kind),
    ("depth", lambda s: str(s.depth)),
    ("width", lambda s: str(s.mid_chs)),
    ("channels", lambda s: str(s.out_shape[0])),
    ("groups", _groups),
    ("kernel", _kernel),
    ("stride", _stride),
    ("stride on", _stride_on),
    ("strided block", lambda s: "last" if s.design.stride_last else "first"),
    ("shortcut", _shortcut),
    ("anti-aliasing", lambda s: anti_alias_text(s.design.anti_alias)),
    ("first conv width", lambda s: "full" if s.design.reduce_first == 1 else f"1/{s.design.reduce_first}"),
)


def _attention(stage: Stage) -> tuple[str, dict[str, str]] | None:
    """The attention's abbreviation and options (``SE``, {ratio: ...}); None without one."""
    design = stage.design.attn
    return None if design is None else (attention_short(design), attention_fields(design))


# -- comparing --------------------------------------------------------------------------------------------------
def _aspects(where: str, a: Any, b: Any, aspects: tuple[tuple[str, Callable[[Any], str | None]], ...]) -> list[Change]:
    out = []
    for aspect, describe in aspects:
        before, after = describe(a), describe(b)
        if before != after:
            out.append(Change(where, aspect, before, after))
    return out


def _input(a: Network, b: Network) -> list[Change]:
    before, after = shape_text(a.input_shape), shape_text(b.input_shape)
    return [Change(NETWORK, "input", before, after)] if before != after else []


def _stem(a: Network, b: Network) -> list[Change]:
    out = _aspects("stem", a, b, (("", stem_kind),))
    if "none" in (stem_kind(a), stem_kind(b)):
        return out
    return out + _aspects("stem", a, b, (("pool", stem_pool), ("norm + act", _stem_norm)))


def _stage_changes(a: Stage, b: Stage) -> list[Change]:
    out = _aspects(a.name, a, b, STAGE_ASPECTS)
    if _block_kind(a) != _block_kind(b):  # where the stride sits and the kernel follow from the block type
        out = [c for c in out if c.aspect not in ("stride on", "kernel")]
    if a.mid_chs * b.out_shape[0] == b.mid_chs * a.out_shape[0]:  # the channels follow from the width
        out = [c for c in out if c.aspect != "channels"]
    attn_a, attn_b = _attention(a), _attention(b)
    if attn_a is not None and attn_b is not None and attn_a[0] == attn_b[0]:
        short, fa, fb = attn_a[0], attn_a[1], attn_b[1]
        out += [Change(a.name, f"{short} {k}", fa[k], fb[k]) for k in fa if fa[k] != fb[k]]
    elif attn_a != attn_b:  # one has none (the aspect is its kind), or they differ in kind
        kinds = {x[0] for x in (attn_a, attn_b) if x is not None}
        aspect = kinds.pop() if len(kinds) == 1 else "attention"

        def told(design: AttentionDesign | None) -> str | None:
            if design is None:
                return None
            sentence = attention_sentence(design)
            return sentence if aspect != "attention" else f"{attention_short(design)} {sentence}"

        out.append(Change(a.name, aspect, told(a.design.attn), told(b.design.attn)))
    return out


def _stage_summary(stage: Stage) -> str:
    blocks = "block" if stage.depth == 1 else "blocks"
    return f"{stage.depth} {_block_kind(stage)} {blocks}, {stage.out_shape[0]} channels"


def _stages(a: Network, b: Network) -> list[Change]:
    """Per stage, with what every stage changes alike said once."""
    pairs = list(zip(a.stages, b.stages, strict=False))
    per_stage = [_stage_changes(x, y) for x, y in pairs]
    grouped: list[Change] = []
    # Every stage, or where one network has more: those both have (layer1-layer4).
    group = EVERY_STAGE if len(a.stages) == len(b.stages) else f"{pairs[0][0].name}-{pairs[-1][0].name}"
    if len(pairs) > 1:
        aspects = dict.fromkeys(c.aspect for changes in per_stage for c in changes)
        for aspect in aspects:
            found = [next((c for c in changes if c.aspect == aspect), None) for changes in per_stage]
            if any(c is None for c in found):
                continue
            values = {(c.before, c.after) for c in found if c is not None}
            if len(values) == 1:
                before, after = values.pop()
            elif aspect in _LISTED:
                before = "-".join(str(c.before) for c in found if c is not None)
                after = "-".join(str(c.after) for c in found if c is not None)
            else:
                continue
            grouped.append(Change(group, aspect, before, after))
            per_stage = [[c for c in changes if c.aspect != aspect] for changes in per_stage]
    out = grouped + [c for changes in per_stage for c in changes]
    out += [Change(s.name, "", _stage_summary(s), None) for s in a.stages[len(b.stages) :]]
    out += [Change(s.name, "", None, _stage_summary(s)) for s in b.stages[len(a.stages) :]]
    return out


def _head(a: Network, b: Network) -> list[Change]:
    if _classifier(a).split()[0] != _classifier(b).split()[0] or a.out_indices != b.out_indices:
        out = [Change("head", "", _classifier(a), _classifier(b))]
    elif a.classes is not None and b.classes is not None:
        out = [Change("head", "classes", str(a.classes), str(b.classes))] if a.classes != b.classes else []
        out += _aspects(
            "head",
            a,
            b,
            (("pool", _head_pool), ("dropout", _head_dropout), ("activation", _head_activation), ("fc", _head_fc)),
        )
    else:
        out = []
    return out + _aspects("head", a, b, (("final norm + act", _head_norm),))


def _fallback(a: Network, b: Network) -> list[Change]:
    """What no aspect above names: the first layer that differs, field by field, or the options."""
    layers_a, layers_b = list(a.layers()), list(b.layers())
    for x, y in zip(layers_a, layers_b, strict=False):
        if x == y:
            continue
        if type(x) is not type(y) or x.name != y.name:
            return [Change(NETWORK, "layer", f"{x.kind} {x.name}", f"{y.kind} {y.name}")]
        fields = [f.name for f in dataclasses.fields(x) if getattr(x, f.name) != getattr(y, f.name)]
        return [Change(NETWORK, f"{x.name} {f}", str(getattr(x, f)), str(getattr(y, f))) for f in fields]
    if len(layers_a) != len(layers_b):
        return [Change(NETWORK, "layers", str(len(layers_a)), str(len(layers_b)))]
    ea, eb = _essence(a), _essence(b)
    fields = [f.name for f in dataclasses.fields(ea) if f.compare and getattr(ea, f.name) != getattr(eb, f.name)]
    return [Change(NETWORK, f, str(getattr(a, f)), str(getattr(b, f))) for f in fields]


def _positions(network: Network) -> dict[tuple[int, int], Section]:
    """The summary's rows by position: the stem, each stage by its index, the head (their names follow
    the network's naming, so two networks' rows pair by where they are)."""
    stages = {s.name: i for i, s in enumerate(network.stages)}
    return {
        (0, 0) if r.name == "stem" else (1, stages[r.name]) if r.name in stages else (2, 0): r
        for r in network.sections()
    }


def section_deltas(a: Network, b: Network) -> tuple[SectionDelta, ...]:
    """The summary's rows of both networks, side by side (a row only one of them has is None in the other),
    named as the second network names them."""
    rows_a, rows_b = _positions(a), _positions(b)
    keys = sorted(rows_a.keys() | rows_b.keys())
    return tuple(SectionDelta((rows_b.get(k) or rows_a[k]).name, rows_a.get(k), rows_b.get(k)) for k in keys)


def diff(a: Network, b: Network) -> NetworkDiff:
    """What changes from network ``a`` to network ``b``."""
    if same_network(a, b):
        return NetworkDiff(a, b, True, (), section_deltas(a, b))
    changes = _input(a, b) + _stem(a, b) + _stages(a, b) + _head(a, b)
    network = _aspects(NETWORK, a, b, NETWORK_ASPECTS)
    if a.norm.kind != b.norm.kind:  # the other kind has other fields: its kind says it
        network = [c for c in network if c.aspect not in ("norm eps", "norm momentum")]
    changes += network + _schedule(a, b)
    return NetworkDiff(a, b, False, tuple(changes or _fallback(a, b)), section_deltas(a, b))
