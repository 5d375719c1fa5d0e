"""What the PyTorch templates need beyond the neutral context: a few filters."""

from __future__ import annotations

from archgen.ir import Layer

TEMPLATE = "model.py.j2"

ACTIVATIONS = {
    "relu": "nn.ReLU(inplace=True)",
    "relu6": "nn.ReLU6(inplace=True)",
    "silu": "nn.SiLU(inplace=True)",
    "gelu": "nn.GELU()",
    "leaky_relu": "nn.LeakyReLU(0.01, inplace=True)",
    "elu": "nn.ELU(inplace=True)",
    "mish": "nn.Mish(inplace=True)",
    "hardswish": "nn.Hardswish(inplace=True)",
    "tanh": "nn.Tanh()",
    "sigmoid": "nn.Sigmoid()",
    "softmax": "nn.Softmax(dim=1)",
}


def activation(fn: str) -> str:
    return ACTIVATIONS[fn]


def conv_args(
    in_chs: object, out_chs: object, kernel: int, stride: object = 1, groups: int = 1, bias: bool = False
) -> str:
    """Arguments of nn.Conv2d with 'same' padding, defaults left out."""
    args = [str(in_chs), str(out_chs), str(kernel)]
    if stride != 1:
        args.append(f"stride={stride}")
    if kernel // 2:
        args.append(f"padding={kernel // 2}")
    if groups != 1:
        args.append(f"groups={groups}")
    args.append(f"bias={bias}")
    return ", ".join(args)


def module(layer: Layer, network_act: str) -> str:
    """Constructor expression for a stem or head layer."""
    a = layer.attrs
    match layer.op:
        case "conv":
            return f"nn.Conv2d({conv_args(a['in_ch'], a['out_ch'], a['kernel'], a['stride'], a['groups'], a['bias'])})"
        case "norm":
            return f"norm({a['channels']})"
        case "act":
            return "act()" if a["fn"] == network_act else ACTIVATIONS[a["fn"]]
        case "max_pool" if a.get("pad_value") == "zero" and a["padding"]:
            return f"nn.Sequential(nn.ZeroPad2d({a['padding']}), nn.MaxPool2d({a['kernel']}, {a['stride']}))"
        case "max_pool":
            return f"nn.MaxPool2d({a['kernel']}, stride={a['stride']}, padding={a['padding']})"
        case "global_pool":
            return "nn.AdaptiveAvgPool2d(1)" if a["kind"] == "avg" else "nn.AdaptiveMaxPool2d(1)"
        case "dropout":
            return f"nn.Dropout({a['rate']!r})"
        case "linear":
            return f"nn.Linear({a['in_features']}, num_classes)"
    raise ValueError(f"no PyTorch expression for IR op '{layer.op}' ({layer.name})")


FILTERS = {"activation": activation, "module": module, "conv_args": conv_args}
