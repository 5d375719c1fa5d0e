"""What the PyTorch templates need beyond the neutral context: a few filters (no torch import)."""

from __future__ import annotations

from typing import assert_never

from archgen.codegen.emit import Context
from archgen.ir import (
    Act,
    AntiAliasDesign,
    AnyLayer,
    AvgPool,
    BlurPool,
    Conv,
    Dropout,
    DropPath,
    GlobalPool,
    GroupNorm,
    Linear,
    MaxPool,
    Norm,
    NormAct,
    ZeroPad,
)
from archgen.language.activations import ACTIVATIONS
from archgen.registry import Emitter


def activation(fn: str) -> str:
    return ACTIVATIONS[fn].torch


def conv_args(
    in_chs: object,
    out_chs: object,
    kernel: int,
    stride: object = 1,
    groups: int = 1,
    bias: bool = False,
    dilation: object = 1,
) -> str:
    """Arguments of nn.Conv2d with 'same' padding, defaults left out; ``dilation`` a number or the
    name of the block argument that holds it."""
    args = [str(in_chs), str(out_chs), str(kernel)]
    if stride != 1:
        args.append(f"stride={stride}")
    half = kernel // 2
    if half and dilation == 1:
        args.append(f"padding={half}")
    elif half:
        args.append(f"padding={dilation if half == 1 else f'{half} * {dilation}'}")
        args.append(f"dilation={dilation}")
    if groups != 1:
        args.append(f"groups={groups}")
    args.append(f"bias={bias}")
    return ", ".join(args)


def module(layer: AnyLayer, network_act: str) -> str:
    """Constructor expression for a stem or head layer."""
    match layer:
        case Conv():
            args = conv_args(
                layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.groups, layer.bias, layer.dilation
            )
            return f"{'StdConv2d' if layer.std_eps else 'nn.Conv2d'}({args})"
        case Norm() | GroupNorm() | NormAct():  # the file's norm() makes the network's kind
            return f"norm({layer.channels})"
        case Act():
            return "act()" if layer.fn == network_act else ACTIVATIONS[layer.fn].torch
        case MaxPool(pad_value="zero") if layer.padding:
            return f"nn.Sequential(nn.ZeroPad2d({layer.padding}), nn.MaxPool2d({layer.kernel}, {layer.stride}))"
        case MaxPool():
            return f"nn.MaxPool2d({layer.kernel}, stride={layer.stride}, padding={layer.padding})"
        case GlobalPool():
            return f'GlobalPool("{layer.pool}")'
        case Dropout():
            return f"nn.Dropout({layer.rate!r})"
        case Linear():
            return f"{'PointwiseLinear' if layer.conv else 'nn.Linear'}({layer.in_features}, num_classes)"
        case AvgPool(ceil_mode=False, pad_after=0) if layer.kernel == layer.stride:  # an anti-aliasing pool
            return f"nn.AvgPool2d({layer.kernel})"
        case BlurPool():
            return f'BlurPool2d({layer.channels}, {layer.stride}, {layer.kernel}, "{layer.pad_mode}")'
        case AvgPool() | DropPath() | ZeroPad():  # block layers: the block templates render them
            raise ValueError(f"no PyTorch expression for IR {layer.kind} layer {layer.name} in a stem or head")
        case _:
            assert_never(layer)


def conv_class(ctx: Context) -> str:
    """The class of the stem's, blocks' and shortcuts' convs: weight-standardised where the spec says so."""
    return "StdConv2d" if ctx.weight_std else "nn.Conv2d"


def anti_alias(design: AntiAliasDesign, channels: str, stride: str) -> str:
    """Constructor expression of a block's anti-aliasing module ``aa`` on ``channels``, taking ``stride``."""
    match design.kind:
        case "avg":
            return f"nn.AvgPool2d({stride})"
        case "blur":
            return f'BlurPool2d({channels}, {stride}, {design.kernel}, "{design.padding}")'
        case _:
            assert_never(design.kind)


EMITTER = Emitter(
    "archgen.backends.torch",
    "model.py.j2",
    {
        "activation": activation,
        "module": module,
        "conv_args": conv_args,
        "anti_alias": anti_alias,
        "conv_class": conv_class,
    },
)
