"""Tensor types of the IR: a dtype and a shape whose dimensions are ints or symbols."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np


class DType(Enum):
    """Element types, named as in the text format."""

    f16 = "f16"
    f32 = "f32"
    f64 = "f64"
    i8 = "i8"
    u8 = "u8"
    i16 = "i16"
    i32 = "i32"
    i64 = "i64"
    bool = "bool"

    def __str__(self) -> str:
        return self.value

    @property
    def np(self) -> np.dtype:
        return _TO_NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.f16, DType.f32, DType.f64)

    @property
    def is_int(self) -> bool:
        return self in (DType.i8, DType.u8, DType.i16, DType.i32, DType.i64)

    @staticmethod
    def from_numpy(dtype) -> "DType":
        try:
            return _FROM_NUMPY[np.dtype(dtype)]
        except KeyError:
            raise TypeError(f"no IR dtype for numpy dtype {dtype}") from None


_TO_NUMPY = {
    DType.f16: np.dtype(np.float16),
    DType.f32: np.dtype(np.float32),
    DType.f64: np.dtype(np.float64),
    DType.i8: np.dtype(np.int8),
    DType.u8: np.dtype(np.uint8),
    DType.i16: np.dtype(np.int16),
    DType.i32: np.dtype(np.int32),
    DType.i64: np.dtype(np.int64),
    DType.bool: np.dtype(np.bool_),
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items()}

Dim = int | str
"""A dimension: a static size or a symbol such as ``"B"`` for a dynamic one."""


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[Dim, ...]

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))
        for d in self.shape:
            if not (isinstance(d, str) or (isinstance(d, int) and d >= 0)):
                raise ValueError(f"bad dimension {d!r} in shape {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> int | None:
        if not self.is_static:
            return None
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"


_TYPE_RE = re.compile(r"^(\w+)\[([^\]]*)\]$")


def parse_type(text: str) -> TensorType:
    """Inverse of ``str(TensorType)``: ``f32[B,784]`` -> TensorType."""
    m = _TYPE_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a tensor type: {text!r}")
    dims = [d.strip() for d in m.group(2).split(",") if d.strip()]
    return TensorType(DType(m.group(1)), tuple(int(d) if d.isdigit() else d for d in dims))


_PROMOTION_ORDER = [DType.bool, DType.u8, DType.i8, DType.i16, DType.i32, DType.i64,
                    DType.f16, DType.f32, DType.f64]


def promote(*dtypes: DType) -> DType:
    """The wider of the given dtypes (the IR only promotes between equal kinds)."""
    return max(dtypes, key=_PROMOTION_ORDER.index)
