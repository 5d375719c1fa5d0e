"""What the Keras templates need beyond the neutral context: a few filters."""

from __future__ import annotations

import re

from archgen.ir import Layer

TEMPLATE = "model.py.j2"

# Keras 3 activation for each spec activation.
ACTIVATIONS = {
    "relu": 'layers.Activation("relu", name=name)',
    "relu6": 'layers.Activation("relu6", name=name)',
    "silu": 'layers.Activation("silu", name=name)',
    # gelu and leaky_relu are written out: Keras' own compute them with float32 constants (tf.nn.gelu,
    # LeakyReLU's float32 slope), 1e-9 off in float64, where PyTorch's are exact.
    "gelu": "layers.Activation(lambda t: 0.5 * t * (1.0 + keras.ops.erf(t * 0.7071067811865476)), name=name)",
    "leaky_relu": "layers.Activation(lambda t: keras.ops.where(t >= 0, t, 0.01 * t), name=name)",
    "elu": 'layers.Activation("elu", name=name)',
    "mish": 'layers.Activation("mish", name=name)',
    "hardswish": 'layers.Activation("hard_silu", name=name)',
    "tanh": 'layers.Activation("tanh", name=name)',
    "sigmoid": 'layers.Activation("sigmoid", name=name)',
    "softmax": 'layers.Activation("softmax", name=name)',
}


def keras_name(ir_name: str) -> str:
    """The Keras layer name of an IR layer: dots become underscores (layer1.0.conv1 -> layer1_0_conv1).

    Keras' PyTorch backend registers layers as torch modules, whose names cannot hold dots.
    """
    return ir_name.replace(".", "_")


def activation(fn: str) -> str:
    return ACTIVATIONS[fn]


def apply(layer: Layer, network_act: str) -> str:
    """A statement applying one stem or head layer to ``x``."""
    a, name = layer.attrs, f'"{keras_name(layer.name)}"'
    match layer.op:
        case "conv":
            return f"x = conv(x, {a['out_ch']}, {a['kernel']}, {a['stride']}, {a['groups']}, {a['bias']}, {name})"
        case "norm":
            return f"x = norm({name})(x)"
        case "act" if a["fn"] == network_act:
            return f"x = act({name})(x)"
        case "act":
            return f"x = activation_{a['fn']}({name})(x)"
        case "max_pool":
            return f'x = max_pool(x, {a["kernel"]}, {a["stride"]}, {a["padding"]}, "{a["pad_value"]}", {name})'
        case "global_pool":
            kind = "Average" if a["kind"] == "avg" else "Max"
            return f"x = layers.Global{kind}Pooling2D(name={name})(x)"
        case "dropout":
            return f"x = layers.Dropout({a['rate']!r}, name={name})(x)"
        case "linear":
            return f"x = layers.Dense(num_classes, name={name})(x)"
    raise ValueError(f"no Keras statement for IR op '{layer.op}' ({layer.name})")


def extra_activations(layers: list[Layer], network_act: str) -> list[str]:
    """Activations other than the network's (SE gates are written inline)."""
    return sorted(
        {
            x.attrs["fn"]
            for x in layers
            if x.op == "act" and x.attrs["fn"] != network_act and not x.name.endswith("gate")
        }
    )


def snake(name: str) -> str:
    """Block class name to function name: PreActBottleneck -> preact_bottleneck."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.replace("PreAct", "Preact")).lower()


FILTERS = {
    "activation": activation,
    "apply": apply,
    "extra_activations": extra_activations,
    "snake": snake,
}
