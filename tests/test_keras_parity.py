"""archgen's Keras specs against the Keras implementations they reproduce, by function, not by counts.

The reference model (keras.applications ResNet V1/V2 in Keras 3, tf_keras' ResNet-RS in Keras 2)
gets random weights, every one of them, norm statistics included; they are moved by layer name
into the archgen Keras model (its layer names are the IR names with dots as underscores) through
a rule per family (stage/block/index), checking kind, shape and layer config, and using every
weighted layer on both sides exactly once. Both then run one random batch in inference mode and
must agree after the stem, every stage, the global pool, the logits and the output.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from archgen.backends.keras import BACKEND as KERAS
from archgen.backends.keras.emit import keras_name
from helpers import spec_path

import archgen
from archgen.ir import Conv, Layer, Linear, Network, Norm

pytestmark = [pytest.mark.keras, pytest.mark.slow]

# 40 px gives even and odd sizes (stage outputs 10, 5, 3, 2 for V1 and RS, 5, 3, 2, 2 for V2),
# so padding, strided 1x1 convs/pools and TF's "same" average pool are checked on both.
SIZE = 40
BATCH = 2
# Of max(1, max |reference|) at each point: float32 as archgen compare; float64 proves the same function.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}
# Norm scales: small ones keep very deep random nets well-conditioned (see tests/test_keras.py).
GAMMA = (0.05, 0.15)
CALIBRATION_BATCH = 16


# -- the rule from a reference layer name to an archgen IR name, per family ----------------------


def _v1_ir_name(name: str) -> str:
    """keras.applications ResNet (V1): conv{stage+1}_block{block+1}_{i}_{conv|bn}, i=0 the shortcut."""
    if m := re.fullmatch(r"conv1_(conv|bn)", name):
        return "conv1" if m[1] == "conv" else "bn1"
    if m := re.fullmatch(r"conv(\d+)_block(\d+)_(\d)_(conv|bn)", name):
        block, i = f"layer{int(m[1]) - 1}.{int(m[2]) - 1}", int(m[3])
        if i == 0:
            return f"{block}.downsample.{0 if m[4] == 'conv' else 1}"
        return f"{block}.{m[4]}{i}"
    if name == "predictions":
        return "fc"
    raise KeyError(f"no archgen layer for keras.applications layer {name!r}")


def _v2_ir_name(name: str) -> str:
    """keras.applications ResNet V2: a norm is named after the conv before it (preact, 1, 2); archgen's
    after the conv it precedes (bn1, bn2, bn3). The shortcut conv is downsample.1 (.0 is the pool slot)."""
    if name == "post_bn":
        return name
    if name == "conv1_conv":
        return "conv1"
    if name == "predictions":
        return "fc"
    if m := re.fullmatch(r"conv(\d+)_block(\d+)_(preact|\d)_(conv|bn)", name):
        block, index, kind = f"layer{int(m[1]) - 1}.{int(m[2]) - 1}", m[3], m[4]
        if kind == "bn":
            return f"{block}.bn{1 if index == 'preact' else int(index) + 1}"
        if index == "0":
            return f"{block}.downsample.1"
        if index != "preact":
            return f"{block}.conv{index}"
    raise KeyError(f"no archgen layer for keras.applications layer {name!r}")


_RS_BLOCK = {
    "se_se_reduce": "se.fc1",
    "se_se_expand": "se.fc2",
    "projection_conv": "downsample.1",  # downsample.0 is the average pool (identity in stage 1)
    "projection_batch_norm": "downsample.2",
}


def _rs_ir_name(name: str) -> str:
    """tf_keras ResNet-RS: stem_{uid}_stem_{conv|batch_norm}_{k}, BlockGroup{stage+1}__block_{block}_..."""
    if m := re.fullmatch(r"stem_\d+_stem_(conv|batch_norm)_(\d)", name):
        k, conv = int(m[2]), m[1] == "conv"
        if k == 4:  # the strided conv that replaces the max pool
            return "maxpool.0" if conv else "maxpool.1"
        if conv:  # the deep stem is conv1 = Sequential(conv, norm, act, conv, norm, act, conv), then bn1
            return f"conv1.{3 * (k - 1)}"
        return "bn1" if k == 3 else f"conv1.{3 * (k - 1) + 1}"
    # tf_keras names the first norm "..._block_0_batch_norm_1" (one underscore), the others "..._block_0__...".
    if m := re.fullmatch(r"BlockGroup(\d+)__block_(\d+)__?(\w+)", name):
        block, rest = f"layer{int(m[1]) - 1}.{m[2]}", m[3]
        if r := re.fullmatch(r"(conv|batch_norm)_(\d)", rest):
            return f"{block}.{'conv' if r[1] == 'conv' else 'bn'}{r[2]}"
        if rest in _RS_BLOCK:
            return f"{block}.{_RS_BLOCK[rest]}"
    if name == "predictions":
        return "fc"
    raise KeyError(f"no archgen layer for tf_keras ResNet-RS layer {name!r}")


@dataclass(frozen=True)
class Family:
    library: str  # keras (keras.applications, Keras 3) | tf_keras (Keras 2)
    to_ir: Callable[[str], str]  # reference layer name -> IR layer name
    stem_out: str  # regex: the reference layer whose output is the stem's
    stage_out: Callable[[int, int], str]  # (stage from 1, its number of blocks) -> the reference layer ending it
    same_momentum: bool  # whether the norms' momentum (training only) equals the spec's too


V1 = Family("keras", _v1_ir_name, "pool1_pool", lambda s, n: f"conv{s + 1}_block{n}_out", True)
V2 = Family("keras", _v2_ir_name, "pool1_pool", lambda s, n: f"conv{s + 1}_block{n}_out", True)
# tf_keras' ResNet-RS norms have Keras momentum 0.0 (moving statistics replaced by each batch's); the
# specs have timm's 0.1 (Keras 0.9). Training only: inference uses the statistics, not the momentum.
RS = Family(
    "tf_keras",
    _rs_ir_name,
    r"stem_\d+_stem_act_4",
    lambda s, n: f"BlockGroup{s + 1}__block_{n - 1}__output_act",
    False,
)


@dataclass(frozen=True)
class Reference:
    app: str  # class in keras.applications / tf_keras.applications
    spec: str
    family: Family

    @property
    def id(self) -> str:
        return f"{self.family.library}.{self.app}-vs-{self.spec}"


RS_DEPTHS = (50, 101, 152, 200, 270, 350, 420)
ALL: list[Reference] = [
    Reference("ResNet50", "keras_resnet50", V1),
    Reference("ResNet101", "keras_resnet101", V1),
    Reference("ResNet152", "keras_resnet152", V1),
    Reference("ResNet50V2", "resnet50v2", V2),
    Reference("ResNet101V2", "resnet101v2", V2),
    Reference("ResNet152V2", "resnet152v2", V2),
    *(Reference(f"ResNetRS{d}", f"resnetrs{d}", RS) for d in RS_DEPTHS),
]
# ARCHGEN_PARITY=full compares the function of every model (about 4.5 min on 2 cores, measured). By
# default (under 2 min): the smallest of each family and two deep ones (ResNet-RS-200 also has tf_keras' drop-connect
# layers, which inference must skip); the others get the full weight mapping (every layer, kind, shape,
# kernel, stride, epsilon) without running, except ResNet-RS-270/350/420, whose tf_keras builds alone
# take 25-45 s each: their stage tables are checked against tf_keras' own (the code building their
# blocks is ResNet-RS-200's).
FULL = os.environ.get("ARCHGEN_PARITY", "quick") == "full"
QUICK = ("keras_resnet50", "resnet50v2", "resnet152v2", "resnetrs50", "resnetrs200")
FUNCTION = [r for r in ALL if FULL or r.spec in QUICK]
# (in full mode every model's mapping is checked on its own as well, so no parameter list is empty)
MAPPING = [
    r for r in ALL if (FULL or r not in FUNCTION) and r.spec not in ("resnetrs270", "resnetrs350", "resnetrs420")
]


def _ids(refs: list[Reference]) -> list[str]:
    return [r.id for r in refs]


# -- building, randomizing, mapping ------------------------------------------------------------


def _library(family: Family) -> Any:
    if family.library == "keras":
        import keras

        return keras
    import tf_keras

    return tf_keras


@contextlib.contextmanager
def _floatx(family: Family, dtype: str) -> Iterator[None]:
    """Layers take their dtype from the global setting when built: set it for one build only."""
    lib = _library(family)
    if family.library == "keras":
        saved = lib.config.floatx(), lib.config.dtype_policy()
        lib.config.set_floatx(dtype)
        lib.config.set_dtype_policy(dtype)
        try:
            yield
        finally:
            lib.config.set_floatx(saved[0])
            lib.config.set_dtype_policy(saved[1])
        return
    saved_floatx = lib.backend.floatx()
    lib.backend.set_floatx(dtype)
    try:
        yield
    finally:
        lib.backend.set_floatx(saved_floatx)


def _build_reference(ref: Reference, dtype: str = "float32") -> Any:
    lib, shape = _library(ref.family), (SIZE, SIZE, 3)
    with _floatx(ref.family, dtype):
        if ref.family.library == "keras":  # V1/V2: no preprocessing inside; a softmax head, as the specs
            model = getattr(lib.applications, ref.app)(weights=None, input_shape=shape)
        else:  # archgen's ResNet-RS takes normalized input and ends in logits (as timm's)
            model = getattr(lib.applications, ref.app)(
                weights=None, input_shape=shape, include_preprocessing=False, classifier_activation=None
            )
    assert all(v.dtype == dtype for v in model.weights)
    return model


def _kind(layer: Any) -> str:
    return type(layer).__name__


def _var_kind(variable: Any) -> str:
    """kernel, bias, gamma, ... (tf_keras names variables 'layer/kernel:0', Keras 3 'kernel')."""
    return variable.name.split("/")[-1].split(":")[0]


def _randomize(model: Any, seed: int, dtype: str) -> None:
    """Every weight random: fan-in scaled convs and denses, small biases and shifts, norm scales from GAMMA,
    norm statistics calibrated on a random batch. A fresh model's norms (gamma 1, mean 0, var 1) are near
    identities that would hide a misplaced or swapped statistic; uncalibrated random statistics make deep
    nets' activations shrink or explode (calibrated ones hold ResNet-RS-200's near unit scale; jittering
    them per channel by [0.5, 1.5] already grew its stage 3 activations 1000-fold, measured)."""
    rng = np.random.default_rng(seed)
    norms = []
    for layer in model.layers:
        values = layer.get_weights()
        if not values:
            continue
        if _kind(layer) in ("Conv2D", "Dense"):
            kernel = rng.standard_normal(values[0].shape) / math.sqrt(math.prod(values[0].shape[:-1]))
            layer.set_weights([kernel] + [rng.normal(0.0, 0.1, v.shape) for v in values[1:]])
        elif _kind(layer) == "BatchNormalization":
            norms.append(layer)
            gamma, beta = rng.uniform(*GAMMA, values[0].shape), rng.normal(0.0, 0.1, values[1].shape)
            layer.set_weights([gamma, beta, *values[2:]])
        else:
            raise AssertionError(f"{layer.name}: unexpected weighted layer {_kind(layer)}")
    # One training-mode pass with momentum 0 makes every moving statistic that batch's; dropout off, so
    # tf_keras' drop-connect layers do not skew them.
    saved = [(layer, layer.momentum) for layer in norms]
    dropouts = [(layer, layer.rate) for layer in model.layers if _kind(layer) == "Dropout"]
    for layer, _ in saved:
        layer.momentum = 0.0
    for layer, _ in dropouts:
        layer.rate = 0.0
    model(rng.standard_normal((CALIBRATION_BATCH, SIZE, SIZE, 3)).astype(dtype), training=True)
    for layer, momentum in saved:
        layer.momentum = momentum
    for layer, rate in dropouts:
        layer.rate = rate
    for layer in norms:  # the calibration really set them (an ignored momentum would leave 0 and 1)
        _, _, mean, var = layer.get_weights()
        assert np.abs(mean).max() > 0 and np.abs(var - 1).max() > 1e-3, layer.name


def _keras_shapes(layer: Layer) -> list[tuple[tuple[int, ...], str]]:
    """(shape, variable kind) of each Keras weight of an IR layer, in Keras' order."""
    match layer:
        case Conv():
            kernel = (layer.kernel, layer.kernel, layer.in_ch // layer.groups, layer.out_ch)
            return [(kernel, "kernel")] + ([((layer.out_ch,), "bias")] if layer.bias else [])
        case Linear():
            out = (layer.in_features, layer.out_features)
            return [(out, "kernel")] + ([((layer.out_features,), "bias")] if layer.bias else [])
        case Norm():
            return [((layer.channels,), k) for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    raise AssertionError(f"{layer.name}: no Keras weights for IR {layer.kind} layers")


_KERAS_CLASS = {Conv: "Conv2D", Linear: "Dense", Norm: "BatchNormalization"}


def _mapping(reference: Any, network: Network, family: Family) -> dict[str, str]:
    """Reference layer name -> IR name for every weighted layer, each used once on both sides, each pair
    of the same Keras class, variable kinds and shapes, and the same kernel, stride, groups and epsilon."""
    weighted = {x.name: x for x in network.layers() if x.weighted}
    mapping: dict[str, str] = {}
    for layer in reference.layers:
        if not layer.weights:
            continue
        name = family.to_ir(layer.name)
        assert name in weighted, f"{layer.name} -> {name}: not a weighted archgen layer"
        assert name not in mapping.values(), f"{layer.name} -> {name}: already taken"
        ir = weighted[name]
        assert _kind(layer) == _KERAS_CLASS[type(ir)], (layer.name, name, _kind(layer), ir.kind)
        theirs = [(tuple(int(d) for d in v.shape), _var_kind(v)) for v in layer.weights]
        assert theirs == _keras_shapes(ir), (layer.name, name, theirs, _keras_shapes(ir))
        config = layer.get_config()
        if isinstance(ir, Conv):
            assert tuple(config["kernel_size"]) == (ir.kernel,) * 2, (layer.name, name)
            assert tuple(config["strides"]) == (ir.stride,) * 2, (layer.name, name)
            assert config.get("groups", 1) == ir.groups, (layer.name, name)
        elif isinstance(ir, Norm):
            assert config["epsilon"] == pytest.approx(ir.eps, rel=1e-9), (layer.name, name)
            if family.same_momentum:  # PyTorch's convention in the IR, Keras' is 1 - it
                assert config["momentum"] == pytest.approx(1 - ir.momentum, rel=1e-9), (layer.name, name)
        mapping[layer.name] = name
    missing = [name for name in weighted if name not in mapping.values()]
    assert not missing, f"archgen layers with no reference layer: {missing[:5]}"
    return mapping


def _transfer(reference: Any, ours: Any, mapping: dict[str, str]) -> None:
    """The reference's arrays, in Keras layout as they are, into archgen's Keras layers of the mapped
    names; no other archgen layer may hold weights."""
    assert {x.name for x in ours.layers if x.weights} == {keras_name(name) for name in mapping.values()}
    for ref_name, name in mapping.items():
        target = ours.get_layer(keras_name(name))
        values = reference.get_layer(ref_name).get_weights()
        assert [v.shape for v in values] == [tuple(v.shape) for v in target.weights], (ref_name, name)
        target.set_weights(values)


@dataclass
class Setup:
    reference: Any
    ours: Any
    network: Network
    mapping: dict[str, str]
    x: np.ndarray


@contextlib.contextmanager
def _setup(ref: Reference, dtype: str = "float32", seed: int = 0) -> Iterator[Setup]:
    """The reference randomized, archgen's Keras model holding its weights, and a random input batch;
    the Keras session is cleared afterwards (deep models hold hundreds of MB)."""
    _, network = archgen.compile_spec(spec_path(ref.spec), input_size=SIZE)
    try:
        reference = _build_reference(ref, dtype)
        mapping = _mapping(reference, network, ref.family)
        _randomize(reference, seed, dtype)
        ours = KERAS.build(network, dtype=dtype)
        _transfer(reference, ours, mapping)
        x = np.random.default_rng(seed + 1).standard_normal((BATCH, SIZE, SIZE, 3)).astype(dtype)
        yield Setup(reference, ours, network, mapping, x)
    finally:
        reference = ours = None
        _library(ref.family).backend.clear_session()
        import keras

        keras.backend.clear_session()


# -- running both ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    name: str
    max_abs: float  # of the reference
    max_diff: float

    @property
    def relative(self) -> float:
        return self.max_diff / max(1.0, self.max_abs)


def _reference_outputs(s: Setup, family: Family) -> dict[str, np.ndarray]:
    """The reference's activations after the stem, every stage, the pool, its logits and its output."""
    stem = [x.name for x in s.reference.layers if re.fullmatch(family.stem_out, x.name)]
    assert len(stem) == 1, stem
    stages = [family.stage_out(i, len(stage.blocks)) for i, stage in enumerate(s.network.stages, start=1)]
    names = [stem[0], *stages, "avg_pool"]
    layers = [s.reference.get_layer(n) for n in names]
    probe = _library(family).Model(s.reference.input, [x.output for x in layers] + [s.reference.output])
    outs = [np.asarray(o, dtype=np.float64) for o in probe(s.x, training=False)]
    found = dict(zip(["stem", *(x.name for x in s.network.stages), "global_pool", "output"], outs, strict=True))
    # Logits from the reference's own dense weights on its pooled features: keras.applications' Dense
    # applies the softmax itself, and softmax outputs over 1000 classes (~1e-3 each) hide errors.
    kernel, bias = s.reference.get_layer("predictions").get_weights()
    found["fc"] = found["global_pool"] @ kernel.astype(np.float64) + bias
    return found


def _our_outputs(s: Setup) -> dict[str, np.ndarray]:
    import keras

    names = ["stem", *(x.name for x in s.network.stages), "global_pool", "fc"]
    probe = keras.Model(s.ours.input, [s.ours.get_layer(n).output for n in names] + [s.ours.output])
    outs = [np.asarray(keras.ops.convert_to_numpy(o), dtype=np.float64) for o in probe(s.x, training=False)]
    return dict(zip([*names, "output"], outs, strict=True))


def _compare(s: Setup, family: Family) -> tuple[list[Point], dict[str, np.ndarray]]:
    want, got = _reference_outputs(s, family), _our_outputs(s)
    assert set(want) == set(got), (sorted(want), sorted(got))
    points = []
    for name in ["stem", *(x.name for x in s.network.stages), "global_pool", "fc", "output"]:
        a, b = want[name], got[name]
        assert a.shape == b.shape, (name, a.shape, b.shape)
        points.append(Point(name, float(np.abs(a).max()), float(np.abs(a - b).max())))
    return points, want


def _table(title: str, points: list[Point]) -> str:
    rows = [f"  {p.name:12s}{p.max_abs:12.4g}{p.max_diff:14.3e}{p.relative:14.3e}" for p in points]
    return "\n".join([title, f"  {'point':12s}{'max |ref|':>12s}{'max |diff|':>14s}{'relative':>14s}", *rows])


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", FUNCTION, ids=_ids(FUNCTION))
def test_same_function_as_reference(ref: Reference) -> None:
    start = time.perf_counter()
    with _setup(ref) as s:
        points, want = _compare(s, ref.family)
        softmax = ref.family.library == "keras"
    table = _table(f"{ref.id}, float32, input {BATCH}x{SIZE}x{SIZE}x3", points)
    print(f"{table}\n  {time.perf_counter() - start:.1f} s")
    assert all(p.relative <= TOLERANCE["float32"] for p in points), table
    # Real signal at every point, and logits that vary within and between samples.
    assert all(p.max_abs > 1e-2 for p in points if p.name != "output"), table
    assert want["fc"].std() > 1e-2 and np.abs(want["fc"][0] - want["fc"][1]).max() > 1e-2, table
    output = next(p for p in points if p.name == "output")
    if softmax:  # probabilities of 1000 classes, ~1e-3: the max(1, .) floor would let 5% errors pass
        assert np.allclose(want["output"].sum(axis=1), 1.0), table
        assert output.max_diff <= TOLERANCE["float32"] * output.max_abs, table
    else:  # logits
        assert output.max_abs > 1e-2 and not np.allclose(want["output"].sum(axis=1), 1.0), table


def test_resnet_rs_float32_differences_are_rounding() -> None:
    """In float32 tf_keras' and archgen's ResNet-RS differ from the stem on (2e-7 there; with depth up to
    1.9e-5 relative for ResNet-RS-200 and 6.8e-5 for 420, measured), where the keras.applications pairs
    agree bit for bit; in float64 the two agree bit for bit too (measured), so that is float32 rounding
    of different kernels, not a difference in function."""
    ref = next(r for r in ALL if r.spec == "resnetrs50")
    with _setup(ref, "float64") as s:
        points, _ = _compare(s, ref.family)
    table = _table(f"{ref.id}, float64", points)
    print(table)
    assert all(p.relative <= TOLERANCE["float64"] for p in points), table
    assert all(p.max_abs > 1e-2 for p in points), table


def test_comparison_fails_on_a_one_percent_change() -> None:
    """One mid-network conv scaled by 1% after the transfer: the stages before it still agree, the
    stage holding it and everything after do not."""
    ref = next(r for r in ALL if r.spec == "resnetrs50")
    with _setup(ref) as s:
        before, _ = _compare(s, ref.family)
        layer = s.ours.get_layer(keras_name("layer3.2.conv2"))
        layer.set_weights([w * 1.01 for w in layer.get_weights()])
        after, _ = _compare(s, ref.family)
    table = _table(f"{ref.id}, layer3.2.conv2 x 1.01", after)
    print(table)
    assert all(p.relative <= TOLERANCE["float32"] for p in before), _table(ref.id, before)
    relative = {p.name: p.relative for p in after}
    assert all(relative[name] <= TOLERANCE["float32"] for name in ("stem", "layer1", "layer2")), table
    assert all(relative[name] > TOLERANCE["float32"] for name in ("layer3", "layer4", "global_pool", "fc")), table


@pytest.mark.parametrize("ref", MAPPING, ids=_ids(MAPPING))
def test_weight_mapping_covers_every_layer(ref: Reference) -> None:
    """Without running: every weighted layer maps one to one, same class, kinds, shapes, kernel, stride,
    groups and epsilon; and no input preprocessing inside (archgen's models have none)."""
    _, network = archgen.compile_spec(spec_path(ref.spec), input_size=SIZE)
    reference = _build_reference(ref)
    try:
        kinds = {_kind(layer) for layer in reference.layers}
        mapping = _mapping(reference, network, ref.family)
    finally:
        reference = None
        _library(ref.family).backend.clear_session()
    assert not kinds & {"Rescaling", "Normalization"}, kinds
    assert len(mapping) == sum(1 for x in network.layers() if x.params or x.stats)


@pytest.mark.parametrize("depth", RS_DEPTHS)
def test_resnet_rs_stages_match_tf_keras_table(depth: int) -> None:
    """tf_keras builds every ResNet-RS from one table (filters and repeats per block group; stride 1 in the
    first group, 2 after): archgen's stages must have the same widths, depths and strides."""
    from tf_keras.src.applications.resnet_rs import BLOCK_ARGS

    _, network = archgen.compile_spec(spec_path(f"resnetrs{depth}"), input_size=SIZE)
    width = {x.name: x.out_ch for x in network.layers() if isinstance(x, Conv)}
    ours = [(width[f"{s.name}.0.conv1"], len(s.blocks), s.blocks[0].stride) for s in network.stages]
    theirs = [(a["input_filters"], a["num_repeats"], 1 if i == 0 else 2) for i, a in enumerate(BLOCK_ARGS[depth])]
    assert ours == theirs


def test_mapping_rejects_a_misplaced_stride() -> None:
    """The mapping checks configuration, not only shapes: keras.applications ResNet50 against its spec
    with the stride moved to the 3x3 conv (same shapes everywhere) is refused at the first strided conv."""
    ref = next(r for r in ALL if r.spec == "keras_resnet50")
    _, network = archgen.compile_spec(spec_path(ref.spec), overrides=["block.stride_at=3x3"], input_size=SIZE)
    reference = _build_reference(ref)
    try:
        with pytest.raises(AssertionError, match="conv3_block1_1_conv"):
            _mapping(reference, network, ref.family)
    finally:
        reference = None
        _library(ref.family).backend.clear_session()
