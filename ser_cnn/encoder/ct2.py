"""A reader for CTranslate2's ``model.bin``: the named tensors of a converted model, in NumPy.

CTranslate2 (``ctranslate2.specs.model_spec.ModelSpec._serialize``) writes one flat binary
file, little-endian on every platform it ships for::

    uint32 binary_version                           (this reader: 1 to 6)
    string spec_name, uint32 spec_revision          (binary_version >= 2)
    uint32 n_variables, then n_variables times:
        string name
        uint8 rank, uint32 dims[rank]
        uint8 type_id, uint32 n_bytes               (binary_version >= 4; before: item size
                                                     and element count)
        n_bytes of data, row-major
    uint32 n_aliases, then (string alias, string target) pairs   (binary_version >= 3)

where a string is a uint16 length that counts a trailing NUL, then the bytes and the NUL.
Aliases name a tensor that equals another (a tied embedding, say) without storing it twice.

Reading needs nothing but NumPy, so a model's weights can be used without CTranslate2.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ser_cnn.errors import DataError

MAX_BINARY_VERSION = 6  # the newest layout (CTranslate2 4.x writes 6)
MAX_RANK = 8  # dimensions: no CTranslate2 tensor has more than 4; more means a foreign file
# CTranslate2's DataType enum (include/ctranslate2/types.h), in order: the type id is its index.
# bfloat16 has no NumPy dtype: it is read as uint16 and widened to float32 exactly.
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY = {
    "float32": "<f4",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "float16": "<f2",
    "bfloat16": "<u2",
}
_BY_ITEM_SIZE = {4: "float32", 2: "int16", 1: "int8"}  # binary_version < 4 stored only sizes


@dataclass(frozen=True)
class Ct2Header:
    """What a ``model.bin`` says about itself before its tensors."""

    binary_version: int
    spec: str  # the model specification's name, e.g. "WhisperSpec"; "" before version 2
    spec_revision: int


def read_header(path: str | os.PathLike) -> Ct2Header:
    """The binary version and model specification of a CTranslate2 ``model.bin``.

    Raises
    ------
    DataError
        When ``path`` is missing or is not a CTranslate2 model file.
    """
    path = Path(path)
    with _open(path) as f:
        return _header(_Reader(f, path))


def read_ct2(path: str | os.PathLike, *, prefix: str = "") -> dict[str, np.ndarray]:
    """Every tensor of a CTranslate2 ``model.bin``, by name.

    Parameters
    ----------
    path : str or os.PathLike
        The ``model.bin`` file.
    prefix : str, optional
        Read only the tensors whose names start with it (``"encoder/"``); the others are
        skipped without being read.

    Returns
    -------
    dict of str to np.ndarray
        Names as CTranslate2 stores them (``"encoder/conv1/weight"``), in file order, then the
        aliases, each the same array as its target. Arrays have the stored shape (scalars are
        0-d) and dtype: float32, float16, int8, int16 or int32; bfloat16 is widened to float32
        (exactly: it is float32 with the low 16 bits dropped). Quantised weights come with
        their ``<name>_scale`` tensors, as stored.

    Raises
    ------
    DataError
        When ``path`` is missing, truncated, or not a CTranslate2 model file.
    """
    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    with _open(path) as f:
        r = _Reader(f, path)
        header = _header(r)
        for _ in range(r.uint("I", "tensor count")):
            name = r.string("tensor name")
            rank = r.uint("B", f"rank of {name}")
            if rank > MAX_RANK:
                raise r.error(f"tensor {name!r} has rank {rank} (at most {MAX_RANK} expected)")
            shape = tuple(r.uint("I", f"shape of {name}") for _ in range(rank))
            if header.binary_version >= 4:
                type_id = r.uint("B", f"type of {name}")
                if type_id >= len(DTYPES):
                    raise r.error(f"tensor {name!r} has unknown type id {type_id}")
                dtype, n_bytes = DTYPES[type_id], r.uint("I", f"size of {name}")
            else:
                item_size = r.uint("B", f"item size of {name}")
                if item_size not in _BY_ITEM_SIZE:
                    raise r.error(f"tensor {name!r} has unknown item size {item_size}")
                dtype = _BY_ITEM_SIZE[item_size]
                n_bytes = r.uint("I", f"size of {name}") * item_size
            item = np.dtype(_NUMPY[dtype])
            count = int(np.prod(shape, dtype=np.int64))
            if n_bytes != count * item.itemsize:
                raise r.error(
                    f"tensor {name!r} of shape {shape} and type {dtype} needs "
                    f"{count * item.itemsize} bytes, the file says {n_bytes}"
                )
            if not name.startswith(prefix):
                r.skip(n_bytes, name)
                continue
            tensors[name] = _to_array(r.array(item, count, name).reshape(shape), dtype)
        if header.binary_version >= 3:
            for _ in range(r.uint("I", "alias count")):
                alias, target = r.string("alias"), r.string("alias target")
                # a quantised target's scale is shared with the alias too, as CTranslate2 does
                for suffix in ("", "_scale"):
                    if alias.startswith(prefix) and target + suffix in tensors:
                        tensors[alias + suffix] = tensors[target + suffix]
        r.end()
    return tensors


def _to_array(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":  # the upper half of a float32: shift into place, no rounding
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(raw.dtype.newbyteorder("="), copy=False)  # native order for Keras


def _header(r: _Reader) -> Ct2Header:
    version = r.uint("I", "binary version")
    if not 1 <= version <= MAX_BINARY_VERSION:
        raise r.error(
            f"binary version {version}, expected 1 to {MAX_BINARY_VERSION}: not a CTranslate2 "
            "model.bin, or one written by a newer CTranslate2"
        )
    if version < 2:
        return Ct2Header(version, "", 1)
    spec = r.string("model specification")
    return Ct2Header(version, spec, r.uint("I", "specification revision"))


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; expected a CTranslate2 model.bin") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; expected a CTranslate2 model.bin") from None


class _Reader:
    """Little-endian fields of an open file, each failure a DataError naming the field."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path
        self.size = os.fstat(f.fileno()).st_size

    def error(self, problem: str) -> DataError:
        return DataError(f"{self.path}: {problem}; expected a CTranslate2 model.bin")

    def _bytes(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.error(f"ends inside the {what} (truncated at byte {self.size})")
        return data

    def uint(self, code: str, what: str) -> int:
        return struct.unpack("<" + code, self._bytes(struct.calcsize(code), what))[0]

    def string(self, what: str) -> str:
        n = self.uint("H", what)
        data = self._bytes(n, what) if n else b""
        if n == 0 or data[-1:] != b"\0":
            raise self.error(f"malformed {what} (length {n}, no closing NUL)")
        try:
            return data[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not UTF-8") from None

    def skip(self, n: int, name: str) -> None:
        if self.f.tell() + n > self.size:
            raise self.error(f"ends inside tensor {name!r} (truncated at byte {self.size})")
        self.f.seek(n, os.SEEK_CUR)

    def array(self, item: np.dtype, count: int, name: str) -> np.ndarray:
        if self.f.tell() + count * item.itemsize > self.size:
            raise self.error(f"ends inside tensor {name!r} (truncated at byte {self.size})")
        return np.fromfile(self.f, dtype=item, count=count)

    def end(self) -> None:
        extra = self.size - self.f.tell()
        if extra:
            raise self.error(f"{extra} bytes after the last alias")
