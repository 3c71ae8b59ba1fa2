"""Read the variables of a CTranslate2 model folder's model.bin with numpy alone.

CTranslate2 writes model.bin (`ModelSpec._serialize`, binary version 6) as: uint32 version,
string spec name, uint32 revision, uint32 count, then per variable: string name, uint8 rank,
uint32 dims, uint8 type id (float32, int8, int16, int32, float16, bfloat16), uint32 byte count,
the bytes; then uint32 alias count and (alias, target) string pairs. A string is a uint16 length
(with its NUL) then UTF-8 and a NUL. Quantized weights (int8, int16) have a float32
`<name>_scale` companion, one scale per output row: value = stored / scale.
"""

from __future__ import annotations

import mmap
import os
import struct

import numpy as np

from engine.errors import ModelLoadError

TYPES: tuple[np.dtype, ...] = tuple(np.dtype(t) for t in (
    "float32", "int8", "int16", "int32", "float16", "uint16"))  # uint16: bfloat16's bits
BFLOAT16 = 5
SUPPORTED_VERSIONS = (5, 6)


class _Reader:
    def __init__(self, buffer: mmap.mmap, source: str) -> None:
        self.buffer = buffer
        self.source = source
        self.offset = 0

    def number(self, fmt: str) -> int:
        try:
            (value,) = struct.unpack_from("<" + fmt, self.buffer, self.offset)
        except struct.error as e:
            raise ModelLoadError(f"{self.source} ends early: a truncated model.bin "
                                 "(download or copy it again)") from e
        self.offset += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str:
        size = self.number("H")
        raw = self.buffer[self.offset:self.offset + size - 1]
        self.offset += size
        return bytes(raw).decode("utf-8")


def read_variables(folder: str, prefix: str = "") -> dict[str, np.ndarray]:
    """The variables of `folder`/model.bin whose names start with `prefix`: float16 ones as
    read-only float16 views of the file, other floats as float32 (quantized ones dequantized with
    their scales; scales themselves not returned), integer scalars such as `encoder/num_heads`
    in their own type.

    Raises:
        ModelLoadError: the file is missing, truncated, or not a CTranslate2 model.bin.
    """
    path = os.path.join(folder, "model.bin")
    try:
        with open(path, "rb") as f:
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    reader = _Reader(buffer, path)
    version = reader.number("I")
    if version not in SUPPORTED_VERSIONS:
        raise ModelLoadError(f"{path} has CTranslate2 binary version {version}; this reader "
                             f"knows {SUPPORTED_VERSIONS} (convert the model with CTranslate2 4.x)")
    reader.string()  # spec name, e.g. WhisperSpec
    reader.number("I")  # spec revision
    index: dict[str, tuple[tuple[int, ...], int, int, int]] = {}  # shape, type, offset, bytes
    for _ in range(reader.number("I")):
        name = reader.string()
        shape = tuple(reader.number("I") for _ in range(reader.number("B")))
        type_id, size = reader.number("B"), reader.number("I")
        index[name] = (shape, type_id, reader.offset, size)
        reader.offset += size
    if reader.offset > len(buffer):
        raise ModelLoadError(f"{path} ends early: a truncated model.bin (download or copy it "
                             "again)")
    for _ in range(reader.number("I")):  # aliases: CTranslate2 stores equal variables once
        alias, target = reader.string(), reader.string()
        if target in index:
            index[alias] = index[target]
    raw = {name: _array(buffer, path, name, *entry) for name, entry in index.items()
           if name.startswith(prefix) or name.removesuffix("_scale").startswith(prefix)}
    return _dequantized(raw)


def _array(buffer: mmap.mmap, path: str, name: str, shape: tuple[int, ...], type_id: int,
           offset: int, size: int) -> np.ndarray:
    if type_id >= len(TYPES):
        raise ModelLoadError(f"{path}: variable {name} has unknown type id {type_id}")
    values = np.frombuffer(buffer, dtype=TYPES[type_id], count=size // TYPES[type_id].itemsize,
                           offset=offset).reshape(shape)
    return _bfloat16_to_float32(values) if type_id == BFLOAT16 else values


def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _dequantized(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, values in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue
        scale = raw.get(name + "_scale")
        if scale is not None:
            rows = values.reshape(values.shape[0], -1).astype(np.float32)
            factors = np.asarray(scale, dtype=np.float32).reshape(-1, 1)
            out[name] = (rows / factors).reshape(values.shape)
        elif values.dtype == np.float16:
            out[name] = values  # a read-only view of the file: the caller converts on its device
        elif values.dtype.kind == "f":
            out[name] = values.astype(np.float32)
        else:
            out[name] = np.array(values)
    return out


def encoder_shape(folder: str) -> tuple[int, int]:
    """The encoder's width (d_model) and mel bins of a CTranslate2 Whisper folder, from the
    shape of model.bin's first convolution (read through the index, the weights left on disk).

    Raises:
        ModelLoadError: model.bin is unreadable or holds no Whisper encoder.
    """
    conv1 = read_variables(folder, prefix="encoder/conv1/weight").get("encoder/conv1/weight")
    if conv1 is None:
        raise ModelLoadError(f"{folder}/model.bin holds no Whisper encoder (no encoder/conv1)")
    return int(conv1.shape[0]), int(conv1.shape[1])
