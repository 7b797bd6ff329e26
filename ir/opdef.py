"""The machinery of the op table: ``defop`` registers an op once, with everything about it.

An op has input names (``"b?"`` marks an optional trailing input, ``"*xs"`` a variadic
list), attributes with defaults (``REQUIRED`` where there is none), a type rule, flags
and its NumPy reference semantics. ``ir.ops`` holds the definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .types import TensorType

REQUIRED = object()


class Flag:
    """Named op properties with a one-line meaning each; passes ask these, never names."""

    ELEMENTWISE = "elementwise"   # out[i] depends on in[i] only (inputs broadcast)
    REDUCTION = "reduction"       # reduces some dims; fusible with elementwise producers
    NORMALIZATION = "normalization"  # reduce-then-map over rows (softmax, layer_norm)
    VIEW = "view"                 # rearranges or selects elements, computes nothing
    CONTRACTION = "contraction"   # matmul/conv-like: anchors an epilogue region
    COMMUTATIVE = "commutative"   # f(a, b) == f(b, a)
    SIDE_EFFECT = "side_effect"   # must never be removed or merged (guards, externs)
    CREATION = "creation"         # makes a tensor from attributes alone
    RANDOM = "random"             # draws from torch's generator: never fold or merge


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]
    infer: Callable[..., Any]
    ref: Callable[..., Any] | None
    flags: frozenset[str] = field(default_factory=frozenset)
    doc: str = ""

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def is_elementwise(self) -> bool:
        return Flag.ELEMENTWISE in self.flags

    @property
    def is_commutative(self) -> bool:
        return Flag.COMMUTATIVE in self.flags

    @property
    def has_side_effects(self) -> bool:
        return bool({Flag.SIDE_EFFECT, Flag.RANDOM} & self.flags)

    @property
    def arity(self) -> tuple[int, int | None]:
        """(minimum, maximum) number of inputs; maximum None when variadic."""
        if any(n.startswith("*") for n in self.inputs):
            return len(self.inputs) - 1, None
        required = sum(1 for n in self.inputs if not n.endswith("?"))
        return required, len(self.inputs)

    def full_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Attributes with defaults filled in; unknown or missing ones are an error."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise ValueError(f"{self.name}: unknown attribute(s) {sorted(unknown)}")
        out = {}
        for k, default in self.attrs.items():
            if k in attrs:
                out[k] = attrs[k]
            elif default is REQUIRED:
                raise ValueError(f"{self.name}: missing attribute {k!r}")
            else:
                out[k] = default
        return out

    def infer_types(self, in_types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        res = self.infer(in_types, **self.full_attrs(attrs))
        return list(res) if isinstance(res, (list, tuple)) else [res]


OPS: dict[str, OpDef] = {}


def defop(name: str, *, inputs=("x",), attrs=None, infer, ref, flags=(), doc="") -> OpDef:
    if name in OPS:
        raise ValueError(f"op {name!r} defined twice")
    op = OpDef(name, tuple(inputs), dict(attrs or {}), infer, ref, frozenset(flags), doc)
    OPS[name] = op
    return op
