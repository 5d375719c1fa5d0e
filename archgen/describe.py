"""What people are told a layer or a part is: the words of summary's rows, graph's labels and diff's aspects.

One module, read by every report, so that a new kind of layer or part is described once, and the type
checker (each ``match`` ends in ``assert_never``) points here when a kind has no words yet.
"""

from __future__ import annotations

from typing import assert_never

from .ir import (
    Act,
    AnyLayer,
    Attention,
    AvgPool,
    Conv,
    Dropout,
    DropPath,
    GlobalPool,
    Linear,
    MaxPool,
    Network,
    Norm,
    StemConvs,
    StemPool,
)

# The PyTorch class of each activation the IR names (as the torch backend builds it).
ACT_CLASSES = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "silu": "SiLU",
    "gelu": "GELU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "mish": "Mish",
    "hardswish": "Hardswish",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "softmax": "Softmax",
}


def rate_text(rate: float) -> str:
    return f"{rate:.4g}"


def kernel_text(layer: Conv | MaxPool | AvgPool) -> str:
    """``3x3/2``: kernel, and stride where it is not 1."""
    return f"{layer.kernel}x{layer.kernel}" + (f"/{layer.stride}" if layer.stride != 1 else "")


def op_text(layer: AnyLayer) -> str:
    """What a layer does, in PyTorch's words (summary's rows): ``Conv2d 3x3/2`` (kernel, then stride
    where it is not 1; ``g32`` groups, ``d2`` dilation, ``+bias``), ``BatchNorm2d``, ``ReLU``, ..."""
    match layer:
        case Conv():
            text = f"Conv2d {layer.kernel}x{layer.kernel}" + (f"/{layer.stride}" if layer.stride != 1 else "")
            text += f" g{layer.groups}" if layer.groups != 1 else ""
            text += f" d{layer.dilation}" if layer.dilation != 1 else ""
            return text + (" +bias" if layer.bias else "")
        case Norm():
            return "BatchNorm2d"
        case Act():
            return ACT_CLASSES.get(layer.fn, layer.fn)
        case MaxPool():
            pad = " zero-padded" if layer.pad_value == "zero" and layer.padding else ""
            return f"MaxPool2d {layer.kernel}x{layer.kernel}/{layer.stride}{pad}"
        case AvgPool() if layer.pad_after:
            return f"AvgPool2d {layer.kernel}x{layer.kernel} same"
        case AvgPool():
            return f"AvgPool2d {layer.kernel}x{layer.kernel}/{layer.stride} ceil"
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
            return ", ".join([f"conv {kernel_text(layer)} {layer.in_ch}→{layer.out_ch}", *extra])
        case Norm():
            return "bn"
        case Act():
            return layer.fn
        case MaxPool():
            return f"max pool {kernel_text(layer)}"
        case AvgPool():
            return f"avg pool {kernel_text(layer)}" + (" (same)" if layer.pad_after else "")
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
def attention_short(part: Attention) -> str:
    """The attention's abbreviation, prefixed to its layers' rows (``SE: Conv2d 1x1 +bias``)."""
    return "SE"


def attention_title(part: Attention) -> str:
    """The attention's name in a diagram's node."""
    return "squeeze-excitation"


def attention_op(part: Attention, layer: AnyLayer) -> str:
    """A summary row's words for a layer of an attention part: its gate, or one of its steps."""
    if layer is part.gate:
        return f"{attention_short(part)} gate: {op_text(layer)}"
    return f"{attention_short(part)}: {op_text(layer)}"


def attention_scale(part: Attention) -> str:
    """The summary row of the step that scales the branch by the gate (no module of its own)."""
    return f"{attention_short(part)}: x * gate"


def attention_detail(part: Attention) -> str:
    """The attention's layers in one line of a diagram."""
    convs = part.of(Conv)
    acts = [x.fn for x in part.of(Act)]
    widths = "→".join([str(convs[0].in_ch)] + [str(c.out_ch) for c in convs]) if convs else ""
    return f"avg pool, 1x1 {widths}, {', '.join(acts)}, ×"


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


def stem_pool(network: Network) -> str:
    part = network.stem_part(StemPool)
    if part is None:
        return "none"
    if part.kind == "conv":
        return "conv (ResNet-RS)"
    pool = part.of(MaxPool)[0]
    return "max" if pool.pad_value == "neg_inf" else "max (zero padding)"
