"""The systems compared: how each turns a model into a callable ``f(x) -> tensor``.

``build(model, x, workdir)`` does everything up to (not including) the first call; the
harness times build plus first call as the compile time. Caches that survive a process
are pointed into ``workdir`` by ``cache_env`` so that "cold" and "warm" mean what they say.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

ONNX_EXPORTER = {"note": ""}   # filled by the first torch.onnx.export: which exporter ran


def _eager(model, x, workdir):
    return model


def _tracejit(backend: str):
    def build(model, x, workdir):
        import tracejit
        return tracejit.compile(model, backend=backend)
    return build


def _torchscript(model, x, workdir):
    return torch.jit.freeze(torch.jit.trace(model, (x,)))


def _inductor(model, x, workdir):
    return torch.compile(model, backend="inductor")


def _export(model, x, path: Path) -> None:
    """torch.onnx.export; the dynamo exporter needs onnxscript, else the TorchScript one."""
    if importlib.util.find_spec("onnxscript") is not None:
        torch.onnx.export(model, (x,), str(path))
        ONNX_EXPORTER["note"] = "torch.onnx.export (dynamo exporter)"
        return
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False)
    ONNX_EXPORTER["note"] = ("torch.onnx.export(dynamo=False): the default dynamo exporter "
                             "needs onnxscript, which is not installed")


def _ort_export(model, x, workdir):
    import onnxruntime as ort
    Path(workdir).mkdir(parents=True, exist_ok=True)
    path = Path(workdir) / "torch_export.onnx"
    _export(model, x, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(inp):
        return torch.from_numpy(sess.run(None, {name: inp.numpy()})[0])
    return run


@dataclass(frozen=True)
class System:
    name: str
    build: Callable
    compiles: bool = True           # has a compile step worth timing
    disk_cache: bool = False        # a new process can reuse work: warm differs from cold
    small_only: bool = False        # too slow for the big models
    env: tuple[str, ...] = field(default=())   # cache variables to point at workdir
    library_env: str | None = None  # the variable of its kernel library's cache (filled by
    #                                 `tracejit warmup` for the "after warmup" probe)


TRACEJIT_ENV = ("TRACEJIT_CACHE_DIR", "NUMBA_CACHE_DIR")
SYSTEMS: dict[str, System] = {s.name: s for s in [
    System("eager", _eager, compiles=False),
    System("tracejit-numba", _tracejit("numba-cpu"), disk_cache=True, env=TRACEJIT_ENV,
           library_env="NUMBA_CACHE_DIR"),
    System("tracejit-onnx", _tracejit("onnxruntime"), env=TRACEJIT_ENV),
    System("tracejit-interp", _tracejit("interpret"), small_only=True, env=TRACEJIT_ENV),
    System("torchscript", _torchscript),
    System("inductor", _inductor, disk_cache=True, env=("TORCHINDUCTOR_CACHE_DIR",)),
    System("ort-export", _ort_export),
]}


def cache_env(system: str, workdir: Path) -> dict[str, str]:
    """Environment for a child process whose caches for ``system`` live in ``workdir``."""
    env = dict(os.environ)
    # a start as on a normal installation, with Python's bytecode cache: where the shell
    # sets PYTHONDONTWRITEBYTECODE (this sandbox does), every start compiled the project's
    # own modules from source again (0.08 s of tracejit's warm start)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for var in SYSTEMS[system].env:
        env[var] = str(Path(workdir) / var.lower())
    return env
