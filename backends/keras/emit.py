"""What the Keras templates need beyond the neutral context: a few filters (no keras import)."""

from __future__ import annotations

import re
from typing import assert_never

from archgen.codegen.emit import BlockClass, Context
from archgen.ir import (
    Act,
    AntiAliasDesign,
    AnyLayer,
    AvgPool,
    BlurPool,
    Conv,
    ConvSlot,
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


def keras_name(ir_name: str) -> str:
    """The Keras layer name of an IR layer: dots become underscores (layer1.0.conv1 -> layer1_0_conv1).

    Keras' PyTorch backend registers layers as torch modules, whose names cannot hold dots.
    """
    return ir_name.replace(".", "_")


def activation(fn: str) -> str:
    """A Keras 3 activation layer, named by the template's ``name``."""
    return f"layers.Activation({ACTIVATIONS[fn].keras}, name=name)"


def apply(layer: AnyLayer, network_act: str) -> str:
    """A statement applying one stem or head layer to ``x``."""
    name = f'"{keras_name(layer.name)}"'
    match layer:
        case Conv():
            return (
                f"x = conv(x, filters={layer.out_ch}, kernel={layer.kernel}, stride={layer.stride}, "
                f"groups={layer.groups}, bias={layer.bias}, name={name})"
            )
        case Norm() | GroupNorm() | NormAct():  # the file's norm() makes the network's kind
            return f"x = norm({name})(x)"
        case Act() if layer.fn == network_act:
            return f"x = act({name})(x)"
        case Act():
            return f"x = activation_{layer.fn}({name})(x)"
        case MaxPool():
            return (
                f"x = max_pool(x, kernel={layer.kernel}, stride={layer.stride}, padding={layer.padding}, "
                f'pad_value="{layer.pad_value}", name={name})'
            )
        case GlobalPool():
            kind = "Average" if layer.pool == "avg" else "Max"
            return f"x = layers.Global{kind}Pooling2D(name={name})(x)"
        case Dropout():
            return f"x = layers.Dropout({layer.rate!r}, name={name})(x)"
        case Linear():
            return f"x = layers.Dense(num_classes, name={name})(x)"
        case AvgPool(ceil_mode=False, pad_after=0) if layer.kernel == layer.stride:  # an anti-aliasing pool
            return f"x = layers.AveragePooling2D({layer.kernel}, {layer.stride}, name={name})(x)"
        case BlurPool():
            return f'x = BlurPool2D({layer.stride}, {layer.kernel}, "{layer.pad_mode}", name={name})(x)'
        case AvgPool() | DropPath() | ZeroPad():  # block layers: the block templates render them
            raise ValueError(f"no Keras statement for IR {layer.kind} layer {layer.name} in a stem or head")
        case _:
            assert_never(layer)


def block_params(block: BlockClass, ctx: Context) -> str:
    """A block function's parameters: the input, the arguments every block of its kind takes
    (``Context.block_args``), the dilations where some stage dilates, its name."""
    params = ["x", *(f"{name}: {kind}" for name, kind, _ in ctx.block_args(block.kind != "plain"))]
    params += ["dilation: int", "first_dilation: int"] if ctx.dilated else []
    return ", ".join([*params, "name: str"])


def block_conv(slot: ConvSlot, block: BlockClass, dilated: bool) -> str:
    """One conv of a block as a call of the file's ``conv`` helper: a plain block's takes its width
    and stride from the block's arguments and applies to ``x``, a residual branch's to ``out``."""
    if block.kind == "plain":
        source, dilation = "x", "first_dilation"
        args = [("filters", "out_chs"), ("kernel", slot.kernel), ("stride", "stride"), ("bias", slot.bias)]
    else:
        source, dilation = "out", "dilation" if slot.after_stride else "first_dilation"
        stride = "stride" if slot.strided and block.design.anti_alias is None else 1
        args = [("filters", slot.out_chs), ("kernel", slot.kernel), ("stride", stride), ("groups", slot.groups)]
        args.append(("bias", slot.bias))
    args += [("dilation", dilation)] if dilated else []
    args.append(("name", f'f"{{name}}_{block.design.naming.block_conv(slot.index)}"'))
    return f"conv({source}, {', '.join(f'{k}={v}' for k, v in args)})"


def conv_class(ctx: Context) -> str:
    """The layer class of the stem's, blocks' and shortcuts' convs: weight-standardised where the spec says so."""
    return "StdConv2D" if ctx.weight_std else "layers.Conv2D"


def std_eps_arg(ctx: Context) -> str:
    """The weight-standardised convs' eps as a keyword argument of their constructor (nothing for plain ones)."""
    return f", eps={ctx.weight_std!r}" if ctx.weight_std else ""


def frozen_layers(ctx: Context) -> tuple[list[str], list[str]]:
    """The Keras layers of the spec's frozen stem and stages: the stem's by name, a stage's by its blocks' prefix."""
    frozen = set(ctx.network.freeze.modules)
    stem = [keras_name(x.name) for x in ctx.network.stem if ctx.naming.group(x.name) in frozen]
    stages = [keras_name(s.name) + "_" for s in ctx.network.stages if s.name in frozen]
    return stem, stages


def anti_alias(design: AntiAliasDesign) -> str:
    """The Keras layer of a block's anti-aliasing (``aa``), taking the block's ``stride``."""
    match design.kind:
        case "avg":
            return 'layers.AveragePooling2D(stride, stride, name=f"{name}_aa")'
        case "blur":
            return f'BlurPool2D(stride, {design.kernel}, "{design.padding}", name=f"{{name}}_aa")'
        case _:
            assert_never(design.kind)


def snake(name: str) -> str:
    """Block class name to function name: PreActBottleneck -> preact_bottleneck."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.replace("PreAct", "Preact")).lower()


EMITTER = Emitter(
    "archgen.backends.keras",
    "model.py.j2",
    {
        "activation": activation,
        "apply": apply,
        "snake": snake,
        "block_params": block_params,
        "block_conv": block_conv,
        "anti_alias": anti_alias,
        "conv_class": conv_class,
        "std_eps_arg": std_eps_arg,
        "frozen_layers": frozen_layers,
    },
)
