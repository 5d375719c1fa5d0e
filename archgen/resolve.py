"""Spec -> IR: every layer named, shaped and counted, without any framework.

Names follow torchvision/timm module paths so that their checkpoints load
into the PyTorch backend unchanged: stem ``conv1``/``bn1``/``act1``/``maxpool``
(a deep stem is the Sequential ``conv1.0..``; a conv "pool" is ``maxpool.0..``),
stages ``layer1..``, blocks ``conv1, bn1, act1, ...``, shortcut
``downsample.N``, SE ``se.fc1/fc2``, head ``global_pool``/``fc``.
"""

from __future__ import annotations

import hashlib
import json
import math

from .errors import Problem, SpecError, dotted
from .ir import Block, Layer, Network, Shape, Stage
from .spec import MAX_INPUT_SIZE, BasicBlock, BottleneckBlock, ClassicStem, DeepStem, PlainBlock, SESpec, Spec
from .yamlsource import Path_, Pos, Positions

# Refused from the IR's counts, before any framework allocates anything (docs/refused.md).
# Both are fixed figures, not this machine's memory, so a spec is valid everywhere or nowhere.
MAX_PARAMS = 4_000_000_000  # 16 GB of float32 weights
# Activations of one sample: every layer's output, summed (what a training step keeps for
# the backward pass); 2**34 elements are 64 GiB in float32. ResNet-RS-420 at 320 px: 377 M.
MAX_ACTIVATIONS = 2**34


def spec_digest(spec: Spec) -> str:
    """sha256 of the resolved spec (canonical JSON): identifies what was compiled."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never below it."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def pooled_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """Output size of a conv or pool, exactly as PyTorch computes it."""
    span = size + 2 * padding - (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Builder:
    """Walks the network once, tracking the current shape."""

    def __init__(self, spec: Spec, positions: Positions | None, hw: tuple[int, int], size_from: str | None) -> None:
        self.spec = spec
        self.positions = positions
        self.field: Path_ = ()
        self.hw = hw
        self.size_from = size_from  # "--input-size N" when the input size is not the spec's
        self.params = 0  # running totals, checked after every section and block
        self.activations = 0

    def fail(self, message: str, field: Path_ | None = None) -> SpecError:
        path = self.field if field is None else field
        pos = self.positions.find(path) if self.positions else None
        if path == ("input", "size") and self.size_from:
            pos = Pos(self.size_from, None, None)
        return SpecError(
            Problem(
                pos.file if pos else "<spec>",
                pos.line if pos else None,
                pos.column if pos else None,
                dotted(path),
                message,
            )
        )

    def block_field(self, s: int, *rest: str) -> Path_:
        """Where a block option of stage ``s`` was written: in the stage's own block, or the top-level one
        (every stage's block is the top-level block merged with the stage's own)."""
        own = ("stages", s, "block", *rest)
        return own if self.positions and self.positions.exact(own) else ("block", *rest)

    def check_size(self, name: str, h: int, w: int, oh: int, ow: int, what: str, stride: int) -> None:
        """Refuse a layer whose output would be empty, or whose stride the input cannot honour."""
        if oh < 1 or ow < 1 or (stride > 1 and min(h, w) < stride):
            size = "x".join(str(v) for v in self.hw)
            raise self.fail(
                f"{name}: spatial size reaches zero ({h}x{w} input to {what}, stride {stride}); "
                f"the {size} input is too small for this network's downsampling",
                ("input", "size"),
            )

    def count(self, layers: list[Layer] | tuple[Layer, ...], where: str, field: Path_) -> None:
        """Refuse as soon as the running parameter or activation total passes its limit.

        Checked block by block, so a network far over a limit is refused after building
        the few blocks that pass it, not all of them.
        """
        self.params += sum(x.params for x in layers)
        self.activations += sum(math.prod(x.out_shape) for x in layers)
        if self.params > MAX_PARAMS:
            raise self.fail(f"{_figure(self.params)} parameters up to {where}, over the limit of {MAX_PARAMS:,}", field)
        if self.activations > MAX_ACTIVATIONS:
            size = "x".join(str(v) for v in self.hw)
            raise self.fail(
                f"{_figure(self.activations)} activation elements for one {size} sample up to {where}, over the limit "
                f"of {MAX_ACTIVATIONS:,} ({MAX_ACTIVATIONS * 4 >> 30} GiB of float32): "
                "reduce the input size, depths or widths",
                ("input", "size"),
            )

    def bias(self, normed: bool) -> bool:
        mode = self.spec.conv_bias
        return mode == "always" or (mode == "unnormed" and not normed)

    # -- layers ---------------------------------------------------------------
    def conv(
        self,
        name: str,
        shape: Shape,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        *,
        normed: bool,
        bias: bool | None = None,
    ) -> Layer:
        c, h, w = shape
        if c % groups or out_ch % groups:
            raise self.fail(f"{name}: {groups} groups do not divide {c} input / {out_ch} output channels")
        pad = kernel // 2
        oh, ow = pooled_size(h, kernel, stride, pad), pooled_size(w, kernel, stride, pad)
        self.check_size(name, h, w, oh, ow, f"a {kernel}x{kernel} conv", stride)
        use_bias = self.bias(normed) if bias is None else bias
        params = out_ch * (c // groups) * kernel * kernel + (out_ch if use_bias else 0)
        attrs = dict(in_ch=c, out_ch=out_ch, kernel=kernel, stride=stride, padding=pad, groups=groups, bias=use_bias)
        flops = oh * ow * out_ch * (c // groups) * kernel * kernel
        return Layer(name, "conv", shape, (out_ch, oh, ow), attrs, params, 0, flops)

    def norm(self, name: str, shape: Shape) -> Layer:
        c = shape[0]
        attrs = dict(channels=c, eps=self.spec.norm.eps, momentum=self.spec.norm.momentum)
        return Layer(name, "norm", shape, shape, attrs, 2 * c, 2 * c)

    def act(self, name: str, shape: Shape, fn: str | None = None) -> Layer:
        return Layer(name, "act", shape, shape, dict(fn=fn or self.spec.act))

    def pool(
        self, name: str, shape: Shape, kind: str, kernel: int, stride: int, padding: int, **extra: object
    ) -> Layer:
        c, h, w = shape
        ceil = kind == "avg"
        oh, ow = pooled_size(h, kernel, stride, padding, ceil), pooled_size(w, kernel, stride, padding, ceil)
        self.check_size(name, h, w, oh, ow, f"a {kind} pool", stride)
        attrs = dict(kind=kind, kernel=kernel, stride=stride, padding=padding, **extra)
        if ceil:
            attrs.update(ceil_mode=True, count_include_pad=False)
        return Layer(name, f"{kind}_pool", shape, (c, oh, ow), attrs)

    # -- sections -------------------------------------------------------------
    def stem(self, shape: Shape) -> list[Layer]:
        stem = self.spec.stem
        self.field = ("stem",)
        layers: list[Layer] = []
        if isinstance(stem, ClassicStem):
            layers.append(
                self.conv("conv1", shape, self.width(stem.width), stem.kernel, stem.stride, normed=stem.norm_act)
            )
        elif isinstance(stem, DeepStem):
            widths = [self.width(w) for w in stem.widths]
            for i, width in enumerate(widths):
                last = i == len(widths) - 1
                cur = layers[-1].out_shape if layers else shape
                layers.append(
                    self.conv(
                        f"conv1.{3 * i}", cur, width, 3, stem.stride if i == 0 else 1, normed=not last or stem.norm_act
                    )
                )
                if not last:
                    layers.append(self.norm(f"conv1.{3 * i + 1}", layers[-1].out_shape))
                    layers.append(self.act(f"conv1.{3 * i + 2}", layers[-1].out_shape))
        else:
            return layers
        if stem.norm_act:
            layers.append(self.norm("bn1", layers[-1].out_shape))
            layers.append(self.act("act1", layers[-1].out_shape))
        cur = layers[-1].out_shape
        if stem.pool == "max":
            pad_value = "zero" if stem.pool_padding == "zero" else "neg_inf"
            layers.append(self.pool("maxpool", cur, "max", 3, 2, 1, pad_value=pad_value))
        elif stem.pool == "conv":
            layers.append(self.conv("maxpool.0", cur, cur[0], 3, 2, normed=True))
            layers.append(self.norm("maxpool.1", layers[-1].out_shape))
            layers.append(self.act("maxpool.2", layers[-1].out_shape))
        return layers

    def width(self, width: int) -> int:
        m = self.spec.width_multiplier
        return width if m == 1.0 else make_divisible(width * m)

    def drop_rates(self) -> list[list[float]]:
        dp = self.spec.drop_path
        depths = [s.depth for s in self.spec.stages]
        total, n_stages = sum(depths), len(depths)
        rates: list[list[float]] = []
        index = 0
        for s, depth in enumerate(depths):
            row = []
            for _ in range(depth):
                if dp.schedule == "uniform":
                    row.append(dp.rate)
                elif dp.schedule == "per_stage":
                    row.append(dp.rate * (s + 2) / (n_stages + 1))
                else:  # linear from 0 (first block) to rate (last); one block gets the full rate
                    row.append(dp.rate * index / (total - 1) if total > 1 else dp.rate)
                index += 1
            rates.append(row)
        return rates

    def stages(self, shape: Shape) -> list[Stage]:
        stages: list[Stage] = []
        rates = self.drop_rates()
        for s, stage_spec in enumerate(self.spec.stages):
            block_spec = self.spec.stage_block(s)
            stride = stage_spec.stride if stage_spec.stride is not None else (1 if s == 0 else 2)
            width = self.width(stage_spec.width)
            name = f"layer{s + 1}"
            stage_in = shape
            blocks = []
            for i in range(stage_spec.depth):
                at = 0 if block_spec.stride_block == "first" else stage_spec.depth - 1
                self.field = ("stages", s)
                block = self.block(f"{name}.{i}", shape, block_spec, width, stride if i == at else 1, rates[s][i], s)
                self.count(block.layers, block.name, ("stages", s))
                blocks.append(block)
                shape = block.out_shape
            stages.append(Stage(name, tuple(blocks), stage_in, shape, blocks[0].config))
        return stages

    def block(
        self,
        name: str,
        shape: Shape,
        spec: BasicBlock | BottleneckBlock | PlainBlock,
        width: int,
        stride: int,
        rate: float,
        s: int,
    ) -> Block:
        if isinstance(spec, PlainBlock):
            conv = self.conv(f"{name}.conv1", shape, width, spec.kernel, stride, normed=True)
            bn = self.norm(f"{name}.bn1", conv.out_shape)
            layers = (conv, bn, self.act(f"{name}.act1", bn.out_shape))
            config = dict(
                kind="plain", preact=False, mid=width, out=width, kernel=spec.kernel, stride_block=spec.stride_block
            )
            return Block(name, "plain", False, shape, bn.out_shape, stride, layers, config=config)
        out_ch = width * spec.expansion
        if isinstance(spec, BottleneckBlock):
            per_group = int(width * spec.base_width / 64 * spec.width_factor)
            if per_group < 1:
                culprit = "width_factor" if spec.width_factor < 1 else "base_width" if spec.base_width < 64 else ""
                raise self.fail(
                    f"{name}: the inner width per group, int({width} * base_width {spec.base_width} / 64 * "
                    f"width_factor {spec.width_factor}), is 0 channels; raise width, base_width or width_factor",
                    self.block_field(s, culprit) if culprit else ("stages", s, "width"),
                )
            mid = per_group * spec.groups
            self.field = self.block_field(s, "groups")
            plan = [
                (1, mid, spec.stride_at == "1x1", 1),
                (3, mid, spec.stride_at == "3x3", spec.groups),
                (1, out_ch, False, 1),
            ]
        else:
            plan = [(3, width, True, 1), (3, out_ch, False, 1)]
        p = f"{name}."
        layers: list[Layer] = []
        cur = shape
        if spec.preact:
            layers += [self.norm(p + "bn1", cur), self.act(p + "act1", cur)]
        preact_shape = cur
        for i, (kernel, ch, strided, groups) in enumerate(plan, start=1):
            last = i == len(plan)
            if spec.preact and i > 1:
                layers += [self.norm(f"{p}bn{i}", cur), self.act(f"{p}act{i}", cur)]
            conv = self.conv(
                f"{p}conv{i}", cur, ch, kernel, stride if strided else 1, groups, normed=not (spec.preact and last)
            )
            layers.append(conv)
            cur = conv.out_shape
            if not spec.preact:
                layers.append(self.norm(f"{p}bn{i}", cur))
                if not last:
                    layers.append(self.act(f"{p}act{i}", cur))
        if spec.se is not None:
            layers += self.se(p + "se", cur, spec.se)
        if self.spec.drop_path.rate > 0:
            layers.append(Layer(p + "drop_path", "drop_path", cur, cur, dict(rate=rate)))
        layers += self.shortcut(p + "downsample", preact_shape, cur, stride, spec, s)
        if not spec.preact:
            layers.append(self.act(f"{p}act{len(plan)}", cur))
        zero = None
        if self.spec.init.zero_init_last:
            zero = f"conv{len(plan)}" if spec.preact else f"bn{len(plan)}"
        config = dict(
            kind=spec.type,
            preact=spec.preact,
            mid=plan[0][1],
            out=out_ch,
            stride_block=spec.stride_block,
            stride_at=getattr(spec, "stride_at", "3x3"),
            groups=getattr(spec, "groups", 1),
            shortcut=spec.shortcut.type,
            se=spec.se.model_dump() if spec.se else None,
        )
        return Block(name, spec.type, spec.preact, shape, cur, stride, tuple(layers), rate, zero, config)

    def shortcut(
        self, name: str, shape: Shape, out: Shape, stride: int, spec: BasicBlock | BottleneckBlock, s: int
    ) -> list[Layer]:
        kind = spec.shortcut.type
        needs_proj = shape[0] != out[0]
        if stride == 1 and not needs_proj:
            return []
        self.field = self.block_field(s, "shortcut", "type")
        if kind == "identity":
            raise self.fail(
                f"{name}: an identity shortcut cannot change shape ({shape[0]}->{out[0]} channels, stride {stride}); "
                "use conv, avgpool or maxpool"
            )
        layers: list[Layer] = []
        cur = shape
        index = 0
        if kind in ("avgpool", "maxpool"):
            if stride > 1:
                layers.append(
                    self.pool(f"{name}.0", cur, "avg", stride, stride, 0)
                    if kind == "avgpool"
                    else self.pool(f"{name}.0", cur, "max", 1, stride, 0, pad_value="neg_inf")
                )
                cur = layers[-1].out_shape
            index = 1  # index 0 is the pool slot (Identity when the block keeps its size)
            conv_stride = 1
        else:
            conv_stride = stride
        if kind == "conv" or needs_proj:
            layers.append(self.conv(f"{name}.{index}", cur, out[0], 1, conv_stride, normed=not spec.preact))
            if not spec.preact:
                layers.append(self.norm(f"{name}.{index + 1}", layers[-1].out_shape))
        if layers[-1].out_shape != out:
            raise self.fail(f"{name}: shortcut gives {layers[-1].out_shape} but the residual branch gives {out}")
        return layers

    def se(self, name: str, shape: Shape, se: SESpec) -> list[Layer]:
        c = shape[0]
        value = c * se.ratio
        rd = (
            make_divisible(value, se.divisor)
            if se.rounding == "nearest"
            else max(se.divisor, int(value) // se.divisor * se.divisor)
        )
        one = (c, 1, 1)
        fc1 = self.conv(f"{name}.fc1", one, rd, 1, normed=False, bias=se.bias)
        fc2 = self.conv(f"{name}.fc2", fc1.out_shape, c, 1, normed=False, bias=se.bias)
        return [
            fc1,
            self.act(f"{name}.act", fc1.out_shape, se.act),
            fc2,
            Layer(f"{name}.gate", "act", one, one, dict(fn="sigmoid")),
        ]

    def head(self, shape: Shape, preact: bool) -> list[Layer]:
        layers: list[Layer] = []
        if preact:  # a pre-activation network ends with the norm + act its last block left out
            layers += [self.norm("post_bn", shape), self.act("post_act", shape)]
        head = self.spec.head
        if head.type == "features":
            return layers
        c = shape[0]
        layers.append(Layer("global_pool", "global_pool", shape, (c,), dict(kind=head.pool)))
        if head.dropout > 0:
            layers.append(Layer("dropout", "dropout", (c,), (c,), dict(rate=head.dropout)))
        k = head.classes
        layers.append(
            Layer("fc", "linear", (c,), (k,), dict(in_features=c, out_features=k, bias=True), c * k + k, 0, c * k)
        )
        if head.activation == "softmax":
            layers.append(Layer("softmax", "act", (k,), (k,), dict(fn="softmax")))
        return layers


def _figure(n: int) -> str:
    """A count as people read it: 4,123,456,789, or 9.0e+12 when longer than that."""
    return f"{n:,}" if n < 10**13 else f"{n:.1e}"


def _input_hw(input_size: object) -> tuple[int, int]:
    """Validate an input size given outside the spec (``--input-size``, ``compile_spec(input_size=)``)."""
    sides = list(input_size) if isinstance(input_size, list | tuple) else [input_size] * 2
    if len(sides) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIZE for v in sides
    ):
        raise SpecError(
            Problem(
                f"--input-size {input_size!r}",
                None,
                None,
                "input.size",
                f"expected an integer from 1 to {MAX_INPUT_SIZE}, or (height, width) of them; received {input_size!r}",
            )
        )
    return sides[0], sides[1]


def resolve(spec: Spec, positions: Positions | None = None, input_size: int | tuple[int, int] | None = None) -> Network:
    """Compile a validated spec into the IR. Raises SpecError for impossible networks."""
    h, w = spec.input.hw if input_size is None else _input_hw(input_size)
    b = _Builder(spec, positions, (h, w), None if input_size is None else f"--input-size {input_size}")
    shape: Shape = (spec.input.channels, h, w)
    stem = b.stem(shape)
    b.count(stem, "the stem", ("stem",))
    stages = b.stages(stem[-1].out_shape if stem else shape)
    last = stages[-1]
    preact = bool(last.blocks[-1].preact)
    head = b.head(last.out_shape, preact)
    b.count(head, "the head", ("head",))
    net = Network(
        name=spec.name,
        input_shape=shape,
        stem=tuple(stem),
        stages=tuple(stages),
        head=tuple(head),
        init=spec.init.model_dump(),
        digest=spec_digest(spec),
        options=dict(
            act=spec.act,
            norm=spec.norm.model_dump(),
            conv_bias=spec.conv_bias,
            drop_path=spec.drop_path.model_dump(),
            head=spec.head.model_dump(),
        ),
        description=spec.description,
        resolved=spec.model_dump(mode="json"),
    )
    return net
