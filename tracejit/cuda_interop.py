"""torch CUDA tensors through the numba-cuda backend, without copies.

Inputs cross as views through ``__cuda_array_interface__`` (``numba.cuda.as_cuda_array``),
once per call; parameters and buffers once per specialisation, remade only when the
tensor object or its storage changes (as ``runtime.StateView`` does for NumPy). Kernels
launch on torch's current stream, and every buffer the graph allocates comes from torch's
caching allocator (``torch.empty`` on the inputs' device): stream-ordered reuse is then
safe without a synchronisation, and outputs are returned as torch tensors over the same
memory. On numba's CUDA simulator there is no array interface: CPU tensors keep the NumPy
path of ``Specialization.run``, and CUDA tensors are a clear error.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from .errors import TraceJitError
from .externs import call_extern_torch

TORCH_DTYPE = {np.dtype(k): v for k, v in (
    (np.float16, torch.float16), (np.float32, torch.float32), (np.float64, torch.float64),
    (np.int8, torch.int8), (np.uint8, torch.uint8), (np.int16, torch.int16),
    (np.int32, torch.int32), (np.int64, torch.int64), (np.bool_, torch.bool))}


class CudaSimulatorError(TraceJitError):
    """CUDA tensors reached numba's CUDA simulator, which cannot read device memory."""


def _numba_cuda():
    from numba import cuda
    return cuda


class TorchCuda:
    """The four torch <-> numba conversions. Each looks its functions up when called, so
    tests (no GPU here) can stand in for ``numba.cuda`` and ``torch.cuda`` ones."""

    def __init__(self):
        self.streams: dict[int, object] = {}

    def as_array(self, tensor: torch.Tensor):
        """A numba device array over the tensor's memory (no copy)."""
        return _numba_cuda().as_cuda_array(tensor)

    def stream(self, device: torch.device):
        """torch's current stream on ``device`` as a numba stream (one object per handle)."""
        handle = torch.cuda.current_stream(device).cuda_stream
        s = self.streams.get(handle)
        if s is None:
            s = self.streams[handle] = _numba_cuda().external_stream(handle)
        return s

    def empty(self, shape, dtype: np.dtype, device: torch.device) -> torch.Tensor:
        """A buffer from torch's caching allocator."""
        return torch.empty(shape, dtype=TORCH_DTYPE[dtype], device=device)

    def to_tensor(self, array, device: torch.device) -> torch.Tensor:
        """A torch tensor over a device array's memory (no copy; it keeps the array alive)."""
        return torch.as_tensor(array, device=device)


class DeviceState:
    """The device view of a parameter or buffer, remade only when the tensor or its
    storage changes. A tensor that cannot be viewed (non-contiguous, another device) is
    copied at every call instead, so in-place updates to it are still seen."""

    __slots__ = ("table", "key", "tensor", "ptr", "array", "copied")

    def __init__(self, view):
        self.table, self.key = view.table, view.key
        self.tensor = self.ptr = self.array = None
        self.copied = False

    def get(self, glue: TorchCuda, device: torch.device):
        t = self.table[self.key]
        if self.copied or t is not self.tensor or t.data_ptr() != self.ptr:
            self.tensor, self.ptr = t, t.data_ptr()
            d = t.detach()
            self.copied = d.device != device or not d.is_contiguous()
            self.array = glue.as_array(d.to(device).contiguous() if self.copied else d)
        return self.array


class DeviceRun:
    """``Specialization.run`` for CUDA tensors: device arrays in, torch tensors out."""

    def __init__(self, spec, glue: TorchCuda | None = None):
        self.spec = spec
        self.glue = glue or TorchCuda()
        self.states = [DeviceState(v) for v in spec.states]

    def __call__(self, tensors, device: torch.device):
        spec, glue = self.spec, self.glue

        def alloc(shape, dtype):
            return glue.as_array(glue.empty(shape, dtype, device))

        def extern(node, arrays):
            outs = call_extern_torch(node, [glue.to_tensor(a, device) for a in arrays])
            return [glue.as_array(_on(o.detach(), device)) for o in outs]

        arrays = [glue.as_array(_on(t.detach() if d else t, device))
                  for t, d in zip(tensors, spec.detach)]
        arrays += [s.get(glue, device) for s in self.states]
        outs, writes = spec.executable(arrays, extern, stream=glue.stream(device), alloc=alloc,
                                       extern_on_device=True)
        for name, view in spec.writes:
            view.table[view.key].detach().copy_(glue.to_tensor(writes[name], device))
        spec.calls += 1
        results = [glue.to_tensor(o, device) for o in outs]
        if spec.single:
            return results[0]
        leaves = [x if i is None else results[i]
                  for x, i in zip(spec.capture.out_leaves, spec.leaf_pos)]
        return tree_unflatten(leaves, spec.capture.out_spec)


def _on(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A contiguous tensor on ``device``: the tensor itself when it already is one."""
    if t.device != device:
        t = t.to(device)
    return t if t.is_contiguous() else t.contiguous()


def _cuda_device(tensors, states) -> torch.device | None:
    """The CUDA device of a call (its first CUDA input, else parameter), or None."""
    for t in tensors:
        if t.is_cuda:
            return t.device
    for s in states:
        t = s.table[s.key]
        if t.is_cuda:
            return t.device
    return None


def device_runner(spec):
    """A ``run`` for a numba-cuda specialisation: CUDA tensors take the device path, CPU
    tensors the NumPy one (``host``, the plain ``Specialization.run``)."""
    host = type(spec).run.__get__(spec)
    sim = spec.executable.simulator
    if sim and _traced_on_cuda(spec.capture):
        raise _simulator_error()
    device = DeviceRun(spec) if not sim else None

    def run(tensors):
        where = _cuda_device(tensors, spec.states)
        if where is None:
            return host(tensors)
        if sim:
            raise _simulator_error()
        if where.index:
            with _numba_cuda().gpus[where.index]:
                return device(tensors, where)
        return device(tensors, where)
    return run


def _traced_on_cuda(capture) -> bool:
    leaves = list(capture.state.values()) + tree_flatten(capture.result)[0]
    return any(isinstance(t, torch.Tensor) and t.is_cuda for t in leaves)


def _simulator_error() -> CudaSimulatorError:
    return CudaSimulatorError(
        "backend 'numba-cuda' runs on numba's CUDA simulator here (NUMBA_ENABLE_CUDASIM=1), "
        "which cannot read CUDA tensors. Pass CPU tensors to simulate the kernels, or unset "
        "NUMBA_ENABLE_CUDASIM (before numba is imported) to run them on the GPU.")
