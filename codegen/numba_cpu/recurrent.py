"""Whole recurrent layers: fused regions of kind "lstm"/"gru" (ir/passes/recurrent.py) run
as one call of ``K.lstm_layer``/``K.gru_layer`` instead of T unrolled steps.

Region params are ``(xp, w_hh[, b_hh], h0[, c0])``: an LSTM region has 5 with a recurrent
bias and 4 without, a GRU region 4 and 3. Results are ``(H[, c_T])``.
"""

from __future__ import annotations

from .arrays import empty_of
from .emit import Body, Operand

_STATES = {"lstm": 2, "gru": 1}      # h0 (and c0) close the params
_KERNELS = {"lstm": "K.lstm_layer", "gru": "K.gru_layer"}
RECURRENT_KINDS = frozenset(_KERNELS)


def lower_recurrent(body: Body, node, ins: list[Operand]) -> list[Operand]:
    kind = node.attrs["kind"]
    xp, w = ins[0], ins[1]
    states = ins[len(ins) - _STATES[kind]:]
    has_bias = len(ins) == 3 + _STATES[kind]
    bias = body.contig(ins[2]) if has_bias else empty_of(xp.type.dtype)
    args = ", ".join([body.contig(xp), body.contig(w), bias] + [body.contig(s) for s in states])
    outs = [body.tmp("v") for _ in node.outputs]
    body.line(f"{', '.join(outs)} = {_KERNELS[kind]}({args})")
    return [Operand(o, v.type) for o, v in zip(outs, node.outputs)]
