"""Which reference model each spec reproduces, and how to build it.

Every constructor builds the reference library's own model with random init
(no download). Libraries are imported inside the constructors so that
collecting the tests imports no framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TorchRef:
    """A PyTorch reference: ``library`` builds model ``name``; spec ``spec`` should equal it."""

    library: str  # torchvision | timm | fastai
    name: str
    spec: str

    @property
    def id(self) -> str:
        return f"{self.library}.{self.name}-vs-{self.spec}"

    @property
    def same_keys(self) -> bool:
        """Whether its state_dict uses torchvision/timm module names (fastai's does not)."""
        return self.library != "fastai"

    def build(self) -> Any:
        if self.library == "torchvision":
            import torchvision.models

            return getattr(torchvision.models, self.name)(weights=None)
        if self.library == "timm":
            import timm

            return timm.create_model(self.name, pretrained=False)
        if self.library == "fastai":
            from fastai.vision.models import xresnet

            return getattr(xresnet, self.name)()
        raise ValueError(f"unknown reference library {self.library!r}")


_TORCHVISION = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]
_TIMM_SAME_NAME = [
    "resnet50c",
    "resnet50d",
    "resnet101d",
    "seresnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    *(f"resnetrs{d}" for d in (50, 101, 152, 200, 270, 350, 420)),
]
_XRESNET_DEPTHS = (18, 34, 50, 101, 152)

TORCH_REFS: list[TorchRef] = [
    *(TorchRef("torchvision", n, n) for n in _TORCHVISION),
    *(TorchRef("timm", n, n) for n in _TIMM_SAME_NAME),
    # timm's ResNet-D family has fastai's xresnet layout (deep stem, avg-pool shortcut).
    *(TorchRef("timm", f"resnet{d}d", f"xresnet{d}") for d in _XRESNET_DEPTHS),
    *(TorchRef("fastai", f"xresnet{d}", f"xresnet{d}") for d in _XRESNET_DEPTHS),
]

# keras.applications (Keras 3) class -> spec.
KERAS_APPS: list[tuple[str, str]] = [
    ("ResNet50", "keras_resnet50"),
    ("ResNet101", "keras_resnet101"),
    ("ResNet152", "keras_resnet152"),
    ("ResNet50V2", "resnet50v2"),
    ("ResNet101V2", "resnet101v2"),
    ("ResNet152V2", "resnet152v2"),
]

# tf_keras.applications class -> spec.
TF_KERAS_APPS: list[tuple[str, str]] = [(f"ResNetRS{d}", f"resnetrs{d}") for d in (50, 101, 152, 200, 270, 350, 420)]

# torchvision builders whose weight enums carry the published GFLOPs ("_ops") and parameter count.
TORCHVISION_FLOPS: list[str] = _TORCHVISION
