"""Reading checkpoint files faithfully, or refusing them with a CheckpointError that names the tensor.

What a checkpoint may hold, whichever format it comes in (``.pth``/``.pt``/``.bin``, ``.safetensors``,
Keras ``.weights.h5``):

- Weights are floating point: float32 as saved; float16 and bfloat16 widened to float32, which holds
  every value of both exactly (bfloat16 is the upper half of a float32: its 16 bits are shifted up);
  float64 kept as float64 (what float64 training saves; a float32 model rounds it when it is loaded,
  ``archgen compare --dtype float64`` uses it as it is). The same tensor therefore gives the same numpy
  array from every format.
- The norms' step counters (``*.num_batches_tracked``) are int64, as torch saves them; they hold no weight.
- Everything else is refused, naming the tensor and its kind, because no float32 weight holds it
  faithfully: complex tensors (their imaginary part would be dropped), integer and bool tensors (a
  weight stored as integers is quantized or is not a weight), float8 (scaled values whose scales live
  elsewhere), quantized, sparse, nested and meta tensors, non-string keys, and values that are not
  tensors (an int, a list, a dict below the state_dict).

What reading a file may cost before its contents are checked is bounded by the file's size:

- Only regular files are opened (a symlink to one is followed); a FIFO, device or socket would block
  ``open()`` or ``read()`` forever, a folder cannot be read.
- ``.safetensors`` is parsed here (an 8-byte header length, a JSON header, the data), without torch: the
  header is at most ``MAX_SAFETENSORS_HEADER`` bytes (safetensors' own limit) and inside the file, every
  tensor's bytes are its dtype's size times its shape's and lie inside the file, none overlapping.
- A ``.pth`` zip archive (torch >= 1.6) is inspected before torch reads it: ``torch.save`` stores every
  record uncompressed, so a compressed record is refused (a few MB of deflate can declare gigabytes, which
  torch would allocate before anything can be checked), and so is an archive whose records declare more
  bytes than the file holds, which no archive ``torch.save`` wrote can do.
- A legacy ``.pth`` (torch < 1.6, or ``_use_new_zipfile_serialization=False``; torchvision's weight files
  from before 2021 are such) is read, not refused: torch checks each storage's declared size against the
  size written beside its data before reading that data, so an over-declared storage costs address space
  only, never touched memory, and is refused as unreadable ("storage has wrong byte size").
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import CheckpointError, MissingFramework, Problem

MAX_SAFETENSORS_HEADER = 100_000_000  # bytes: the limit safetensors itself reads headers up to
MAX_KEY_SHOWN = 120  # characters of a key or record name shown in a message
COUNTER = "num_batches_tracked"  # the norms' step counters: int64, no weight
ZIP_MAGIC = b"PK\x03\x04"  # how torch.load tells its zip format from a legacy pickle (the first 4 bytes)

_ZIP_METHODS = {8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstandard"}

# safetensors dtype -> (numpy dtype of its little-endian bytes, or None where numpy has none; bits per value)
SAFETENSORS_DTYPES: dict[str, tuple[str | None, int]] = {
    "BOOL": ("|b1", 8),
    "U8": ("|u1", 8),
    "I8": ("|i1", 8),
    "U16": ("<u2", 16),
    "I16": ("<i2", 16),
    "U32": ("<u4", 32),
    "I32": ("<i4", 32),
    "U64": ("<u8", 64),
    "I64": ("<i8", 64),
    "F16": ("<f2", 16),
    "BF16": ("<u2", 16),  # read as its bits, then widened (see bfloat16_to_float32)
    "F32": ("<f4", 32),
    "F64": ("<f8", 64),
    "C64": ("<c8", 64),
    "F8_E5M2": (None, 8),
    "F8_E4M3": (None, 8),
    "F8_E8M0": (None, 8),
    "F6_E2M3": (None, 6),
    "F6_E3M2": (None, 6),
    "F4": (None, 4),
}


@dataclass(frozen=True)
class Unloadable:
    """A value that a reader found but cannot turn into a numpy array: what it is, and what would help."""

    kind: str  # "a sparse tensor of layout torch.sparse_coo", "a tensor of dtype F8_E4M3"
    hint: str = ""


def problem(path: Path | str, field: str, message: str) -> Problem:
    return Problem(str(path), None, None, field, message)


def shown(name: object) -> str:
    """A key or record name for a message: a string as it is (cut short), anything else by its type."""
    if isinstance(name, str):
        return name if len(name) <= MAX_KEY_SHOWN else name[: MAX_KEY_SHOWN - 3] + "..."
    if isinstance(name, int | float | bytes) or name is None:
        text = repr(name)
        return text if len(text) <= MAX_KEY_SHOWN else text[: MAX_KEY_SHOWN - 3] + "..."
    return f"<a {type(name).__name__}>"


def _numpy() -> Any:
    try:
        import numpy as np
    except ImportError:
        raise MissingFramework("reading a checkpoint needs numpy: pip install 'archgen[torch]'") from None
    return np


# -- regular files ---------------------------------------------------------------------------------------------

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file: a checkpoint is read from a file"


def regular_file(path: Path) -> int:
    """The size of ``path`` if it is a regular file (or a symlink to one); otherwise a CheckpointError.

    Checked with ``os.stat`` before anything opens it: opening a FIFO blocks until a writer comes."""
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CheckpointError(problem(path, "", f"cannot read the file: {reason}")) from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(problem(path, "", _not_regular(st.st_mode)))
    return st.st_size


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[tuple[io.BufferedReader, int]]:
    """``path`` opened for reading, and its size, if it is a regular file, checked before and after the open.

    Opened with ``O_NONBLOCK`` (no effect on a regular file), so that a FIFO swapped in after the first
    check is refused by the second instead of blocking the open."""
    regular_file(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CheckpointError(problem(path, "", f"cannot read the file: {exc.strerror or exc}")) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(problem(path, "", _not_regular(st.st_mode)))
        yield fh, st.st_size


# -- the values of a state_dict --------------------------------------------------------------------------------


def bfloat16_to_float32(bits: Any) -> Any:
    """bfloat16 values (their uint16 bits) as float32, exactly: a bfloat16 is the upper half of a float32."""
    np = _numpy()
    return (bits.astype(np.uint32) << 16).view(np.float32)


def tensor_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the checkpoint's tensor ``key`` faithfully; None if it can."""
    np = _numpy()
    if isinstance(value, Unloadable):
        return value.kind + (f": {value.hint}" if value.hint else "")
    if not isinstance(value, np.ndarray):
        return f"holds {_article(type(value).__name__)}, not a tensor"
    dtype = value.dtype
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return None
    if dtype == np.int64 and key.rsplit(".", 1)[-1] == COUNTER:
        return None
    if dtype.kind == "c":
        return f"a tensor of dtype {dtype}: a float32 weight would drop its imaginary part"
    floats = "float16, bfloat16, float32 or float64"
    if dtype.kind in "iub":
        return f"a tensor of dtype {dtype}: weights are {floats}; only the norms' {COUNTER} counters are int64"
    return f"a tensor of dtype {dtype}: weights are {floats}"


def unloadable_dtype(name: str) -> Unloadable:
    """A tensor of a dtype numpy has no counterpart for (``float8_e4m3fn``, ``F8_E4M3``, ``F4``, ...)."""
    if name.upper().startswith(("F8", "F6", "F4", "FLOAT8", "FLOAT6", "FLOAT4")):
        hint = "low-precision values scaled by factors stored elsewhere: dequantize the checkpoint first"
    else:
        hint = "neither numpy nor a float32 weight holds such values"
    return Unloadable(f"a tensor of dtype {name}", hint)


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def as_state(state: dict[Any, Any], path: Path) -> dict[str, Any]:
    """The state_dict ``state`` checked key by key: string keys and tensors that float weights hold
    exactly (see the module's docstring), float16 widened to float32; every other entry is named."""
    np = _numpy()
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            what = f"a key of type {type(key).__name__}, not a string: a state_dict's keys are tensor names"
            problems.append(problem(path, shown(key), what))
            continue
        why = tensor_problem(key, value)
        if why is not None:
            problems.append(problem(path, shown(key), why))
            continue
        out[key] = value.astype(np.float32) if value.dtype == np.float16 else value
    if problems:
        raise CheckpointError(problems)
    return out


# -- .safetensors ----------------------------------------------------------------------------------------------


def read_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a ``.safetensors`` file as a numpy array (bfloat16 widened to float32), or an
    ``Unloadable`` where numpy has no such dtype (float8, float6, float4); torch is not imported.

    The header is checked whole before any tensor's data is read (see the module's docstring)."""
    np = _numpy()
    with open_regular(path) as (fh, size):
        infos = _safetensors_header(fh, size, path)
        base = fh.tell()
        out: dict[str, Any] = {}
        for name, (dtype, shape, begin, end) in infos.items():
            numpy_dtype, _ = SAFETENSORS_DTYPES[dtype]
            if numpy_dtype is None:
                out[name] = unloadable_dtype(dtype)
                continue
            fh.seek(base + begin)
            data = np.empty(end - begin, dtype=np.uint8)
            if fh.readinto(memoryview(data)) != end - begin:
                raise CheckpointError(problem(path, name, "the file ends inside this tensor's data (truncated)"))
            array = data.view(np.dtype(numpy_dtype)).reshape(shape)
            array = bfloat16_to_float32(array) if dtype == "BF16" else array.astype(array.dtype.newbyteorder("="))
            out[name] = array
    return out


def _safetensors_header(fh: IO[bytes], size: int, path: Path) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """name -> (dtype, shape, begin, end) of every tensor, in the order of their data; fh is left at the data."""

    def bad(message: str, field: str = "") -> CheckpointError:
        return CheckpointError(problem(path, field, f"cannot read as safetensors: {message}"))

    head = fh.read(8)
    if len(head) < 8:
        raise bad(f"the file is {size} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", head)
    if length > min(size - 8, MAX_SAFETENSORS_HEADER):
        raise bad(f"the header declares {length:,} bytes; the file has {size - 8:,} after the length")
    raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise bad(f"the header is not JSON ({str(exc)[:200] or type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    data_size = size - 8 - length
    infos: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise bad("__metadata__ is not a mapping of strings")
            continue
        field = shown(name)
        if not isinstance(info, dict):
            raise bad(f"its entry is a JSON {type(info).__name__}, not an object", field)
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
            raise bad(f"dtype {shown(dtype)} is not a safetensors dtype", field)
        if not isinstance(shape, list) or len(shape) > 64 or not all(_count(d) for d in shape):
            raise bad(f"shape {shown(str(shape))} is not a list of at most 64 sizes", field)
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_count(d) for d in offsets):
            raise bad("data_offsets is not [begin, end]", field)
        begin, end = offsets
        if not begin <= end <= data_size:
            raise bad(f"data_offsets [{begin}, {end}] are not within the {data_size:,} bytes of data", field)
        bits = SAFETENSORS_DTYPES[dtype][1] * math.prod(shape)
        if bits != 8 * (end - begin):
            raise bad(f"{end - begin:,} bytes of data for a {dtype} tensor of shape {tuple(shape)}", field)
        infos[name] = (dtype, tuple(shape), begin, end)
    ordered = sorted(infos.items(), key=lambda item: (item[1][2], item[1][3]))
    for (first, (_, _, _, end)), (second, (_, _, begin, _)) in itertools.pairwise(ordered):
        if begin < end:
            raise bad(f"its data overlaps that of '{shown(first)}'", shown(second))
    return dict(ordered)


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key '{shown(key)}' appears twice")
        out[key] = value
    return out


# -- .pth zip archives -----------------------------------------------------------------------------------------


def check_torch_archive(fh: IO[bytes], size: int, path: Path) -> None:
    """Refuse a torch zip archive that would make torch allocate more than the file holds (see the module's
    docstring); a legacy pickle (not starting as a zip does, as torch.load tells them apart) passes."""
    fh.seek(0)
    magic = fh.read(4)
    fh.seek(0)
    if magic != ZIP_MAGIC:
        return
    try:
        with zipfile.ZipFile(fh) as archive:
            records = archive.infolist()
    except Exception as exc:  # zipfile reports a damaged archive with several exception types
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(problem(path, "", f"cannot read as a PyTorch zip archive: {reason}")) from None
    problems: list[Problem] = []
    for record in records:
        name = shown(record.filename)
        if record.compress_type != zipfile.ZIP_STORED:
            method = _ZIP_METHODS.get(record.compress_type, f"method {record.compress_type}")
            problems.append(
                problem(
                    path,
                    "",
                    f"record '{name}' is compressed ({method}, {record.file_size:,} bytes declared); torch.save "
                    "stores every record uncompressed, so this archive was not written by torch.save",
                )
            )
        elif record.file_size != record.compress_size:
            problems.append(
                problem(
                    path,
                    "",
                    f"record '{name}' is stored uncompressed but declares {record.file_size:,} bytes "
                    f"for {record.compress_size:,} stored",
                )
            )
    total = sum(record.file_size for record in records)
    if not problems and total > size:
        problems.append(
            problem(
                path,
                "",
                f"its records declare {total:,} bytes in a file of {size:,}: the records of an archive "
                "torch.save wrote are stored uncompressed, side by side, so they hold at most the file's size",
            )
        )
    if problems:
        raise CheckpointError(problems)
    fh.seek(0)
