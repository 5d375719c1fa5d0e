"""Every activation archgen knows, once: its name in a spec and the IR, and how each backend writes it.

The spec language's ``Activation`` names those a network may choose (spec.py checks it against this
table); ``sigmoid`` (attention gates) and ``softmax`` (keras.applications' heads) are the IR's own.
The backends' emitters and the reports (summary's PyTorch class names) read this table; nothing else
lists activations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActivationFn:
    name: str
    torch: str  # the PyTorch module the torch backend builds
    keras: str  # the first argument of keras.layers.Activation: a built-in's name, or archgen's function
    chosen: bool = True  # a network (or an SE) may choose it; False: only the IR places it
    note: str = ""  # said after its name in the spec's description

    @property
    def torch_class(self) -> str:
        """The PyTorch class name (``ReLU`` of ``nn.ReLU(inplace=True)``)."""
        return self.torch.removeprefix("nn.").split("(")[0]


ACTIVATIONS: dict[str, ActivationFn] = {
    a.name: a
    for a in (
        ActivationFn("relu", "nn.ReLU(inplace=True)", '"relu"'),
        ActivationFn("relu6", "nn.ReLU6(inplace=True)", '"relu6"'),
        ActivationFn("silu", "nn.SiLU(inplace=True)", '"silu"'),
        # gelu and leaky_relu are archgen's in Keras (templates/objects.py.j2): Keras' own compute them with
        # float32 constants (tf.nn.gelu, LeakyReLU's float32 slope), 1e-9 off in float64, where PyTorch's
        # are exact.
        ActivationFn("gelu", "nn.GELU()", "exact_gelu"),
        ActivationFn("leaky_relu", "nn.LeakyReLU(0.01, inplace=True)", "leaky_relu", note="slope 0.01"),
        ActivationFn("elu", "nn.ELU(inplace=True)", '"elu"'),
        ActivationFn("mish", "nn.Mish(inplace=True)", '"mish"'),
        ActivationFn("hardswish", "nn.Hardswish(inplace=True)", '"hard_silu"'),
        ActivationFn("tanh", "nn.Tanh()", '"tanh"'),
        ActivationFn("sigmoid", "nn.Sigmoid()", '"sigmoid"', chosen=False),
        # where a norm is its own activation (frn, evonorm_s0), the activation after it is this
        ActivationFn("identity", "nn.Identity()", '"linear"', chosen=False),
        ActivationFn("softmax", "nn.Softmax(dim=1)", '"softmax"', chosen=False),
    )
}

CHOSEN = tuple(a.name for a in ACTIVATIONS.values() if a.chosen)


def chosen_text(notes: bool = False) -> str:
    """The activations a spec may choose, as a sentence's list: ``relu, relu6, ... or tanh``."""
    names = [f"{a.name} ({a.note})" if notes and a.note else a.name for a in ACTIVATIONS.values() if a.chosen]
    return ", ".join(names[:-1]) + f" or {names[-1]}"
