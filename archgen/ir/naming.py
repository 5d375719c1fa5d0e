"""Module names: how a reference implementation names each layer, so its checkpoints load unchanged.

A ``Naming`` is data: the resolver names every layer through it, and the templates and the fuse pass
read a block's local names from it; nothing else spells a module name. Two schemes exist:

- ``torchvision``: torchvision's ResNet, which timm's ``resnet.py`` follows (``conv1``/``bn1``/``act1``/
  ``maxpool``, stages ``layer1..``, blocks ``conv1, bn1, act1, ...``, shortcut ``downsample.0..``, head
  ``global_pool``/``fc``);
- ``timm_resnetv2``: timm's ``resnetv2.py`` (``stem.conv``/``stem.norm``/``stem.pool``, stages
  ``stages.0.blocks.0``, blocks ``conv1, norm1, ...``, shortcut ``downsample.pool``/``downsample.conv``,
  final ``norm``, head ``head.global_pool``/``head.fc``).

Parameter-free layers (activations, pools) need a module too; where the reference keeps them inside
another module (timm's norm-act layers), they get a name beside it (``act1`` beside ``norm1``): no
checkpoint holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ShortcutRole = Literal["pool", "conv", "norm"]


@dataclass(frozen=True)
class Naming:
    scheme: str
    stem: str  # the stem's container ("" : the model itself)
    stem_conv: str  # a classic stem's conv
    stem_norm: str  # the norm and act after the stem's last conv
    stem_act: str
    # A deep stem's convs: "sequential", one nn.Sequential named stem_conv (positions 0, 1, 2, ...) with
    # the last norm and act outside it (timm's resnet.py); "numbered", conv1, norm1, act1, conv2, ...
    deep_stem: Literal["sequential", "numbered"]
    stem_pool: str
    stage: str  # a stage's module, of ``{index}`` (from 0) and ``{number}`` (from 1)
    stage_container: str  # the module holding the stages in order ("" : the model itself)
    blocks: str  # the stage's blocks' container under it ("" : the stage itself)
    conv: str  # a block's convs, norms and acts, of ``{index}`` (from 1)
    norm: str
    act: str
    shortcut: str
    shortcut_parts: Literal["index", "role"]  # downsample.0/.1/.2 by position, or .pool/.conv/.norm
    final_norm: str  # a pre-activation network's norm and act after its last block
    final_act: str
    head: str  # the classifier's container ("" : the model itself)
    global_pool: str
    dropout: str
    fc: str
    softmax: str

    # -- the stem ---------------------------------------------------------------------------------------
    def in_stem(self, local: str) -> str:
        return self.stem + local

    def deep_stem_layer(self, role: Literal["conv", "norm", "act"], number: int, width: int) -> str:
        """The ``number``-th (from 1) conv of a deep stem of ``width`` convs, or the norm / act after it."""
        if self.deep_stem == "numbered":
            local = {"conv": self.conv, "norm": self.norm, "act": self.act}[role].format(index=number)
            return self.in_stem(local)
        if role != "conv" and number == width:  # after the last conv: outside the Sequential
            return self.in_stem(self.stem_norm if role == "norm" else self.stem_act)
        position = 3 * (number - 1) + ("conv", "norm", "act").index(role)
        return self.in_stem(f"{self.stem_conv}.{position}")

    def stem_pool_layer(self, position: int | None = None) -> str:
        """The stem's pool, or the ``position``-th layer of a pool made of several."""
        base = self.in_stem(self.stem_pool)
        return base if position is None else f"{base}.{position}"

    # -- stages and blocks -----------------------------------------------------------------------------
    def stage_name(self, index: int) -> str:
        return self.stage.format(index=index, number=index + 1)

    def block_name(self, stage: str, index: int) -> str:
        return f"{stage}.{self.blocks}.{index}" if self.blocks else f"{stage}.{index}"

    def block_conv(self, index: int) -> str:
        return self.conv.format(index=index)

    def block_norm(self, index: int) -> str:
        return self.norm.format(index=index)

    def block_act(self, index: int) -> str:
        return self.act.format(index=index)

    def shortcut_layer(self, role: ShortcutRole, pooled: bool) -> str:
        """A shortcut's pool, projection or norm (local to the block): by position, the projection at 0 or
        after the pool of a pooled kind, its norm after it; or by role."""
        if self.shortcut_parts == "role":
            return f"{self.shortcut}.{role}"
        position = {"pool": 0, "conv": 0, "norm": 1}[role] + (1 if pooled and role != "pool" else 0)
        return f"{self.shortcut}.{position}"

    # -- the head --------------------------------------------------------------------------------------
    def in_head(self, local: str) -> str:
        return self.head + local

    # -- modules -------------------------------------------------------------------------------------------
    def group(self, name: str) -> str:
        """The module that holds a stem or head layer's module as one unit: its top-level module, or the
        child of the stem's or head's container."""
        for prefix in (self.stem, self.head):
            if prefix and name.startswith(prefix):
                return prefix + name.removeprefix(prefix).split(".")[0]
        return name.split(".")[0]

    @property
    def containers(self) -> tuple[str, ...]:
        """The containers the model makes before their children (the stem's, the head's)."""
        return tuple(dict.fromkeys(p.rstrip(".") for p in (self.stem, self.head) if p))

    @property
    def nested(self) -> bool:
        """Some module lives below the model's own children (a container's): paths, not attributes."""
        return bool(self.stem or self.head or self.stage_container or self.blocks)


TORCHVISION = Naming(
    scheme="torchvision",
    stem="",
    stem_conv="conv1",
    stem_norm="bn1",
    stem_act="act1",
    deep_stem="sequential",
    stem_pool="maxpool",
    stage="layer{number}",
    stage_container="",
    blocks="",
    conv="conv{index}",
    norm="bn{index}",
    act="act{index}",
    shortcut="downsample",
    shortcut_parts="index",
    final_norm="post_bn",
    final_act="post_act",
    head="",
    global_pool="global_pool",
    dropout="dropout",
    fc="fc",
    softmax="softmax",
)

TIMM_RESNETV2 = Naming(
    scheme="timm_resnetv2",
    stem="stem.",
    stem_conv="conv",
    stem_norm="norm",
    stem_act="act",
    deep_stem="numbered",
    stem_pool="pool",
    stage="stages.{index}",
    stage_container="stages",
    blocks="blocks",
    conv="conv{index}",
    norm="norm{index}",
    act="act{index}",
    shortcut="downsample",
    shortcut_parts="role",
    final_norm="norm",
    final_act="act",
    head="head.",
    global_pool="global_pool",
    dropout="drop",
    fc="fc",
    softmax="softmax",
)

NAMINGS: dict[str, Naming] = {n.scheme: n for n in (TORCHVISION, TIMM_RESNETV2)}
