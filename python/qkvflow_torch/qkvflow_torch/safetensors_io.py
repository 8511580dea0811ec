"""A small reader and writer of the safetensors format, so that no `safetensors` package is needed.

File layout: an 8-byte little-endian header length N, N bytes of JSON (one entry per tensor:
{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} relative to the data section, plus an optional
"__metadata__" object of string values), padded with spaces to a multiple of 8, then the raw little-endian data.
The writer stores tensors in sorted name order, contiguous, without gaps, as qkvflow's writer does.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import torch

_NP_OF = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "U16": np.uint16,
    "BOOL": np.bool_,
}
_CODE_OF = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A file that is not valid safetensors (the message names what is wrong)."""


def decode(data: bytes, where: str = "<bytes>") -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Tensors (CPU, copies) and metadata of safetensors bytes."""
    if len(data) < 8:
        raise SafetensorsError(f"{where}: {len(data)} bytes; expected at least the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise SafetensorsError(f"{where}: header length {n} does not fit the file of {len(data)} bytes")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsError(f"{where}: the header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: the header is {type(header).__name__}; expected a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or any(not isinstance(v, str) for v in meta.values()):
        raise SafetensorsError(f"{where}: __metadata__ must be an object of strings")
    body = memoryview(data)[8 + n :]
    out: Dict[str, torch.Tensor] = {}
    for name, e in header.items():
        dtype, shape, (begin, end) = e.get("dtype"), e.get("shape"), e.get("data_offsets", (None, None))
        count = int(np.prod(shape)) if shape else 1
        if dtype == "BF16":
            raw = np.frombuffer(body[begin:end], dtype=np.uint16).astype(np.int32) << 16
            t = torch.from_numpy(raw.view(np.float32).copy()).to(torch.bfloat16)
        else:
            if dtype not in _NP_OF:
                raise SafetensorsError(f"{where}: tensor '{name}' has dtype {dtype!r}; expected one of {', '.join(_NP_OF)} or BF16")
            npd = np.dtype(_NP_OF[dtype]).newbyteorder("<")
            if not isinstance(begin, int) or not isinstance(end, int) or not 0 <= begin <= end <= len(body):
                raise SafetensorsError(f"{where}: tensor '{name}' has data offsets {e.get('data_offsets')} outside the data")
            if end - begin != count * npd.itemsize:
                raise SafetensorsError(f"{where}: tensor '{name}' {dtype} {shape} needs {count * npd.itemsize} bytes, has {end - begin}")
            arr = np.frombuffer(body[begin:end], dtype=npd).astype(npd.newbyteorder("="), copy=True)
            t = torch.from_numpy(arr)
        out[name] = t.reshape(shape)
    return out, dict(meta)


def read(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Tensors and metadata of a safetensors file."""
    with open(path, "rb") as f:
        return decode(f.read(), path)


def encode(tensors: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """Safetensors bytes of CPU-copyable tensors (names sorted) with string metadata."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        code = _CODE_OF.get(t.dtype)
        if code is None:
            raise SafetensorsError(f"encode: tensor '{name}' has dtype {t.dtype}; no safetensors code for it")
        if code == "BF16":
            b = (t.to(torch.float32).numpy().view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            b = t.numpy().astype(np.dtype(_NP_OF[code]).newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes a file through a temporary file in the same folder (flushed) and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(path: str, tensors: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes a safetensors file atomically."""
    write_bytes_atomic(path, encode(tensors, metadata))
