"""What people are told a layer or a part is: the words of summary's rows, graph's labels and diff's aspects.

One module, read by every report, so that a new kind of layer or part is described once, and the type
checker (each ``match`` ends in ``assert_never``) points here when a kind has no words yet.
"""

from __future__ import annotations

from typing import assert_never

from .ir import (
    Act,
    AntiAliasDesign,
    AnyLayer,
    Attention,
    AttentionDesign,
    AvgPool,
    BlurPool,
    Conv,
    Dropout,
    DropPath,
    EcaDesign,
    GlobalPool,
    GroupNorm,
    Linear,
    MaxPool,
    Network,
    Norm,
    NormAct,
    SEDesign,
    StemConvs,
    StemPool,
    ZeroPad,
)
from .language.activations import ACTIVATIONS


def rate_text(rate: float) -> str:
    return f"{rate:.4g}"


def kernel_text(layer: Conv | MaxPool | AvgPool | BlurPool) -> str:
    """``3x3/2``: kernel, and stride where it is not 1 (``5`` for a 1-D conv's)."""
    dims = layer.dims if isinstance(layer, Conv) else 2
    return "x".join([str(layer.kernel)] * dims) + (f"/{layer.stride}" if layer.stride != 1 else "")


def op_text(layer: AnyLayer) -> str:
    """What a layer does, in PyTorch's words (summary's rows): ``Conv2d 3x3/2`` (kernel, then stride
    where it is not 1; ``g32`` groups, ``d2`` dilation, ``+bias``), ``BatchNorm2d``, ``ReLU``, ..."""
    match layer:
        case Conv():
            text = f"{'Std' if layer.std_eps else ''}Conv{layer.dims}d {kernel_text(layer)}"
            text += f" g{layer.groups}" if layer.groups != 1 else ""
            text += f" d{layer.dilation}" if layer.dilation != 1 else ""
            return text + (" +bias" if layer.bias else "")
        case Norm():
            return "BatchNorm2d"
        case GroupNorm():
            return f"GroupNorm {layer.groups}"
        case NormAct(fn="frn"):
            return "FilterResponseNorm+TLU"
        case NormAct():
            return f"EvoNormS0 {layer.groups}"
        case ZeroPad():
            return f"ZeroPad /{layer.stride} +{layer.out_ch - layer.in_ch} ch"
        case Act():
            return ACTIVATIONS[layer.fn].torch_class
        case MaxPool():
            pad = " zero-padded" if layer.pad_value == "zero" and layer.padding else ""
            return f"MaxPool2d {layer.kernel}x{layer.kernel}/{layer.stride}{pad}"
        case AvgPool() if layer.pad_after:
            return f"AvgPool2d {layer.kernel}x{layer.kernel} same"
        case AvgPool():
            return f"AvgPool2d {layer.kernel}x{layer.kernel}/{layer.stride}" + (" ceil" if layer.ceil_mode else "")
        case BlurPool():
            pad = " zero-padded" if layer.pad_mode == "zero" else ""
            return f"BlurPool2d {layer.kernel}x{layer.kernel}/{layer.stride}{pad}"
        case GlobalPool():
            return f"GlobalPool {layer.pool}"
        case Dropout():
            return f"Dropout {rate_text(layer.rate)}"
        case DropPath():
            return f"DropPath {rate_text(layer.rate)}"
        case Linear():
            return "Linear" + ("" if layer.bias else " (no bias)")
        case _:
            assert_never(layer)


def layer_text(layer: AnyLayer) -> str:
    """One layer as a diagram names it: ``conv 3x3/2 64→128, 32 groups``, ``bn``, ``relu``."""
    match layer:
        case Conv():
            extra = [f"{layer.groups} groups"] if layer.groups > 1 else []
            extra += [f"dilation {layer.dilation}"] if layer.dilation > 1 else []
            extra += ["bias"] if layer.bias else []
            std = "std " if layer.std_eps else ""  # weight-standardised
            return ", ".join([f"{std}conv {kernel_text(layer)} {layer.in_ch}→{layer.out_ch}", *extra])
        case Norm():
            return "bn"
        case GroupNorm():
            return f"gn {layer.groups}"
        case NormAct(fn="frn"):
            return "frn + tlu"
        case NormAct():
            return f"evonorm-s0 {layer.groups}"
        case ZeroPad():
            return f"subsample /{layer.stride}, zero channels {layer.in_ch}→{layer.out_ch}"
        case Act():
            return layer.fn
        case MaxPool():
            return f"max pool {kernel_text(layer)}"
        case AvgPool():
            return f"avg pool {kernel_text(layer)}" + (" (same)" if layer.pad_after else "")
        case BlurPool():
            return f"blur pool {kernel_text(layer)}"
        case GlobalPool():
            return f"global {layer.pool} pool"
        case Dropout():
            return f"dropout {layer.rate:g}"
        case DropPath():
            return f"drop path {layer.rate:.3g}"
        case Linear():
            return f"fc {layer.in_features}→{layer.out_features}"
        case _:
            assert_never(layer)


# -- attention --------------------------------------------------------------------------------------------------
def attention_short(design: AttentionDesign) -> str:
    """The attention's abbreviation: prefixed to its layers' rows (``SE: Conv2d 1x1 +bias``), and diff's
    aspect (``SE ratio``)."""
    match design:
        case SEDesign():
            return "SE"
        case EcaDesign():
            return "ECA"
        case _:
            assert_never(design)


def attention_title(design: AttentionDesign) -> str:
    """The attention's name in a diagram's node and a block's docstring."""
    match design:
        case SEDesign():
            return "squeeze-excitation"
        case EcaDesign():
            return "efficient channel attention"
        case _:
            assert_never(design)


def attention_fields(design: AttentionDesign) -> dict[str, str]:
    """The attention's options as diff compares them, in the words of the spec."""
    match design:
        case SEDesign():
            return {
                "ratio": repr(design.ratio),
                "divisor": str(design.divisor),
                "rounding": design.rounding,
                "bias": "yes" if design.bias else "no",
                "activation": design.act,
            }
        case EcaDesign():
            kernel = "adaptive" if design.kernel is None else str(design.kernel)
            return {"kernel": kernel, "gamma": str(design.gamma), "beta": str(design.beta)}
        case _:
            assert_never(design)


def attention_sentence(design: AttentionDesign) -> str:
    """The attention as diff names it where one network has it and the other not: the first option,
    then whatever is not timm's default."""
    fields = attention_fields(design)
    match design:
        case SEDesign():  # timm's defaults: divisor 8, nearest, bias, relu
            usual = {"divisor": "8", "rounding": "nearest", "bias": "yes", "activation": "relu"}
        case EcaDesign():  # ECA-Net's
            usual = {"gamma": "2", "beta": "1"}
        case _:
            assert_never(design)
    first = next(iter(fields))
    extra = [f"{k} {v}" for k, v in fields.items() if k != first and usual.get(k) != v]
    return ", ".join([f"{first} {fields[first]}", *extra])


def attention_stage_line(part: Attention, channels: int) -> str:
    """A stage node's line for its blocks' attention (the first block's part)."""
    design = part.design
    match design:
        case SEDesign():
            reduced = part.of(Conv)[0].out_ch
            return f"SE ratio {design.ratio:g} ({channels}→{reduced}→{channels})"
        case EcaDesign():
            kernel = part.of(Conv)[0].kernel
            return f"ECA, 1-D conv {kernel} across {channels} channels" + (
                " (adaptive)" if design.kernel is None else ""
            )
        case _:
            assert_never(design)


def attention_op(part: Attention, layer: AnyLayer) -> str:
    """A summary row's words for a layer of an attention part: its gate, or one of its steps."""
    short = attention_short(part.design)
    if layer is part.gate:
        return f"{short} gate: {op_text(layer)}"
    return f"{short}: {op_text(layer)}"


def attention_scale(part: Attention) -> str:
    """The summary row of the step that scales the branch by the gate (no module of its own)."""
    return f"{attention_short(part.design)}: x * gate"


def attention_detail(part: Attention) -> str:
    """The attention's layers in one line of a diagram."""
    design = part.design
    match design:
        case SEDesign():
            convs = part.of(Conv)
            acts = [x.fn for x in part.of(Act)]
            widths = "→".join([str(convs[0].in_ch)] + [str(c.out_ch) for c in convs])
            return f"avg pool, 1x1 {widths}, {', '.join(acts)}, ×"
        case EcaDesign():
            conv = part.of(Conv)[0]
            return f"avg pool, 1-D conv {conv.kernel} across {conv.out_shape[-1]} channels, sigmoid, ×"
        case _:
            assert_never(design)


# -- the stem ---------------------------------------------------------------------------------------------------
def stem_kind(network: Network) -> str:
    """classic (described where it is not torchvision's 7x7/2, 64), deep with its widths, or none."""
    part = network.stem_part(StemConvs)
    if part is None:
        return "none"
    convs = part.of(Conv)
    first = convs[0]
    if part.kind == "classic":
        if (first.kernel, first.stride, first.out_ch) == (7, 2, 64):
            return "classic"
        return f"classic ({first.kernel}x{first.kernel}/{first.stride}, {first.out_ch})"
    widths = "-".join(str(c.out_ch) for c in convs)
    return f"deep ({widths})" if first.stride == 2 else f"deep ({widths}, stride {first.stride})"


def anti_alias_text(design: AntiAliasDesign | None) -> str:
    """A block's anti-aliasing in a few words (diff's aspect): ``avg pool``, ``blur pool 3x3``, ``none``."""
    if design is None:
        return "none"
    match design.kind:
        case "avg":
            return "avg pool"
        case "blur":
            pad = ", zero-padded" if design.padding == "zero" else ""
            return f"blur pool {design.kernel}x{design.kernel}{pad}"
        case _:
            assert_never(design.kind)


def stem_pool(network: Network) -> str:
    part = network.stem_part(StemPool)
    if part is None:
        return "none"
    # Anti-aliasing: the layer after the pool's conv or stride-1 max pool, or the average pool itself.
    aa = [layer_text(x) for x in part.layers if isinstance(x, AvgPool | BlurPool)]
    anti_aliased = f", anti-aliased by {aa[0]}" if aa else ""
    match part.kind:
        case "conv":
            return f"conv (ResNet-RS){anti_aliased}"
        case "avg":
            return "avg 2x2 (anti-aliased, instead of the max pool)"
        case "max":
            pool = part.of(MaxPool)[0]
            return ("max" if pool.pad_value == "neg_inf" else "max (zero padding)") + anti_aliased
        case _:
            assert_never(part.kind)
