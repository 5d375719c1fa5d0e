"""archgen against the libraries its specs reproduce.

Every expected value is taken live from the reference library (torchvision,
timm, fastai, keras.applications, tf_keras.applications), built with random
init; nothing here is computed by archgen and then compared with itself.

* counts: the IR's trainable parameters and norm statistics equal the
  reference model's;
* outputs: a randomised reference's state_dict loads strictly into the
  archgen model (fastai's through an explicit key mapping) and both give the
  same logits;
* FLOPs: the IR's multiply-accumulates equal torchvision's published GFLOPs
  and the count torch's FlopCounterMode takes from the reference model.
"""

from __future__ import annotations

import math

import pytest
from archgen.backends.torch.randomize import randomize_
from helpers import KERAS_APPS, TF_KERAS_APPS, TORCH_REFS, TORCHVISION_FLOPS, TorchRef, assert_same_outputs, spec_path

import archgen

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

# 40 px (not a multiple of 32) makes the later stages see odd sizes (40 -> 20 -> 10
# -> 5 -> 3 -> 2), so padding and the ceil-mode average-pool shortcuts of the
# ResNet-D family are exercised, while keeping the deep models quick on a CPU.
SIZE = 40
BATCH = 2

SAME_KEYS = [r for r in TORCH_REFS if r.same_keys]
FASTAI = [r for r in TORCH_REFS if r.library == "fastai"]


def _ids(refs: list[TorchRef]) -> list[str]:
    return [r.id for r in refs]


def _torch_counts(model) -> tuple[int, int]:
    """Trainable parameters and BN running mean + variance elements of a torch model."""
    from torch import nn

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    )
    return params, stats


def _weights_size(weights) -> int:
    return sum(math.prod(int(d) for d in w.shape) for w in weights)


# -- counts ---------------------------------------------------------------------


@pytest.mark.parametrize("ref", TORCH_REFS, ids=_ids(TORCH_REFS))
def test_counts_match_torch_reference(ref: TorchRef) -> None:
    model = ref.build()
    ref_params, ref_stats = _torch_counts(model)
    _, network = archgen.compile_spec(spec_path(ref.spec))
    assert network.params == ref_params
    assert network.stats == ref_stats


@pytest.mark.parametrize(("app", "spec"), KERAS_APPS, ids=[f"keras.{a}-vs-{s}" for a, s in KERAS_APPS])
def test_counts_match_keras_applications(app: str, spec: str) -> None:
    import keras

    assert keras.__version__.split(".")[0] == "3", f"expected Keras 3, found {keras.__version__}"
    _, network = archgen.compile_spec(spec_path(spec))
    c, h, w = network.input_shape
    model = getattr(keras.applications, app)(weights=None, input_shape=(h, w, c))
    try:
        total = model.count_params()
        trainable = _weights_size(model.trainable_weights)
        frozen = _weights_size(model.non_trainable_weights)
    finally:
        del model
        keras.backend.clear_session()
    assert network.params + network.stats == total
    assert network.params == trainable
    assert network.stats == frozen


@pytest.mark.parametrize(("app", "spec"), TF_KERAS_APPS, ids=[f"tf_keras.{a}-vs-{s}" for a, s in TF_KERAS_APPS])
def test_counts_match_tf_keras_resnet_rs(app: str, spec: str) -> None:
    import tf_keras

    _, network = archgen.compile_spec(spec_path(spec))
    c, h, w = network.input_shape
    model = getattr(tf_keras.applications, app)(weights=None, input_shape=(h, w, c), include_top=True)
    try:
        trainable = _weights_size(model.trainable_weights)
        frozen = _weights_size(model.non_trainable_weights)
    finally:
        del model
        tf_keras.backend.clear_session()
    assert network.params == trainable
    assert network.stats == frozen


# -- outputs --------------------------------------------------------------------


@pytest.mark.parametrize("ref", SAME_KEYS, ids=_ids(SAME_KEYS))
def test_reference_state_dict_loads_strictly_and_outputs_match(ref: TorchRef, device: str) -> None:
    model = ref.build()
    randomize_(model, (3, SIZE, SIZE), seed=1)
    ours = archgen.build(spec_path(ref.spec), input_size=SIZE)
    ours.load_state_dict(model.state_dict(), strict=True)
    assert_same_outputs(model, ours, device, seed=2, size=SIZE, batch=BATCH)


def _in_fastai_order(keys: list[str]) -> list[str]:
    """Our state_dict keys, reordered to fastai's order.

    Both list the stem, then the blocks, then the classifier, and inside a
    block the residual path's conv/bn pairs in the same order. A block's
    shortcut is where they could part: fastai's ResBlock registers
    ``convpath`` and then ``idpath`` (AvgPool, ConvLayer(conv, bn)), while
    where an archgen block's ``downsample.*`` lands depends on the order its
    backend registers modules (the first torch backend registered the
    shortcut's placeholder before the layers, so it came first; the emitted
    one puts it last, as torchvision does). So the mapping does not rely on
    it: within each block (``layerN.i``) the ``downsample`` entries are moved
    to the end, order otherwise kept, and every pair is then checked for
    kind and shape.
    """
    groups: list[tuple[str, list[str]]] = []
    for key in keys:
        parts = key.split(".")
        group = ".".join(parts[:2]) if parts[0].startswith("layer") else key
        if groups and groups[-1][0] == group:
            groups[-1][1].append(key)
        else:
            groups.append((group, [key]))
    ordered: list[str] = []
    for _, members in groups:
        ordered += [k for k in members if ".downsample." not in k]
        ordered += [k for k in members if ".downsample." in k]
    return ordered


@pytest.mark.parametrize("ref", FASTAI, ids=_ids(FASTAI))
def test_fastai_weights_map_by_order_and_outputs_match(ref: TorchRef, device: str) -> None:
    model = ref.build()
    randomize_(model, (3, SIZE, SIZE), seed=3)
    ours = archgen.build(spec_path(ref.spec), input_size=SIZE)
    theirs = list(model.state_dict().items())
    mine = ours.state_dict()
    order = _in_fastai_order(list(mine))
    assert sorted(order) == sorted(mine)
    assert len(theirs) == len(order), f"fastai has {len(theirs)} entries, archgen {len(order)}"
    mapped = {}
    for (their_key, tensor), key in zip(theirs, order, strict=True):
        # Same kind of entry (weight, bias, running_mean, ...) and the same shape, one to one.
        assert their_key.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1], (their_key, key)
        shapes = tuple(tensor.shape), tuple(mine[key].shape)
        assert shapes[0] == shapes[1], (their_key, key, shapes)
        mapped[key] = tensor
    ours.load_state_dict(mapped, strict=True)
    assert_same_outputs(model, ours, device, seed=4, size=SIZE, batch=BATCH)


# -- FLOPs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", TORCHVISION_FLOPS)
def test_flops_and_params_match_torchvision_metadata(name: str) -> None:
    """Every weight enum of the builder: its GFLOPs (multiply-adds at its crop size) and parameter count."""
    import torchvision.models

    all_weights = list(torchvision.models.get_model_weights(name))
    assert all_weights
    for weights in all_weights:
        crop = weights.transforms.keywords["crop_size"]
        _, network = archgen.compile_spec(spec_path(name), input_size=crop)
        assert round(network.flops / 1e9, 3) == weights.meta["_ops"], (str(weights), network.flops)
        assert network.params == weights.meta["num_params"], str(weights)


@pytest.mark.parametrize("ref", TORCH_REFS, ids=_ids(TORCH_REFS))
def test_flops_match_torch_flop_counter(ref: TorchRef) -> None:
    """The reference model, run on the meta device at the spec's input size, under FlopCounterMode
    (which counts 2 FLOPs per multiply-accumulate of convs and matmuls)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    _, network = archgen.compile_spec(spec_path(ref.spec))
    with torch.device("meta"):
        model = ref.build().eval()
        x = torch.empty((1, *network.input_shape))
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    assert network.flops * 2 == counter.get_total_flops()
