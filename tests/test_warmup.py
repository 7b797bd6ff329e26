"""``tracejit warmup`` fills Numba's cache with the kernel library, so that later processes
compile only their models' own loops.

Each step runs in a fresh process with its own cache folders, as a user's would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Models unlike the warm-up's own, in sizes and shapes: the kernels are shape-generic.
CHILD = r"""
import json, sys
import torch
from numba.core import event
sys.path.insert(0, "examples")
import models
import tracejit

torch.manual_seed(1)
cases = [
    (models.LeNet(), torch.randn(1, 1, 28, 28)),
    (models.LeNet(), torch.randn(8, 1, 28, 28)),
    (models.ResBlock(16), torch.randn(2, 3, 12, 12)),
    (torch.nn.TransformerEncoderLayer(48, 6, 96, batch_first=True), torch.randn(3, 10, 48)),
    (models.GRUClassifier(200, 24, 40, 3), torch.randint(0, 200, (5, 9))),
    (models.LSTMModel(12, 20, 4), torch.randn(1, 7, 12)),
    (models.SimpleNN(20, 100, 5), torch.randn(16, 20)),
]
compiled, worst = set(), 0.0
with torch.no_grad(), event.install_recorder("numba:compile") as rec:
    for model, x in cases:
        model.eval()
        f = tracejit.compile(model)
        f(x)
        worst = max(worst, float((f(x) - model(x)).abs().max()))
for _, ev in rec.buffer:
    fn = ev.data["dispatcher"].py_func
    if ev.is_start and fn.__module__.startswith("codegen."):
        compiled.add(f"{fn.__module__}.{fn.__qualname__}")
print(json.dumps({"library_compiled": sorted(compiled), "worst": worst}))
"""


def _env(folder: Path, graphs: str = "graphs") -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(folder / "numba"),
               TRACEJIT_CACHE_DIR=str(folder / graphs))
    env.pop("TRACEJIT_BACKEND", None)
    return env


def _warmup(folder: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tracejit", "warmup"], cwd=ROOT,
                          env=_env(folder), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def warmed(tmp_path_factory) -> Path:
    """A Numba cache folder one ``tracejit warmup`` run filled."""
    folder = tmp_path_factory.mktemp("warmed")
    proc = _warmup(folder)
    assert "numba-cpu kernels ready in" in proc.stdout
    assert str(folder / "numba") in proc.stdout         # it says where the cache is
    return folder


def test_after_warmup_models_compile_none_of_the_library(warmed):
    run = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT,
                         env=_env(warmed, graphs="graphs-later"),     # no graph of its own
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["library_compiled"] == []
    assert result["worst"] < 1e-4


def test_a_second_warmup_compiles_nothing_again(warmed):
    stamps = {p: p.stat().st_mtime_ns for p in (warmed / "numba").rglob("*.nbc")}
    assert stamps
    _warmup(warmed)
    assert {p: p.stat().st_mtime_ns for p in (warmed / "numba").rglob("*.nbc")} == stamps
