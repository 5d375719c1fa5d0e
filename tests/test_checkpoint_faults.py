"""Checkpoints that cannot be loaded faithfully are refused, and nothing else is.

Every refusal is exit 2 with an ``error:`` line naming the file, the tensor and its kind, no traceback,
nothing written, and the same CheckpointError through the Python API. Every float dtype the frameworks
save (float16, bfloat16, float32, float64) reads as the same numpy arrays from .pth, .safetensors and
Keras .weights.h5; reading a file costs no more memory than it holds and never blocks on a FIFO.
Every crafted file is written here, by the test that feeds it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision  # noqa: F401  (before anything imports tensorflow: see conftest.py)
from archgen.backends.torch.weights_file import read_state as read_torch_checkpoint
from click.testing import Result
from helpers import ROOT, hide_modules, random_resnet18_checkpoint, run_archgen, spec_path
from helpers import invoke as run_cli
from safetensors.torch import save_file

import archgen
from archgen import registry

pytestmark = [pytest.mark.torch]

SPEC = spec_path("resnet18")
SET = ["--set", "head.classes=10"]  # port takes no --input-size; the others get --input-size 32 too
SIZE = ["--input-size", "32"]


def invoke(args: list[object], code: int = 0) -> Result:
    result = run_cli(args, code)
    assert "Traceback" not in result.output, result.output
    return result


def error_line(text: str, path: Path, field: str, kind: str) -> str:
    """The ``error:`` line that names ``path`` and ``field`` (none: the file itself) and holds ``kind``."""
    start = f"error: {path}: {field}: " if field else f"error: {path}: "
    lines = [line for line in text.splitlines() if line.startswith(start) and kind in line]
    assert lines, f"no line starting {start!r} with {kind!r} in:\n{text}"
    return lines[0]


def refused_by_cli(args: list[object], path: Path, field: str, kind: str, out: Path | None = None) -> str:
    """Exit 2, the error line, and no output file (nor any temporary beside it)."""
    text = invoke(args, 2).output
    line = error_line(text, path, field, kind)
    if out is not None:
        assert not out.exists()
        assert not [p.name for p in out.parent.iterdir() if p.name.startswith((".archgen", out.name))]
    return line


def refused_by_api(path: Path, field: str, kind: str) -> archgen.CheckpointError:
    """archgen.build(..., weights=path) raises the CheckpointError the CLI reports."""
    with pytest.raises(archgen.CheckpointError) as info:
        archgen.build(SPEC, weights=path, input_size=32, head__classes=10)
    error = info.value
    assert isinstance(error, archgen.SpecError)
    assert (error.file, error.line, error.field) == (str(path), None, field)
    assert kind in error.message, error.message
    return error


def port_to_keras(path: Path, field: str, kind: str) -> None:
    """``archgen port --to keras`` and the Python API both refuse ``path`` naming ``field`` and ``kind``."""
    out = path.parent / "out.weights.h5"
    refused_by_cli(["port", path, "--spec", SPEC, *SET, "--to", "keras", "-o", out], path, field, kind, out)
    refused_by_api(path, field, kind)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """torchvision's resnet18 with 10 classes, every weight random: the state_dict the damage is done to."""
    model, _ = random_resnet18_checkpoint(tmp_path_factory.mktemp("reference"), 32)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- .pth: tensors and values that no float32 weight holds -----------------------------------------------------

# (id, the key damaged, what its value becomes, a piece of the message)
PTH_DAMAGE: list[tuple[str, str, Callable[[torch.Tensor], Any], str]] = [
    ("sparse", "fc.weight", lambda v: v.to_sparse(), "a sparse tensor of layout torch.sparse_coo"),
    ("sparse_csr", "fc.weight", lambda v: v.to_sparse_csr(), "a sparse tensor of layout torch.sparse_csr"),
    ("float8", "conv1.weight", lambda v: v.to(torch.float8_e4m3fn), "a tensor of dtype float8_e4m3fn"),
    (
        "quantized",
        "fc.weight",
        lambda v: torch.quantize_per_tensor(v, 0.1, 0, torch.qint8),
        "a quantized tensor (torch.qint8)",
    ),
    ("nested", "fc.bias", lambda v: torch.nested.nested_tensor([v[:4], v[4:]]), "a nested tensor"),
    ("meta", "fc.bias", lambda v: v.to("meta"), "a meta tensor (it holds no data)"),
    (
        "complex",
        "layer1.0.conv1.weight",
        lambda v: torch.complex(v, v),
        "a tensor of dtype complex64: a float32 weight would drop its imaginary part",
    ),
    ("int8", "layer4.1.conv2.weight", lambda v: (v * 100).to(torch.int8), "a tensor of dtype int8: weights are float"),
    ("bool", "bn1.weight", lambda v: v > 0, "a tensor of dtype bool"),
    ("uint16", "bn1.weight", lambda v: (v * 100).to(torch.uint16), "a tensor of dtype uint16"),
    ("int64_weight", "bn1.running_mean", lambda v: v.long(), "a tensor of dtype int64"),
    ("int", "bn1.bias", lambda v: 3, "holds an int, not a tensor"),
    ("list", "bn1.bias", lambda v: [v], "holds a list, not a tensor"),
    ("dict", "layer2.0.conv1.weight", lambda v: {"weight": v}, "holds a dict, not a tensor"),
]


@pytest.mark.keras
@pytest.mark.parametrize(("key", "damage", "kind"), [d[1:] for d in PTH_DAMAGE], ids=[d[0] for d in PTH_DAMAGE])
def test_a_tensor_no_float32_weight_holds_is_named_with_its_kind(
    tmp_path: Path, state: dict[str, torch.Tensor], key: str, damage: Callable[[torch.Tensor], Any], kind: str
) -> None:
    ckpt = tmp_path / "damaged.pth"
    torch.save({**state, key: damage(state[key])}, ckpt)
    port_to_keras(ckpt, key, kind)


@pytest.mark.keras
def test_keys_and_values_inside_a_wrapper_are_named(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    """A training script's wrapper, a non-string key and non-tensor values beside the weights: each named."""
    inner: dict[Any, Any] = {f"module.{k}": v for k, v in state.items()}
    inner[7] = torch.ones(3)
    inner[("a", 1)] = torch.ones(3)
    inner["module.fc.bias"] = "ten classes"
    ckpt = tmp_path / "wrapped.pth"
    torch.save({"state_dict": inner, "epoch": 3, "optimizer": {"state": {0: {"step": 1}}}}, ckpt)
    out = tmp_path / "out.weights.h5"
    text = invoke(["port", ckpt, "--spec", SPEC, *SET, "--to", "keras", "-o", out], 2).output
    # the prefix stays where not every key is a string with it: the names are those in the file
    error_line(text, ckpt, "module.fc.bias", "holds a str, not a tensor")
    error_line(text, ckpt, "7", "a key of type int, not a string: a state_dict's keys are tensor names")
    error_line(text, ckpt, "<a tuple>", "a key of type tuple, not a string")
    assert len(text.splitlines()) == 3 and not out.exists()
    error = refused_by_api(ckpt, "module.fc.bias", "holds a str, not a tensor")
    assert [p.field for p in error.problems] == ["module.fc.bias", "7", "<a tuple>"]


def test_counters_are_int64_and_a_wrapped_prefixed_checkpoint_reads(
    tmp_path: Path, state: dict[str, torch.Tensor]
) -> None:
    """What is accepted: the norms' int64 step counters, a wrapper beside other entries, a module. prefix."""
    ckpt = tmp_path / "ddp.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3, "args": ["x"]}, ckpt)
    read = read_torch_checkpoint(ckpt)
    assert list(read) == list(state)
    assert read["bn1.num_batches_tracked"].dtype == np.int64
    assert all(v.dtype == np.float32 for k, v in read.items() if not k.endswith("num_batches_tracked"))
    model = archgen.build(SPEC, weights=ckpt, input_size=32, head__classes=10)
    assert torch.equal(model.state_dict()["layer3.1.bn2.running_var"], state["layer3.1.bn2.running_var"])


@pytest.mark.keras
@pytest.mark.parametrize("command", ["build", "compare", "export"])
def test_every_command_that_reads_weights_refuses_the_same_way(
    tmp_path: Path, state: dict[str, torch.Tensor], command: str
) -> None:
    ckpt = tmp_path / "complex.pth"
    torch.save({**state, "fc.weight": state["fc.weight"].to(torch.complex128)}, ckpt)
    out = tmp_path / "model.pt"
    args: list[object] = {
        "build": ["build", SPEC, "--weights", ckpt, *SET, *SIZE],
        "compare": ["compare", SPEC, "--weights", ckpt, *SET, *SIZE],
        "export": ["export", SPEC, "--format", "torchscript", "--weights", ckpt, *SET, *SIZE, "-o", out],
    }[command]
    refused_by_cli(args, ckpt, "fc.weight", "a tensor of dtype complex128: a float32 weight would drop", out)


# -- .safetensors -----------------------------------------------------------------------------------------------

ST_DAMAGE: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor], str]] = [
    ("complex", "fc.weight", lambda v: torch.complex(v, v), "a tensor of dtype complex64: a float32 weight would drop"),
    ("int8", "conv1.weight", lambda v: (v * 100).to(torch.int8), "a tensor of dtype int8"),
    ("bool", "bn1.weight", lambda v: v > 0, "a tensor of dtype bool"),
    ("int64_weight", "bn1.running_mean", lambda v: v.long(), "a tensor of dtype int64"),
    ("float8", "conv1.weight", lambda v: v.to(torch.float8_e4m3fn), "a tensor of dtype F8_E4M3: low-precision"),
]


@pytest.mark.keras
@pytest.mark.parametrize(("key", "damage", "kind"), [d[1:] for d in ST_DAMAGE], ids=[d[0] for d in ST_DAMAGE])
def test_a_safetensors_tensor_no_float32_weight_holds_is_named(
    tmp_path: Path, state: dict[str, torch.Tensor], key: str, damage: Callable[[torch.Tensor], torch.Tensor], kind: str
) -> None:
    ckpt = tmp_path / "damaged.safetensors"
    save_file({**state, key: damage(state[key])}, ckpt)
    port_to_keras(ckpt, key, kind)


def raw_safetensors(path: Path, header: bytes | dict[str, Any], data: bytes = b"", length: int | None = None) -> Path:
    """A .safetensors file written byte by byte: the header's length, the header, the data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def f32(shape: list[int], begin: int = 0) -> dict[str, Any]:
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, begin + 4 * int(np.prod(shape))]}


# (id, header, data, the length written, the field named, a piece of the message)
ST_HEADERS: list[tuple[str, bytes | dict[str, Any], bytes, int | None, str, str]] = [
    ("short", b"", b"", 0, "", "the header is not JSON"),
    ("huge_length", b"{}", b"", 1 << 40, "", "the header declares 1,099,511,627,776 bytes"),
    ("not_json", b"{not json", b"", None, "", "the header is not JSON"),
    ("deep_json", b"[" * 100_000 + b"]" * 100_000, b"", None, "", "the header is not JSON"),
    ("a_list", b"[1, 2]", b"", None, "", "the header is a JSON list, not an object"),
    ("duplicate", b'{"a": {}, "a": {}}', b"", None, "", "the header is not JSON (the key 'a' appears twice)"),
    ("dtype", {"fc.bias": {"dtype": "Q7", "shape": [10], "data_offsets": [0, 40]}}, bytes(40), None, "fc.bias", "Q7"),
    (
        "shape",
        {"fc.bias": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}},
        bytes(4),
        None,
        "fc.bias",
        "shape",
    ),
    ("outside", {"fc.bias": f32([10])}, bytes(8), None, "fc.bias", "are not within the 8 bytes of data"),
    ("size", {"fc.bias": {**f32([10]), "shape": [1 << 40]}}, bytes(40), None, "fc.bias", "40 bytes of data for a F32"),
    ("overlap", {"fc.bias": f32([10]), "bn1.bias": f32([64], 36)}, bytes(292), None, "bn1.bias", "overlaps"),
    ("metadata", {"__metadata__": {"format": 1}}, b"", None, "", "__metadata__ is not a mapping of strings"),
]


@pytest.mark.keras
@pytest.mark.parametrize(
    ("header", "data", "length", "field", "kind"), [h[1:] for h in ST_HEADERS], ids=[h[0] for h in ST_HEADERS]
)
def test_a_hostile_safetensors_header_is_refused_before_any_data_is_read(
    tmp_path: Path, header: bytes | dict[str, Any], data: bytes, length: int | None, field: str, kind: str
) -> None:
    ckpt = raw_safetensors(tmp_path / "hostile.safetensors", header, data, length)
    port_to_keras(ckpt, field, f"cannot read as safetensors: {kind}" if not field else kind)


def test_a_truncated_safetensors_file_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "tiny.safetensors"
    ckpt.write_bytes(b"\x10\x00")
    refused_by_api(ckpt, "", "cannot read as safetensors: the file is 2 bytes, shorter than the 8-byte header")


def test_safetensors_are_read_without_torch_or_safetensors(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    """archgen's core reads .safetensors (bfloat16 included) itself, where neither torch nor safetensors imports."""
    ckpt = tmp_path / "bf16.safetensors"
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}, ckpt)
    hidden = hide_modules(tmp_path / "hidden", ["torch", "safetensors"])
    script = (
        "import sys; from pathlib import Path; from archgen.backends.torch.weights_file import read_state; "
        f"s = read_state(Path({str(ckpt)!r})); "
        "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules, sorted(sys.modules); "
        "print(len(s), s['fc.weight'].dtype, s['bn1.num_batches_tracked'].dtype)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(hidden), str(ROOT)))}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(state)), "float32", "int64"]


# -- the same arrays from every format --------------------------------------------------------------------------

FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", FLOATS, ids=[str(d).removeprefix("torch.") for d in FLOATS])
def test_every_float_dtype_reads_the_same_from_pth_and_safetensors(
    tmp_path: Path, state: dict[str, torch.Tensor], dtype: torch.dtype
) -> None:
    """float16 and bfloat16 widened to float32 exactly (as torch's .float() does), float64 kept."""
    saved = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    pth, st = tmp_path / "w.pth", tmp_path / "w.safetensors"
    torch.save(saved, pth)
    save_file(saved, st)
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    from_pth, from_st = read_torch_checkpoint(pth), read_torch_checkpoint(st)
    assert list(from_pth) == list(saved) and sorted(from_st) == sorted(saved)  # safetensors sorts its own
    for key, value in saved.items():
        want = value.numpy() if key.endswith("num_batches_tracked") else value.to(wide).numpy()
        for got in (from_pth[key], from_st[key]):
            assert got.dtype == want.dtype and got.shape == want.shape, key
            np.testing.assert_array_equal(got, want, err_msg=key)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_precision_safetensors_build_the_model(
    tmp_path: Path, state: dict[str, torch.Tensor], dtype: torch.dtype
) -> None:
    ckpt = tmp_path / "half.safetensors"
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, ckpt)
    assert "ok: torch model matches the IR" in invoke(["build", SPEC, "--weights", ckpt, *SET, *SIZE]).output
    model = archgen.build(SPEC, weights=ckpt, input_size=32, head__classes=10)
    assert torch.equal(model.state_dict()["fc.weight"], state["fc.weight"].to(dtype).float())


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_keras_weights_of_every_float_dtype_read_as_the_pth_does(
    tmp_path: Path, state: dict[str, torch.Tensor], dtype: str
) -> None:
    """A .pth of ``dtype`` ported to Keras, its arrays rewritten in ``dtype`` as Keras writes them (bfloat16:
    2-byte opaque values marked dtype="bfloat16"), ported back: the .pth's arrays, as the float32 model holds them."""
    import h5py
    import ml_dtypes

    pth = tmp_path / "w.pth"
    torch.save({k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v for k, v in state.items()}, pth)
    keras_file, back = tmp_path / "w.weights.h5", tmp_path / "back.safetensors"
    invoke(["port", pth, "--spec", SPEC, *SET, "--to", "keras", "-o", keras_file, "--no-verify"])
    target = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    with h5py.File(keras_file, "r+") as f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            values = f[name][()].astype(target)
            del f[name]
            f.create_dataset(name, data=values)  # what Keras' H5IOStore does
            if dtype == "bfloat16":
                f[name].attrs["dtype"] = "bfloat16"
    with h5py.File(keras_file, "r") as f:
        first = f["layers/conv2d/vars/0"]
        assert (first.dtype.kind, first.dtype.itemsize) == (("V", 2) if dtype == "bfloat16" else ("f", target.itemsize))
    invoke(["port", keras_file, "--spec", SPEC, *SET, "--to", "torch", "-o", back, "--no-verify"])
    want, got = read_torch_checkpoint(pth), read_torch_checkpoint(back)
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        if key.endswith("num_batches_tracked"):  # Keras keeps no step counter: they come back as 0
            assert got[key].dtype == np.int64 and got[key] == 0
        else:
            assert got[key].dtype == np.float32, key
            np.testing.assert_array_equal(got[key], value.astype(np.float32), err_msg=key)


# -- Keras .weights.h5 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_weights(tmp_path_factory: pytest.TempPathFactory, state: dict[str, torch.Tensor]) -> Path:
    """The random resnet18 as the spec's Keras model saves it (written by Keras itself, not by archgen)."""
    from archgen.runtime.weights import check_state

    folder = tmp_path_factory.mktemp("keras")
    pth, out = folder / "r18.pth", folder / "r18.weights.h5"
    torch.save(state, pth)
    keras = registry.get("keras")
    _, network = archgen.compile_spec(SPEC, ["head.classes=10"])
    model = keras.build(network)
    keras.set_weights(model, network, check_state(read_torch_checkpoint(pth), network, pth))
    model.save_weights(str(out))
    return out


CONV1 = "layers/conv2d/vars/0"  # conv1.weight, (7, 7, 3, 64) in Keras' layout
BN1 = "layers/batch_normalization/vars/0"  # bn1's gamma


def _replace(f: Any, name: str, **kwargs: Any) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def _external(f: Any, folder: Path) -> None:
    raw = folder / "conv1.raw"
    raw.write_bytes(f[CONV1][()].tobytes())
    _replace(f, CONV1, shape=(7, 7, 3, 64), dtype="<f4", external=[(str(raw), 0, raw.stat().st_size)])


def _virtual(f: Any, folder: Path) -> None:
    import h5py

    source = folder / "source.h5"
    with h5py.File(source, "w") as s:
        s["x"] = f[CONV1][()]
    layout = h5py.VirtualLayout(shape=(7, 7, 3, 64), dtype="<f4")
    layout[...] = h5py.VirtualSource(str(source), "x", shape=(7, 7, 3, 64))
    del f[CONV1]
    f.create_virtual_dataset(CONV1, layout)


def _external_link(f: Any, folder: Path) -> None:
    import h5py

    other = folder / "other.h5"
    with h5py.File(other, "w") as o:
        o["x"] = f[BN1][()]
    del f[BN1]
    f[BN1] = h5py.ExternalLink(str(other), "/x")


def _soft_link(f: Any, folder: Path) -> None:
    import h5py

    del f[BN1]
    f[BN1] = h5py.SoftLink("/layers/batch_normalization/vars/1")


# (id, what is done to a valid file, the field named, a piece of the message)
H5_DAMAGE: list[tuple[str, Callable[[Any, Path], None], str, str]] = [
    (
        "strings",
        lambda f, d: _replace(f, CONV1, data=np.full((7, 7, 3, 64), b"x", dtype="S1")),
        "conv1",
        f"'{CONV1}' holds |S1 values, not a float array",
    ),
    (
        "integers",
        lambda f, d: _replace(f, CONV1, data=np.ones((7, 7, 3, 64), dtype=np.int32)),
        "conv1",
        f"'{CONV1}' holds int32 values, not a float array",
    ),
    (
        "marked",  # Keras compares this attribute with "bfloat16" and would fail on an array
        lambda f, d: f[BN1].attrs.__setitem__("dtype", np.array([1, 2])),
        "bn1",
        f"'{BN1}' holds float32 marked dtype=[1 2] values",
    ),
    ("external_storage", _external, "conv1", f"'{CONV1}' is stored in external files ("),
    ("virtual", _virtual, "conv1", f"'{CONV1}' is a virtual dataset"),
    ("soft_link", _soft_link, "bn1", f"'{BN1}' is a soft link (to '/layers/batch_normalization/vars/1')"),
    ("external_link", _external_link, "bn1", f"'{BN1}' is an external link (to '"),
    (
        "huge_compressed",  # 4 TiB declared, a few KB in the file
        lambda f, d: _replace(f, CONV1, shape=(1 << 20, 1 << 20), dtype="<f4", compression="gzip", chunks=(1024, 1024)),
        "conv1",
        f"'{CONV1}' has shape (1048576, 1048576) in the file, the spec needs (7, 7, 3, 64)",
    ),
    (
        "compressed",
        lambda f, d: _replace(f, CONV1, data=f[CONV1][()], compression="gzip"),
        "conv1",
        f"'{CONV1}' is stored compressed or filtered (deflate)",
    ),
    (
        "never_written",
        lambda f, d: _replace(f, CONV1, shape=(7, 7, 3, 64), dtype="<f4"),
        "conv1",
        f"'{CONV1}' holds no data",
    ),
    (
        "loop",
        lambda f, d: f.__setitem__("layers/conv2d/loop", f["layers"]),
        "",
        "'layers/conv2d/loop' is a second link to an object already seen",
    ),
    (
        "group_in_vars",
        lambda f, d: f.create_group("layers/conv2d/vars/extra"),
        "",
        "'layers/conv2d/vars/extra' is a group where Keras reads a layer's variables",
    ),
    (
        "named_type",
        lambda f, d: f.__setitem__("layers/kind", np.dtype("<f4")),
        "",
        "'layers/kind' is a datatype, not a group or an array",
    ),
]


@pytest.mark.keras
@pytest.mark.parametrize(("damage", "field", "kind"), [d[1:] for d in H5_DAMAGE], ids=[d[0] for d in H5_DAMAGE])
def test_a_hostile_keras_file_is_refused_before_keras_reads_it(
    tmp_path: Path, keras_weights: Path, damage: Callable[[Any, Path], None], field: str, kind: str
) -> None:
    import h5py
    from archgen.backends.keras.weights_file import check_file as check_keras_file

    ckpt = tmp_path / "hostile.weights.h5"
    shutil.copyfile(keras_weights, ckpt)
    with h5py.File(ckpt, "r+") as f:
        damage(f, tmp_path)
    out = tmp_path / "out.pth"
    refused_by_cli(["port", ckpt, "--spec", SPEC, *SET, "--to", "torch", "-o", out], ckpt, field, kind, out)
    keras = registry.get("keras")
    _, network = archgen.compile_spec(SPEC, ["head.classes=10"])
    with pytest.raises(archgen.CheckpointError) as info:
        check_keras_file(ckpt, keras.build(network), network)
    assert (info.value.file, info.value.field) == (str(ckpt), field) and kind in info.value.message


@pytest.mark.keras
def test_a_truncated_keras_file_is_refused(tmp_path: Path, keras_weights: Path) -> None:
    ckpt = tmp_path / "cut.weights.h5"
    ckpt.write_bytes(keras_weights.read_bytes()[: keras_weights.stat().st_size // 2])
    out = tmp_path / "out.pth"
    args = ["port", ckpt, "--spec", SPEC, *SET, "--to", "torch", "-o", out]
    text = invoke(args, 2).output
    assert text.startswith(f"error: {ckpt}: ") and not out.exists()


# -- files that are not regular files ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, suffix: str) -> None:
    """Opening a FIFO blocks until a writer comes: it is refused before any open (a hang fails on the timeout)."""
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    done = run_archgen(["build", SPEC, "--weights", fifo, *SET, *SIZE], timeout=120)
    assert done.returncode == 2, done.stderr
    first = done.stderr.splitlines()[0]
    assert first == f"error: {fifo}: is a FIFO (named pipe), not a regular file: a checkpoint is read from a file"
    assert "Traceback" not in done.stderr


@pytest.mark.keras
def test_a_fifo_as_a_keras_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo, out = tmp_path / "pipe.weights.h5", tmp_path / "out.pth"
    os.mkfifo(fifo)
    done = run_archgen(["port", fifo, "--spec", SPEC, *SET, "--to", "torch", "-o", out], timeout=240)
    assert done.returncode == 2, done.stderr
    assert f"error: {fifo}: is a FIFO (named pipe), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_only_regular_files_and_links_to_them_are_read(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    real = tmp_path / "real.pth"
    torch.save(state, real)
    link = tmp_path / "link.pth"
    link.symlink_to(real)
    assert list(read_torch_checkpoint(link)) == list(state)
    folder = tmp_path / "folder.pth"
    folder.mkdir()
    dangling = tmp_path / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "gone.safetensors")
    for path, kind in [
        (folder, "is a folder, not a regular file"),
        (Path("/dev/null"), "is a character device, not a regular file"),
        (dangling, "cannot read the file: No such file or directory"),
    ]:
        refused_by_api(path, "", kind)


# -- memory: what a file may claim before it is checked ---------------------------------------------------------


def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``mib`` MiB of zero bytes (about 1 KB per MiB), and the CRC-32 of those bytes."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every MiB
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    return block * mib + b"\x03\x00", crc  # an empty final block ends the stream


def write_zip(path: Path, records: list[tuple[str, bytes, int, int, int]], aliases: int = 0) -> Path:
    """A zip archive written byte by byte: (name, data as stored, method, CRC-32, declared uncompressed size);
    ``aliases`` more directory entries name the last record's bytes again (records that overlap)."""
    out, central = bytearray(), bytearray()
    entries = []
    for name, data, method, crc, size in records:
        raw = name.encode()
        head = struct.pack("<HHHHHIIIH", 20, 0, method, 0, 0, crc, len(data), size, len(raw))
        entries.append((head, len(out)))
        central += struct.pack("<IH", 0x02014B50, 20) + head + struct.pack("<HHHHII", 0, 0, 0, 0, 0, len(out)) + raw
        out += struct.pack("<I", 0x04034B50) + head + struct.pack("<H", 0) + raw + data
    last_head, last_offset = entries[-1]
    name = records[-1][0].encode()
    for _ in range(aliases):
        central += struct.pack("<IH", 0x02014B50, 20) + last_head + struct.pack("<HHHHII", 0, 0, 0, 0, 0, last_offset)
        central += name
    count = len(records) + aliases
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


def torch_records() -> list[tuple[str, bytes, int, int, int]]:
    """The records of a small torch.save archive, stored as torch stores them."""
    buffer = io.BytesIO()
    torch.save({"fc.bias": torch.ones(10)}, buffer)
    with zipfile.ZipFile(buffer) as archive:
        return [(i.filename, archive.read(i), 0, i.CRC, i.file_size) for i in archive.infolist()]


def zip_bomb(path: Path, mib: int) -> Path:
    """A torch archive whose storage record is ``mib`` MiB of zeros, deflated (about a thousandth of it)."""
    deflated, crc = deflated_zeros(mib)
    records = torch_records()
    return write_zip(
        path, [(n, deflated, 8, crc, mib << 20) if n.endswith("/data/0") else (n, *rest) for n, *rest in records]
    )


def test_torch_records_rebuilt_byte_by_byte_still_load(tmp_path: Path) -> None:
    """write_zip makes archives torch reads: what the refusals below refuse is only what they changed."""
    loaded = read_torch_checkpoint(write_zip(tmp_path / "plain.pth", torch_records()))
    assert list(loaded) == ["fc.bias"] and loaded["fc.bias"].tolist() == [1.0] * 10


def test_a_zip_record_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    """Stored records that declare more than they store, or more than the whole file holds; a damaged archive."""
    records = torch_records()
    liar = [(n, d, m, c, 1 << 30) if n.endswith("/data/0") else (n, d, m, c, s) for n, d, m, c, s in records]
    ckpt = write_zip(tmp_path / "liar.pth", liar)
    refused_by_api(ckpt, "", "record 'archive/data/0' is stored uncompressed but declares 1,073,741,824 bytes for 40")
    big = [*records, ("archive/data/1", bytes(1 << 20), 0, zlib.crc32(bytes(1 << 20)), 1 << 20)]
    assert read_torch_checkpoint(write_zip(tmp_path / "big.pth", big))  # an unreferenced record: read
    ckpt = write_zip(tmp_path / "aliases.pth", big, aliases=100)  # 100 more names for its 1 MiB
    size = ckpt.stat().st_size
    declared = sum(record[4] for record in records) + 101 * (1 << 20)
    refused_by_api(ckpt, "", f"its records declare {declared:,} bytes in a file of {size:,}")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(ckpt.read_bytes()[:-30])
    refused_by_api(truncated, "", "cannot read as a PyTorch zip archive")


def _legacy_overdeclared(path: Path) -> Path:
    """A torch < 1.6 (non-zip) pickle whose storage declares 8 GB; its data holds 400 KB."""
    buffer = io.BytesIO()
    torch.save({"fc.bias": torch.arange(100_000, dtype=torch.float32)}, buffer, _use_new_zipfile_serialization=False)
    numel = b"J" + struct.pack("<i", 100_000)  # the storage's element count, the first in the pickle
    raw = buffer.getvalue()
    assert raw.count(numel) >= 1
    path.write_bytes(raw.replace(numel, b"J" + struct.pack("<i", 2_000_000_000), 1))
    return path


def test_a_legacy_pickle_is_read_as_the_zip_format_is(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    """torch < 1.6's format (torchvision's weight files before 2021) is read, not refused."""
    legacy, current = tmp_path / "legacy.pth", tmp_path / "current.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    torch.save(state, current)
    assert not legacy.read_bytes().startswith(b"PK")
    want, got = read_torch_checkpoint(current), read_torch_checkpoint(legacy)
    assert list(got) == list(want)
    assert all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)


def peak_rss_mib(args: list[object], folder: Path) -> tuple[int, str, int]:
    """``python -m archgen.cli ARGS``: its exit code, stderr and peak resident memory (MiB), measured by
    ``os.wait4`` for that one process (RUSAGE_CHILDREN would be the largest of every child so far)."""
    err = folder / f"stderr{len(list(folder.iterdir()))}.txt"
    with open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "archgen.cli", *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr
        )
    timer = threading.Timer(240, process.kill)  # a hang fails the test instead of blocking it
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, err.read_text(), usage.ru_maxrss // 1024  # Linux: KiB


def test_a_zip_bomb_and_an_overdeclared_legacy_storage_are_refused_within_bounded_memory(tmp_path: Path) -> None:
    """A 2 MB .pth whose storage record is 2 GiB of deflated zeros makes torch.load take 2.5 GB (measured)
    before anything fails; archgen refuses it from the archive's directory. A legacy pickle that declares an
    8 GB storage costs torch address space, never memory. Each peak is compared with the same command's on
    a file refused at once (the imports' own memory, about 650 MB with CUDA's torch)."""
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    bomb = zip_bomb(tmp_path / "bomb.pth", 2048)
    assert bomb.stat().st_size < 3 << 20
    legacy = _legacy_overdeclared(tmp_path / "legacy.pth")
    logs = tmp_path / "logs"
    logs.mkdir()
    runs = {}
    for name, path in (("garbage", garbage), ("bomb", bomb), ("legacy", legacy)):
        runs[name] = peak_rss_mib(["build", SPEC, "--weights", path, *SET, *SIZE], logs)
    base = runs["garbage"][2]
    expect = {
        "garbage": f"error: {garbage}: cannot read as a PyTorch state_dict",
        "bomb": f"error: {bomb}: record 'archive/data/0' is compressed (deflate, 2,147,483,648 bytes declared)",
        "legacy": f"error: {legacy}: cannot read as a PyTorch state_dict (loaded with weights_only=True): storage",
    }
    for name, (code, stderr, peak) in runs.items():
        assert code == 2, f"{name}: exit {code}\n{stderr}"
        assert stderr.startswith(expect[name]) and "Traceback" not in stderr and "MemoryError" not in stderr, stderr
        assert peak < base + 256, f"{name}: peak {peak} MiB, {base} MiB refusing garbage"
