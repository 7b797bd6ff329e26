"""The numba-cuda backend: one generated module of ``numba.cuda`` kernels per graph.

``compile(graph, options) -> CudaExecutable``; see runtime.py for the calling convention
(device arrays or NumPy; allocator and stream per call or from ``options["alloc"]``,
``options["stream"]``; tracejit/cuda_interop.py passes torch's) and plan.py for how
fused regions become kernels. Without a GPU, set ``NUMBA_ENABLE_CUDASIM=1`` before numba is
first imported: the same kernels then run on numba's CUDA simulator (slowly: a Python
thread per CUDA thread, so keep shapes tiny). Generated modules are cached like the CPU
backend's (``TRACEJIT_CACHE_DIR``) with ``cuda.jit(cache=True)``; the simulator compiles
nothing, so there its cache is only the generated file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ir.errors import LoweringError
from ir.graph import Graph

_HERE = Path(__file__).resolve().parent


class NoCudaDeviceError(LoweringError):
    """numba-cuda was selected on a machine with no usable GPU and no simulator."""


def _cuda():
    """``numba.cuda`` and whether it is the simulator; raises when neither works."""
    from numba import config
    try:
        from numba import cuda
    except ImportError as e:   # pragma: no cover - numba-cuda missing
        raise NoCudaDeviceError(f"backend 'numba-cuda' needs the numba-cuda package ({e}); "
                                "install tracejit[cuda]") from e
    if config.ENABLE_CUDASIM:
        return cuda, True
    if not cuda.is_available():
        raise NoCudaDeviceError(
            "backend 'numba-cuda' found no usable NVIDIA GPU (numba.cuda.is_available() is "
            "False: no GPU, or numba-cuda cannot load its driver and cuda-bindings, even if "
            "torch.cuda works; `numba -s` says which). Use backend='numba-cpu' with CPU "
            "tensors, or run the kernels on numba's CUDA simulator (CPU tensors only) by "
            "setting NUMBA_ENABLE_CUDASIM=1 in the environment before numba is imported.")
    return cuda, False


def _fingerprint(simulator: bool) -> str:
    h = hashlib.sha256(b"numba-cuda sim" if simulator else b"numba-cuda gpu")
    for path in sorted(_HERE.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def compile(graph: Graph, options: dict | None = None):
    cuda, simulator = _cuda()
    from .runtime import CudaExecutable
    return CudaExecutable(graph, dict(options or {}), cuda, simulator, _fingerprint(simulator))
