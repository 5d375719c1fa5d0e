"""Hypothesis strategies for tests/test_fuzz.py: random valid spec documents, and random
damage to spec files (structural edits of the data, then edits of the text and bytes).

``valid_specs`` draws a document together with what an independent reading of the README
says about it: the channels after the stem and each stage, the output, and whether the
spec breaks a rule that must be refused (an identity shortcut where a block changes shape,
a bottleneck with no inner channel) or may be refused (an input smaller than the product of
all strides). The spatial arithmetic itself is left to the backends, which must agree with
the IR.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import strategies as st

ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "leaky_relu", "elu", "mish", "hardswish", "tanh")
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/archgen-spec.schema.json\n"

# Every field name of the language: renames to one of these give an unknown-field error
# that is a "real" field elsewhere (the did-you-mean path), or a misplaced valid field.
FIELD_NAMES = (
    "name description extends tweaks input channels size stem type width kernel stride widths pool "
    "pool_padding norm_act block expansion groups base_width width_factor stride_at preact stride_block "
    "shortcut se attn gamma beta ratio divisor rounding bias act stages depth width_multiplier head dropout classes "
    "activation norm eps momentum conv_bias drop_path rate schedule init conv mode zero_init_last anti_alias padding "
    "reduce_first naming fc weight_std freeze always"
).split()


@dataclass(frozen=True)
class DrawnSpec:
    """A drawn spec document and what the language says it must compile to."""

    doc: dict[str, Any]
    text: str
    input_shape: tuple[int, int, int]
    stem_channels: int | None  # None: no stem
    stage_channels: tuple[int, ...]
    classes: int | None  # None: a features head
    refused: tuple[str, ...] = ()  # regexes of fields at which compilation must fail (some error is certain)
    maybe_small: bool = False  # input below the product of all strides: an 'input.size' refusal is allowed
    # regexes of fields at which compilation may fail: anti-aliasing refuses maps it cannot take (an odd map
    # its average pool floors while the shortcut does not, a blur's reflected border wider than the map)
    may_refuse: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)  # the product of all strides, the tweaks


class NoAliasDumper(yaml.SafeDumper):
    """Never writes anchors/aliases for repeated objects (archgen refuses them, rightly)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Any, *, flow: bool | None = False, unicode: bool = True, width: int = 80) -> str:
    return yaml.dump(
        doc, Dumper=NoAliasDumper, sort_keys=False, default_flow_style=flow, allow_unicode=unicode, width=width
    )


def make_divisible(value: float, divisor: int = 8) -> int:
    """README: width_multiplier rounds to multiples of 8 (timm's make_divisible, never below 8)."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def merge(base: Any, over: Any) -> Any:
    """The README's merge rules (mappings merge, a different ``type`` replaces, null removes)."""
    if not (isinstance(base, dict) and isinstance(over, dict)) or (
        "type" in over and "type" in base and over["type"] != base["type"]
    ):
        return over
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out[key], value) if key in out else value
    return out


def typed(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


def normalized_block(value: Any) -> dict[str, Any]:
    value = dict(typed(value))
    if "shortcut" in value:
        value["shortcut"] = typed(value["shortcut"])
    return value


# -- pieces of a valid spec ------------------------------------------------------------------


def maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any], p_absent: float = 0.5) -> Any:
    """A value, or the marker None for 'leave the field out' (drawn so that it shrinks to absent)."""
    return draw(strategy) if draw(st.floats(0, 1)) >= p_absent else None


def put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def shortcut_value(draw: st.DrawFn, kind: str) -> Any:
    """A shortcut in any of its spellings: ``avgpool``, ``{type: avgpool}``, ``{}`` (the default conv)."""
    if kind == "conv" and draw(st.floats(0, 1)) < 0.2:  # timm's down_kernel_size
        return {"type": "conv", "kernel": 3}
    if kind == "conv" and draw(st.floats(0, 1)) < 0.15:  # option C: a projection on every block
        return {"type": "conv", "always": True}
    if kind == "conv" and draw(st.booleans()):
        return {}
    return kind if draw(st.booleans()) else {"type": kind}


def se_value(draw: st.DrawFn) -> dict[str, Any]:
    se: dict[str, Any] = {}
    put(se, "ratio", maybe(draw, st.sampled_from([0.0625, 0.125, 0.25, 0.5, 1.0]) | st.floats(0.02, 1.0)))
    put(se, "divisor", maybe(draw, st.sampled_from([1, 2, 4, 8])))
    put(se, "rounding", maybe(draw, st.sampled_from(["nearest", "floor"])))
    put(se, "bias", maybe(draw, st.booleans()))
    put(se, "act", maybe(draw, st.sampled_from(ACTIVATIONS)))
    return se


def attention_value(draw: st.DrawFn) -> Any:
    """An ``attn`` in any of its spellings: a bare type, or a mapping of its kind's fields."""
    kind = draw(st.sampled_from(["se", "eca"]))
    if draw(st.floats(0, 1)) < 0.3:
        return kind
    if kind == "se":
        return {"type": "se", **se_value(draw)}
    eca: dict[str, Any] = {"type": "eca"}
    put(eca, "kernel", maybe(draw, st.sampled_from([1, 3, 5, 7, 9])))
    put(eca, "gamma", maybe(draw, st.integers(1, 4)))
    put(eca, "beta", maybe(draw, st.integers(0, 3)))
    return eca


SHORTCUTS = st.sampled_from(["conv", "conv", "avgpool", "maxpool", "zero_pad", "identity"])


def anti_alias_value(draw: st.DrawFn) -> Any:
    """An ``anti_alias`` in any of its spellings: a bare type, or a mapping of its kind's fields."""
    kind = draw(st.sampled_from(["avg", "blur"]))
    if draw(st.booleans()):
        return kind
    value: dict[str, Any] = {"type": kind}
    if kind == "blur":
        put(value, "kernel", maybe(draw, st.sampled_from([2, 3, 5])))
        put(value, "padding", maybe(draw, st.sampled_from(["reflect", "zero"])))
    return value


def block_fields(draw: st.DrawFn, kind: str, p_absent: float = 0.6, spelling: str | None = None) -> dict[str, Any]:
    """Some of the fields of a ``kind`` block (without ``type``); its attention spelt ``se`` or ``attn``
    (``spelling``; either where None), since a block that inherits one may not add the other."""
    b: dict[str, Any] = {}
    if kind == "plain":
        put(b, "kernel", maybe(draw, st.integers(1, 5), p_absent))
        put(b, "stride_block", maybe(draw, st.sampled_from(["first", "last"]), p_absent))
        return b
    put(b, "expansion", maybe(draw, st.integers(1, 4), p_absent))
    if kind == "bottleneck":
        put(b, "groups", maybe(draw, st.sampled_from([1, 2, 4]), p_absent))
        put(b, "base_width", maybe(draw, st.sampled_from([4, 8, 16, 32, 64, 128]), p_absent))
        put(b, "width_factor", maybe(draw, st.sampled_from([0.5, 1.0, 1.5, 2.0]), p_absent))
        put(b, "stride_at", maybe(draw, st.sampled_from(["1x1", "3x3"]), p_absent))
    put(b, "preact", maybe(draw, st.booleans(), p_absent))
    put(b, "reduce_first", maybe(draw, st.sampled_from([1, 2]), 0.85))
    put(b, "stride_block", maybe(draw, st.sampled_from(["first", "last"]), p_absent))
    kind_of_shortcut = maybe(draw, SHORTCUTS, p_absent)
    if kind_of_shortcut is not None:
        b["shortcut"] = shortcut_value(draw, kind_of_shortcut)
    attention = draw(st.floats(0, 1))
    if spelling is None:
        spelling = "se" if attention < 0.2 else "attn"
    if attention < 0.35:
        b[spelling] = se_value(draw) if spelling == "se" else attention_value(draw)
    if draw(st.floats(0, 1)) < 0.15:
        b["anti_alias"] = anti_alias_value(draw)
    return b


BLOCK_DEFAULTS: dict[str, dict[str, Any]] = {
    "basic": {"expansion": 1, "shortcut": {"type": "conv"}, "stride_block": "first"},
    "bottleneck": {
        "expansion": 4,
        "shortcut": {"type": "conv"},
        "stride_block": "first",
        "groups": 1,
        "base_width": 64,
        "width_factor": 1.0,
    },
    "plain": {"stride_block": "first"},
}


def effective(block: dict[str, Any]) -> dict[str, Any]:
    """A normalized block with the README's defaults filled in."""
    out = merge(BLOCK_DEFAULTS[block["type"]], block)
    if "shortcut" in out and "type" not in out["shortcut"]:
        out["shortcut"] = {"type": "conv", **out["shortcut"]}
    return out


@st.composite
def valid_specs(draw: st.DrawFn) -> DrawnSpec:
    """A random, mostly valid spec: every language feature, tiny widths and inputs."""
    doc: dict[str, Any] = {}
    tweaks = draw(st.lists(st.sampled_from(["B", "C", "D"]), unique=True, max_size=3)) if draw(st.booleans()) else []
    m = draw(st.sampled_from([1.0] * 6 + [0.25, 0.5, 0.75, 1.25]))

    def scaled(width: int) -> int:
        return width if m == 1.0 else make_divisible(width * m)

    channels = draw(st.integers(1, 4))
    # A depth preset (8 blocks of widths 64..512) only scaled down, so decided before any width.
    preset = draw(st.sampled_from([None] * 30 + [18, 26]))
    if preset is not None:
        m = 0.125

    # -- stem ---------------------------------------------------------------------------------
    if "C" in tweaks:  # tweak C makes the stem deep; the file may only agree, or set the shared fields
        stem_kind = "deep"
        form = draw(st.sampled_from(["absent", "shorthand", "typed", "typeless"]))
    else:
        stem_kind = draw(st.sampled_from(["classic", "classic", "deep", "none"]))
        forms = ["absent", "shorthand", "typed", "typeless"] if stem_kind == "classic" else ["shorthand", "typed"]
        form = draw(st.sampled_from(forms))
    stem: dict[str, Any] = {}
    if form in ("typed", "typeless") and stem_kind != "none":
        if stem_kind == "classic":
            put(stem, "width", maybe(draw, st.integers(1, 24), 0.2))
            put(stem, "kernel", maybe(draw, st.integers(1, 7)))
            put(stem, "stride", maybe(draw, st.integers(1, 3)))
        elif form == "typed":  # a typeless mapping is classic; under tweak C only the shared fields are kept
            put(stem, "widths", maybe(draw, st.lists(st.integers(1, 24), min_size=2, max_size=4), 0.2))
            put(stem, "stride", maybe(draw, st.integers(1, 3)))
        put(stem, "pool", maybe(draw, st.sampled_from(["max", "conv", "none"])))
        put(stem, "pool_padding", maybe(draw, st.sampled_from(["neg_inf", "zero"]), 0.7))
        put(stem, "norm_act", maybe(draw, st.booleans(), 0.7))
        if draw(st.floats(0, 1)) < 0.15:
            stem["anti_alias"] = anti_alias_value(draw)
    if form == "shorthand":
        doc["stem"] = stem_kind
    elif form == "typed":
        doc["stem"] = {"type": stem_kind, **stem}
    elif form == "typeless":
        doc["stem"] = stem
    strides = 1
    stem_out: int | None = None
    cur = channels
    if stem_kind != "none":
        if stem_kind == "classic":
            stem_out = scaled(stem.get("width", 64))
        else:
            stem_out = scaled(stem.get("widths", [32, 32, 64])[-1])
        strides *= stem.get("stride", 2) * (2 if stem.get("pool", "max") != "none" else 1)
        cur = stem_out

    # -- the top-level block ------------------------------------------------------------------
    kind = draw(st.sampled_from(["basic", "bottleneck", "bottleneck", "plain"]))
    top = block_fields(draw, kind)
    if "B" in tweaks and top.get("stride_at") == "1x1":  # B means stride_at 3x3: no contradiction
        del top["stride_at"]
    if "D" in tweaks and "shortcut" in top:  # D means an avgpool shortcut
        top["shortcut"] = shortcut_value(draw, "avgpool")
    doc["block"] = kind if not top and draw(st.booleans()) else {"type": kind, **top}
    top_eff = normalized_block(doc["block"])
    if "B" in tweaks and kind == "bottleneck":
        top_eff["stride_at"] = "3x3"
    if "D" in tweaks and kind != "plain":
        top_eff["shortcut"] = {"type": "avgpool"}

    # -- stages ---------------------------------------------------------------------------------
    refused: list[str] = []
    if top_eff.get("anti_alias") is not None and top_eff.get("preact"):  # the top-level block is validated too
        refused.append(r"block(\.\w+)*")
    may_refuse: list[str] = []
    if "anti_alias" in stem:
        may_refuse.append(r"input\.size")
        if stem.get("pool", "max") == "none":  # nothing to anti-alias
            refused.append(r"stem(\.\w+)*")
    zero_mid = False
    all_preact = True  # every stage's block is pre-activation: a norm that is its own activation fits
    stage_channels: list[int] = []
    n_stages = draw(st.integers(1, 4))
    if preset is not None:
        doc["stages"] = preset
        stage_docs = [{"depth": 2, "width": w, "stride": 1 if i == 0 else 2} for i, w in enumerate((64, 128, 256, 512))]
    else:
        stage_docs = []
        for _ in range(n_stages):
            stage: dict[str, Any] = {"depth": draw(st.integers(1, 2)), "width": draw(st.integers(1, 24))}
            put(stage, "stride", maybe(draw, st.sampled_from([1, 1, 2, 2, 3]), 0.6))
            if draw(st.floats(0, 1)) < 0.3:
                stage["block"] = stage_override(draw, kind, "attn" if "attn" in top else "se")
            stage_docs.append(stage)
            if draw(st.booleans()):  # keys in any order
                stage_docs[-1] = dict(reversed(list(stage.items())))
        doc["stages"] = stage_docs
    for s, stage in enumerate(stage_docs):
        block = effective(merge(top_eff, normalized_block(stage["block"])) if "block" in stage else top_eff)
        width = scaled(stage["width"])
        stride = stage.get("stride", 1 if s == 0 else 2)
        strides *= stride
        at = 0 if block["stride_block"] == "first" else stage["depth"] - 1
        out = width if block["type"] == "plain" else width * block["expansion"]
        all_preact = all_preact and block["type"] != "plain" and bool(block.get("preact"))
        if block["type"] == "bottleneck":
            zero_mid |= int(width * block["base_width"] / 64 * block["width_factor"]) == 0
        if block.get("reduce_first", 1) > 1:  # the first conv's width may reach 0, or not split in groups
            may_refuse += [r"(stages\.\d+\.)?block\.reduce_first", r"(stages\.\d+\.)?block\.groups"]
        if block.get("anti_alias") is not None:
            may_refuse += [r"(stages\.\d+\.)?block\.anti_alias", r"input\.size"]
            if block.get("preact"):  # anti-aliasing follows a norm and act a pre-activation block lacks
                refused.append(r"(stages\.\d+\.)?block(\.\w+)*")
        for i in range(stage["depth"]):
            moves = (stride if i == at else 1) != 1 or cur != out
            if block["type"] != "plain" and block["shortcut"]["type"] == "identity" and moves:
                refused.append(r"(stages\.\d+\.)?block\.shortcut(\.type)?")
            if block["type"] != "plain" and block["shortcut"]["type"] == "zero_pad" and moves and out < cur:
                refused.append(r"(stages\.\d+\.)?block\.shortcut(\.type)?")  # zeros cannot remove channels
            cur = out
        stage_channels.append(out)
    if zero_mid:  # a bottleneck with no inner channel: int(width * base_width / 64 * width_factor) == 0
        refused.append(r"(stages\.\d+\.)?block(\.\w+)*|stages\.\d+\.width")

    # -- input: big enough for the strides, mostly ------------------------------------------------
    lo = min(max(strides, 8), 64)
    sizes = st.integers(lo, 64) if draw(st.floats(0, 1)) < 0.9 else st.integers(1, 64)
    h = draw(sizes)
    w = draw(sizes) if draw(st.floats(0, 1)) < 0.2 else h
    inp: dict[str, Any] = {"size": h if h == w and draw(st.booleans()) else [h, w]}
    if channels != 3 or draw(st.booleans()):
        inp["channels"] = channels
    doc["input"] = dict(reversed(list(inp.items()))) if draw(st.booleans()) else inp

    # -- everything else ---------------------------------------------------------------------------
    if m != 1.0:
        doc["width_multiplier"] = m
    if tweaks:
        doc["tweaks"] = tweaks
    head_kind = draw(st.sampled_from(["classifier", "classifier", "classifier", "features"]))
    classes: int | None = None
    if head_kind == "features":
        doc["head"] = draw(st.sampled_from(["features", {"type": "features"}]))
    else:
        head: dict[str, Any] = {}
        put(head, "pool", maybe(draw, st.sampled_from(["avg", "max"])))
        put(head, "dropout", maybe(draw, st.sampled_from([0.0, 0.2, 0.5])))
        put(head, "classes", maybe(draw, st.integers(1, 10), 0.1))
        put(head, "activation", maybe(draw, st.sampled_from(["none", "softmax"])))
        put(head, "fc", maybe(draw, st.sampled_from(["linear", "conv"]), 0.8))
        classes = head.get("classes", 1000)
        if head and draw(st.booleans()):
            head["type"] = "classifier"
        doc["head"] = head if head or draw(st.booleans()) else "classifier"
    norm: dict[str, Any] = {}
    put(norm, "eps", maybe(draw, st.sampled_from([1e-5, 1.001e-5, 1e-3, 0.1])))
    norm_kind = draw(st.sampled_from(["batch"] * 14 + ["group"] * 3 + ["frn", "evonorm_s0"]))
    if norm_kind in ("group", "evonorm_s0"):  # its groups must divide every norm's channels
        norm["type"] = norm_kind
        put(norm, "groups", maybe(draw, st.sampled_from([1, 1, 2, 4]), 0.2))
        may_refuse.append(r"norm\.groups")
    elif norm_kind == "frn":
        norm["type"] = "frn"
    else:
        put(norm, "momentum", maybe(draw, st.sampled_from([0.1, 0.01, 0.99, 1.0])))
        put(norm, "type", maybe(draw, st.just("batch"), 0.8))
    put(doc, "norm", norm or None)
    if norm_kind in ("frn", "evonorm_s0") and not all_preact:  # the norm replaces the act after each norm
        refused.append(r"norm\.type")
    put(doc, "naming", maybe(draw, st.sampled_from(["torchvision", "timm_resnetv2"]), 0.7))
    put(doc, "weight_std", maybe(draw, st.sampled_from([{}, {"eps": 1e-8}, {"eps": 1e-5}]), 0.8))
    if "weight_std" in doc:  # a conv of one weight per output channel (1x1 of one channel) has nothing to standardise
        may_refuse.append(r"weight_std")
    freeze: dict[str, Any] = {}
    put(freeze, "stages", maybe(draw, st.integers(0, 5)))
    put(freeze, "norm", maybe(draw, st.sampled_from(["train", "eval", "frozen"])))
    put(doc, "freeze", maybe(draw, st.just(freeze), 0.75))
    if "freeze" in doc and freeze.get("stages", 0) > len(stage_docs):
        refused.append(r"freeze\.stages")
    if "freeze" in doc and freeze.get("norm", "train") != "train" and norm_kind != "batch":
        refused.append(r"freeze\.norm")
    put(doc, "act", maybe(draw, st.sampled_from(ACTIVATIONS), 0.3))
    put(doc, "conv_bias", maybe(draw, st.sampled_from(["never", "always", "unnormed"])))
    drop: dict[str, Any] = {}
    put(drop, "rate", maybe(draw, st.sampled_from([0.0, 0.1, 0.5]) | st.floats(0, 0.99)))
    put(drop, "schedule", maybe(draw, st.sampled_from(["linear", "per_stage", "uniform"])))
    put(doc, "drop_path", maybe(draw, st.just(drop), 0.6))
    init: dict[str, Any] = {}
    put(init, "conv", maybe(draw, st.sampled_from(["kaiming_normal", "kaiming_uniform", "default"])))
    put(init, "mode", maybe(draw, st.sampled_from(["fan_out", "fan_in"])))
    put(init, "zero_init_last", maybe(draw, st.booleans()))
    put(doc, "init", maybe(draw, st.just(init), 0.6))
    put(doc, "name", maybe(draw, identifiers(), 0.7))
    put(doc, "description", maybe(draw, descriptions(), 0.6))

    # Key order is free; shuffle (stably, so that it shrinks) and pick a YAML style.
    keys = draw(st.permutations(list(doc)))
    doc = {k: doc[k] for k in keys}
    text = dump(doc, flow=draw(st.sampled_from([False, None, True])), unicode=draw(st.booleans()))
    if draw(st.booleans()):
        text = SCHEMA_LINE + text
    return DrawnSpec(
        doc=doc,
        text=text,
        input_shape=(channels, h, w),
        stem_channels=stem_out,
        stage_channels=tuple(stage_channels),
        classes=classes,
        refused=tuple(sorted(set(refused))),
        maybe_small=min(h, w) < strides,
        may_refuse=tuple(sorted(set(may_refuse))),
        notes={"strides": strides, "tweaks": tweaks},
    )


def stage_override(draw: st.DrawFn, top_kind: str, spelling: str = "se") -> Any:
    """A stage's ``block``: a few fields over the top-level block, a block of another type, or an attention
    removal (spelt as the top-level block spells it)."""
    what = draw(
        st.sampled_from(["patch", "patch", "retype", "se_null"] if top_kind != "plain" else ["patch", "retype"])
    )
    if what == "se_null":
        return {spelling: None}
    if what == "patch":
        patch = block_fields(draw, top_kind, p_absent=0.7, spelling=spelling)
        if draw(st.booleans()):
            patch["type"] = top_kind
        return patch
    kind = draw(st.sampled_from(sorted({"basic", "bottleneck", "plain"} - {top_kind})))
    fields = block_fields(draw, kind)
    return kind if not fields and draw(st.booleans()) else {"type": kind, **fields}


def identifiers() -> st.SearchStrategy[str]:
    """Names: any identifier, Python keywords and module names included."""
    return st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,63}", fullmatch=True) | st.sampled_from(
        ["class", "None", "import", "__init__", "_", "torch", "keras", "nn", "layers", "sys", "x" * 64]
    )


def descriptions() -> st.SearchStrategy[str]:
    """Free text with what breaks generated source: quotes, triple quotes, backslashes, braces."""
    nasty = st.sampled_from(
        ['"""', "'''", "\\", "\\n", "{{ ctx }}", "{% if %}", "\n", "\t", "\r", "# ", "\x00", "\x85"]
    )
    return st.lists(st.text(max_size=20) | nasty, max_size=8).map("".join).filter(lambda t: len(t) <= 2000)


# -- damage ------------------------------------------------------------------------------------

Path_ = tuple[Any, ...]


def paths(data: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path into nested dicts/lists (the root excluded)."""
    out: list[Path_] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out += paths(value, (*prefix, key))
    return out


def get(data: Any, path: Path_) -> Any:
    for p in path:
        data = data[p]
    return data


def replaced(data: Any, path: Path_, value: Any = ..., key: Any = ...) -> Any:
    """A copy of data with the item at path replaced by ``value``, renamed to ``key``, or deleted
    (both left out); dict order is kept."""
    head, rest = path[0], path[1:]
    if rest:
        child = replaced(data[head], rest, value, key)
        if isinstance(data, dict):
            return {k: child if k == head else v for k, v in data.items()}
        return [child if i == head else v for i, v in enumerate(data)]
    if isinstance(data, list):
        out = list(data)
        if value is ...:
            del out[head]
        else:
            out[head] = value
        return out
    new: dict[Any, Any] = {}
    for k, v in data.items():
        if k != head:
            new.setdefault(k, v)
        elif key is not ...:
            new.setdefault(key, v)
        elif value is not ...:
            new[k] = value
    return new


def hostile_values() -> st.SearchStrategy[Any]:
    """Values of the wrong type or range: what a typo or a bad merge puts in a spec."""
    scalars = st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64 + 1, 10**30, 10**400]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.5, -0.0, 1e-320, 1e308, 8.0, 2.5]),
        st.booleans(),
        st.none(),
        st.text(max_size=12),
        st.sampled_from(["", " ", "8", "0x10", "1e3", "nan", ".inf", "~", "null", "yes", "none", "max", "basic", "D"]),
        st.binary(max_size=8),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


def typo(key: str) -> st.SearchStrategy[str]:
    """Misspellings of a key: a character dropped, doubled or swapped, case changed, a suffix."""
    n = len(key)
    options = [key.upper(), key.title(), key + "s", key + "_", " " + key, key.replace("_", "-"), key.replace("_", "")]
    if n:
        options += [key[:i] + key[i + 1 :] for i in range(n)]
        options += [key[:i] + key[i] + key[i:] for i in range(n)]
        options += [key[:i] + key[i + 1] + key[i] + key[i + 2 :] for i in range(n - 1)]
    return st.sampled_from([o for o in options if o != key] or ["x"])


@st.composite
def structural_mutation(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """One edit of the spec's data: delete, rename, retype, nest deeply, add a key, move a subtree."""
    all_paths = paths(data)
    op = draw(st.sampled_from(["delete", "rename", "retype", "retype", "nest", "add", "copy", "extends"]))
    if op == "extends":
        target = draw(
            st.sampled_from(["resnet50.yaml", "resnet18.yaml", "fuzz_spec.yaml", "../specs/resnet50.yaml"])
            | st.sampled_from(["missing.yaml", "/etc/passwd", ".", "..", "", "a/../resnet18.yaml", "resnet50.yaml/"])
            | hostile_values()
        )
        return {"extends": target, **data}
    if not all_paths:
        return data
    path = draw(st.sampled_from(all_paths))
    key_paths = [p for p in all_paths if isinstance(get(data, p[:-1]), dict)]
    if op == "delete":
        return replaced(data, path)
    if op == "rename" and key_paths:
        path = draw(st.sampled_from(key_paths))
        new = draw(typo(str(path[-1])) | st.sampled_from(FIELD_NAMES) | st.text(max_size=8))
        return replaced(data, path, key=new)
    if op == "retype":
        return replaced(data, path, draw(hostile_values()))
    if op == "nest":
        levels = draw(st.integers(1, 40))
        value = get(data, path)
        for _ in range(levels):
            value = [value] if draw(st.booleans()) else {draw(st.sampled_from(["type", "a", str(path[-1])])): value}
        return replaced(data, path, value)
    if op == "add":
        parents = [()] + [p for p in all_paths if isinstance(get(data, p), dict)]
        parent = draw(st.sampled_from(parents))
        key = draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=8))
        value = draw(hostile_values())
        if not parent:
            return {**data, key: value}
        return replaced(data, parent, {**get(data, parent), key: value})
    source = draw(st.sampled_from(all_paths))  # copy: a real value in the wrong place
    return replaced(data, path, get(data, source))


# Fragments of YAML syntax (tags, anchors, merge keys, directives, control characters) dropped into the text.
# fmt: off
GARBAGE = [
    "{", "}", "[", "]", ":", ": :", "- ", "? ", "&a ", "*a", "&a [1] ", "!!python/object:os.system ", "!!binary ",
    "!!set ", "!!omap ", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!foo ",
    "%YAML 1.2\n", "---\n", "...\n", "|\n", ">-\n", "'", '"', "#", "\t", "\t\t", "<<: {}\n", "\ufeff", "\r",
    "\r\n", "\x00", "\x85", "\u2028", "\\", "@", "`", ",", "%", "~", "null", "stages: 50\n", "a: &x 1\nb: *x\n",
    "[" * 40, "{a: " * 40, "9" * 5000, "-0x1f", "1e999",
]
# fmt: on


@st.composite
def text_mutation(draw: st.DrawFn, raw: bytes) -> bytes:
    """One edit of the file's bytes: truncate, insert bytes or YAML syntax, tabs, duplicate/drop/swap lines."""
    op = draw(
        st.sampled_from(["truncate", "bytes", "garbage", "garbage", "tab", "dup_line", "drop_line", "swap", "indent"])
    )
    at = draw(st.integers(0, len(raw)))
    lines = raw.splitlines(keepends=True) or [b""]
    i = draw(st.integers(0, len(lines) - 1))
    if op == "truncate":
        return raw[:at]
    if op == "bytes":  # invalid UTF-8 included: lone continuation bytes, overlongs, surrogates
        junk = draw(
            st.binary(min_size=1, max_size=4) | st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80"])
        )
        return raw[:at] + junk + raw[at:]
    if op == "garbage":
        return raw[:at] + draw(st.sampled_from(GARBAGE)).encode() + raw[at:]
    if op == "tab":
        return (
            b"".join(lines[:i]) + re.sub(rb"^( *)", lambda g: g.group(1) + b"\t", lines[i]) + b"".join(lines[i + 1 :])
        )
    if op == "dup_line":  # duplicate keys, mostly
        return b"".join(lines[: i + 1]) + lines[i] + b"".join(lines[i + 1 :])
    if op == "drop_line":
        return b"".join(lines[:i] + lines[i + 1 :])
    if op == "swap" and len(lines) > 1:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)
    spaces = draw(st.sampled_from([b" ", b"  ", b"    "]))
    return b"".join(lines[:i]) + spaces + lines[i] + b"".join(lines[i + 1 :])


SAFE_NAME_CHARS = string.ascii_letters + string.digits + "_-. +"


@dataclass(frozen=True)
class Mutant:
    """Damaged spec files to write (over a copy of specs/), and the one to compile."""

    files: dict[str, bytes]
    target: str
    base: str  # where it came from, for the failure message
    overrides: tuple[str, ...] = ()  # --set FIELD=VALUE
    input_size: Any = None  # compile_spec(input_size=...), --input-size


@st.composite
def override_items(draw: st.DrawFn, data: Any) -> str:
    """One ``FIELD=VALUE``: a real, misspelt or impossible field path, a valid or hostile YAML value."""
    real = [".".join(map(str, p)) for p in paths(data)] or ["name"]
    field = draw(
        st.sampled_from(real)
        | st.sampled_from(real).flatmap(typo)
        | st.sampled_from(["stages.2.depth", "stages.99.width", "stages.-1.depth", "head.classes", "block.se"])
        | st.sampled_from(["", ".", "a..b", "stages.0.block.shortcut", "input.size.0", "name.x", "stem.widths.1"])
    )
    value = draw(
        st.sampled_from(["10", "null", "{ratio: 0.25}", "[1, 2]", "deep", "", "{", "]", "a: b", "!!int x", "&a 1"])
        | hostile_values().map(lambda v: dump(v, flow=True).strip().removesuffix("...").strip())
    )
    return draw(st.sampled_from([f"{field}={value}", f"{field}={value}", field, f"={value}"]))


@st.composite
def mutants(draw: st.DrawFn, shipped: dict[str, str], children: dict[str, list[str]]) -> Mutant:
    """A drawn valid spec or a shipped one, damaged 1-4 times (data edits first, then text edits).

    A damaged shipped spec may be compiled through one of its children (``extends``), so
    that errors in a parent are reported in the parent's file.
    """
    if draw(st.booleans()):
        drawn = draw(valid_specs())
        name, text, data = draw(file_names()), drawn.text, drawn.doc
    else:
        name = draw(st.sampled_from(sorted(shipped)))
        text, data = shipped[name], yaml.safe_load(shipped[name])
    n_struct = draw(st.integers(0, 2))
    for _ in range(n_struct):
        data = draw(structural_mutation(data))
    if n_struct:
        text = dump(data, flow=draw(st.sampled_from([False, None])))
    raw = text.encode()
    n_text = draw(st.integers(0 if n_struct else 1, 2))
    for _ in range(n_text):
        raw = draw(text_mutation(raw))
    target = name
    if children.get(name) and draw(st.booleans()):
        target = draw(st.sampled_from(children[name]))
    sets: tuple[str, ...] = ()
    if draw(st.floats(0, 1)) < 0.2:
        sets = tuple(draw(st.lists(override_items(data), min_size=1, max_size=3)))
    size = None
    if draw(st.floats(0, 1)) < 0.1:
        size = draw(
            st.integers(-2, 70)
            | st.sampled_from([0, 8192, 8193, 2**40])
            | st.tuples(st.integers(0, 64), st.integers(0, 64))
        )
    return Mutant({name: raw}, target, f"{name} ({n_struct} data edits, {n_text} text edits)", sets, size)


def file_names() -> st.SearchStrategy[str]:
    """File names: the stem becomes the spec's name, so not every one is a valid identifier."""
    stems = st.sampled_from(["fuzz_spec", "my-net", "9lives", "a b", "ünï", "x" * 100, "resnet"]) | st.text(
        SAFE_NAME_CHARS, min_size=1, max_size=20
    ).filter(lambda s: s not in (".", "..") and not s.startswith("."))
    return stems.map(lambda s: f"{s}.yaml")
