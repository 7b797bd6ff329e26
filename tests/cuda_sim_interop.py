"""The torch side of numba-cuda (tracejit/cuda_interop.py) on the CUDA simulator, run by
test_cuda_sim.py in a child process with NUMBA_ENABLE_CUDASIM=1; skipped anywhere else.

There is no GPU here and the simulator has no ``__cuda_array_interface__``, so the device
path runs with stand-ins: ``numba.cuda.as_cuda_array`` wraps a CPU tensor's memory in a
simulator array (zero-copy, recorded), ``numba.cuda.external_stream`` and
``torch.cuda.current_stream`` are recording fakes, and the "device" is the CPU. The kernels,
the executable and the glue are the real ones.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("runs in a child process on the CUDA simulator (test_cuda_sim.py)",
                allow_module_level=True)

import numba.cuda  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray  # noqa: E402
from torch import nn  # noqa: E402

import tracejit  # noqa: E402
from tracejit.cuda_interop import (CudaSimulatorError, DeviceRun, TorchCuda,  # noqa: E402
                                   device_runner)

CPU = torch.device("cpu")
HANDLE = 0x5EED


class Fakes:
    """Recording stand-ins for numba.cuda's and torch.cuda's stream and interface calls."""

    def __init__(self, monkeypatch):
        self.viewed, self.handles, self.devices = [], [], []
        self.stream = numba.cuda.stream()
        monkeypatch.setattr(numba.cuda, "as_cuda_array", self.as_cuda_array, raising=False)
        monkeypatch.setattr(numba.cuda, "external_stream", self.external_stream)
        monkeypatch.setattr(torch.cuda, "current_stream", self.current_stream)

    def as_cuda_array(self, tensor):
        self.viewed.append(tensor)
        return FakeCUDAArray(tensor.numpy())

    def external_stream(self, handle):
        self.handles.append(handle)
        return self.stream

    def current_stream(self, device=None):
        self.devices.append(device)
        return SimpleNamespace(cuda_stream=HANDLE)


class RecordingGlue(TorchCuda):
    """The real glue, recording what the allocator handed out; simulator arrays have no
    array interface, so tensors are made from their NumPy memory (still zero-copy)."""

    def __init__(self):
        super().__init__()
        self.allocated = []

    def empty(self, shape, dtype, device):
        t = super().empty(shape, dtype, device)
        self.allocated.append(t)
        return t

    def to_tensor(self, array, device):
        return torch.from_numpy(array._ary)


class Launches:
    """Wraps an executable to record the stream and allocator of each call."""

    def __init__(self, exe):
        self.exe, self.calls = exe, []

    def __call__(self, arrays, extern=None, **kw):
        self.calls.append(kw)
        return self.exe(arrays, extern, **kw)


def _compiled(model, *args):
    """A numba-cuda compiled model after its tracing call, and its one specialisation."""
    compiled = tracejit.compile(model, backend="numba-cuda")
    with torch.no_grad():
        compiled(*args)
    (spec,) = compiled._tj_dispatcher.all_specializations()
    return compiled, spec


def _device_run(spec):
    glue = RecordingGlue()
    spec.executable = Launches(spec.executable)
    return DeviceRun(spec, glue), glue


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 3)).eval()


def test_cpu_tensors_keep_the_numpy_path(monkeypatch, assert_matches):
    fakes = Fakes(monkeypatch)
    model = _mlp()
    x = torch.randn(2, 6)
    compiled, spec = _compiled(model, x)
    with torch.no_grad():
        assert_matches(compiled(x), model(x))
    assert spec.calls == 1 and fakes.viewed == [] and fakes.handles == []


def test_cuda_inputs_go_through_the_array_interface_once_per_call(monkeypatch, assert_matches):
    fakes = Fakes(monkeypatch)
    model = _mlp()
    x = torch.randn(2, 6)
    _, spec = _compiled(model, x)
    run, glue = _device_run(spec)
    params = list(model.parameters())
    with torch.no_grad():
        for _ in range(2):
            assert_matches(run([x], CPU), model(x))
        inputs = [t for t in fakes.viewed if t is x]
        assert len(inputs) == 2                 # the input: one view per call
        weights = [t for t in fakes.viewed if any(t.data_ptr() == p.data_ptr() for p in params)]
        assert len(weights) == len(params)      # parameters: once per specialisation
        model[0].weight.mul_(2.0)               # in place: the same view sees it
        assert_matches(run([x], CPU), model(x))
        model[2].bias = nn.Parameter(torch.randn(3))   # a new tensor: remade once
        assert_matches(run([x], CPU), model(x))
    assert spec.calls == 4
    assert len(fakes.viewed) - len(glue.allocated) == 4 + len(params) + 1


def test_outputs_come_from_the_torch_allocator_without_copies(monkeypatch):
    Fakes(monkeypatch)
    model = _mlp()
    x = torch.randn(2, 6)
    _, spec = _compiled(model, x)
    run, glue = _device_run(spec)
    with torch.no_grad():
        y = run([x], CPU)
    assert glue.allocated, "the graph allocated nothing through torch"
    assert any(y.data_ptr() == t.data_ptr() for t in glue.allocated)
    assert all(kw["alloc"] is not None and kw["extern_on_device"] for kw in spec.executable.calls)


def test_kernels_launch_on_torchs_current_stream(monkeypatch):
    fakes = Fakes(monkeypatch)
    model = _mlp()
    x = torch.randn(2, 6)
    _, spec = _compiled(model, x)
    run, _ = _device_run(spec)
    with torch.no_grad():
        run([x], CPU)
        run([x], CPU)
    assert fakes.devices == [CPU, CPU]          # asked on every call, for the inputs' device
    assert fakes.handles == [HANDLE]            # one numba stream object per torch handle
    assert [kw["stream"] for kw in spec.executable.calls] == [fakes.stream] * 2


def test_non_contiguous_and_grad_inputs_are_made_viewable(monkeypatch, assert_matches):
    fakes = Fakes(monkeypatch)
    model = _mlp()
    x = torch.randn(2, 6)
    _, spec = _compiled(model, x)
    run, _ = _device_run(spec)
    xt = torch.randn(6, 2).t()
    with torch.no_grad():
        assert_matches(run([xt], CPU), model(xt))
    assert fakes.viewed[0].is_contiguous() and torch.equal(fakes.viewed[0], xt)


def test_buffer_writes_land_in_the_module(monkeypatch):
    Fakes(monkeypatch)
    torch.manual_seed(1)
    bn = nn.BatchNorm1d(3).train()
    ref = nn.BatchNorm1d(3).train()
    x = torch.randn(4, 3) * 2 + 1
    _, spec = _compiled(bn, x)
    ref.load_state_dict(bn.state_dict())
    run, _ = _device_run(spec)
    with torch.no_grad():
        y = run([x], CPU)
        want = ref(x)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=1e-4, atol=1e-5)


def _bicubic_tanh(x):
    return torch.tanh(F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))


def test_externs_run_in_torch_on_the_device_arrays(monkeypatch, assert_matches):
    fakes = Fakes(monkeypatch)
    x = torch.randn(1, 1, 2, 3)
    _, spec = _compiled(_bicubic_tanh, x)
    assert spec.capture.externs, "expected an extern node"
    run, _ = _device_run(spec)
    with torch.no_grad():
        assert_matches(run([x], CPU), _bicubic_tanh(x))
    assert any(t.shape == (1, 1, 4, 6) for t in fakes.viewed)   # the extern's result, viewed


def test_cuda_tensors_on_the_simulator_are_a_clear_error():
    model = _mlp()
    x = torch.randn(2, 6)
    _, spec = _compiled(model, x)
    run = device_runner(spec)
    fake_cuda = SimpleNamespace(is_cuda=True, device=torch.device("cuda", 0))
    with pytest.raises(CudaSimulatorError, match="NUMBA_ENABLE_CUDASIM"):
        run([fake_cuda])
