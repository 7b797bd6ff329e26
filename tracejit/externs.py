"""Extern nodes: aten ops the IR has no rule for, called in torch at run time.

The tracer records the op's name and a JSON encoding of its non-tensor arguments, with
tensors replaced by their position among the node's inputs; ``call_extern`` rebuilds the
call. Mutated arguments are cloned first, so an extern node is a pure function of its
inputs (the in-place result is its output), except for torch's RNG state, which it
advances exactly as eager does.
"""

from __future__ import annotations

import ctypes
import functools
import json
from pathlib import Path

import numpy as np
import torch

import ir


def _encode(x, tensor_pos):
    if isinstance(x, torch.Tensor):
        return {"tensor": tensor_pos[id(x)]}
    if isinstance(x, (list, tuple)):
        return {"list": [_encode(v, tensor_pos) for v in x], "tuple": isinstance(x, tuple)}
    if isinstance(x, torch.dtype):
        return {"dtype": str(x).removeprefix("torch.")}
    if isinstance(x, torch.device):
        return {"device": str(x)}
    if isinstance(x, torch.layout):
        return {"layout": str(x).removeprefix("torch.")}
    if isinstance(x, torch.memory_format):
        return {"memory_format": str(x).removeprefix("torch.")}
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"value": x}
    raise ir.errors.TraceJitError(f"cannot record argument {x!r} of an extern call")


def encode_call(args, kwargs, tensors, mutated) -> str:
    pos = {id(t): i for i, t in enumerate(tensors)}
    return json.dumps({"args": [_encode(a, pos) for a in args],
                       "kwargs": {k: _encode(v, pos) for k, v in kwargs.items()},
                       "mutated": list(mutated)}, sort_keys=True)


def _decode(x, tensors):
    if "tensor" in x:
        return tensors[x["tensor"]]
    if "list" in x:
        items = [_decode(v, tensors) for v in x["list"]]
        return tuple(items) if x["tuple"] else items
    for key, ns in (("dtype", torch), ("layout", torch), ("memory_format", torch)):
        if key in x:
            return getattr(ns, x[key])
    if "device" in x:
        return torch.device(x["device"])
    return x["value"]


def _resolve(target: str):
    name, _, overload = target.removeprefix("aten::").partition(".")
    packet = getattr(torch.ops.aten, name)
    return getattr(packet, overload or "default")


def call_extern_torch(node: ir.Node, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run an extern node on torch tensors; returns its outputs as torch tensors."""
    spec = json.loads(node.attrs["call"])
    func = _resolve(node.attrs["target"])
    args = [_decode(a, tensors) for a in spec["args"]]
    kwargs = {k: _decode(v, tensors) for k, v in spec["kwargs"].items()}
    for i in spec["mutated"]:
        args[i] = args[i].clone()
    out = func(*args, **kwargs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for o, v in zip(outs, node.outputs):
        if tuple(o.shape) != v.type.shape and v.type.is_static:
            raise ir.GuardFailed(f"{node.attrs['target']} output shape {v.type.shape}",
                                 tuple(o.shape))
    return outs


def numpy_extern(node: ir.Node, arrays) -> list[np.ndarray]:
    """The host callback backends call for extern nodes: NumPy in, NumPy out."""
    outs = call_extern_torch(node, [torch.from_numpy(np.require(a, requirements=("C", "W")))
                                    for a in arrays])
    return [o.detach().numpy() for o in outs]


@functools.cache
def _libtorch_symbol(name: str) -> int | None:
    """The address of ``name`` in libtorch_cpu, or None."""
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


def _torch_gemm() -> tuple[int, int] | None:
    """The addresses of ``sgemm_`` and ``dgemm_`` in libtorch_cpu, or None."""
    gemm = (_libtorch_symbol("sgemm_"), _libtorch_symbol("dgemm_"))
    return None if None in gemm else gemm


def lend_torch_gemm() -> None:
    """Have numba-cpu's kernels multiply matrices with torch's own BLAS (``sgemm_`` and
    ``dgemm_`` in libtorch_cpu: MKL in the x86 CPU wheels), on torch's thread pool, as
    eager does, and on one thread per caller in a sharing region where MKL's per-thread
    setting is there; where torch's library has no such symbols they keep SciPy's
    OpenBLAS."""
    from codegen.numba_cpu import blas
    gemm = _torch_gemm()
    if gemm is not None:
        blas.use_gemm(*gemm, limit=_libtorch_symbol("MKL_Set_Num_Threads_Local"))
