"""The numba-cuda backend's tests on numba's CUDA simulator, in child pytest processes.

numba reads NUMBA_ENABLE_CUDASIM once, when it is first imported, and the CPU backend's
tests import numba in this process without it: so each simulator module (tests/cuda_sim_*.py,
which pytest does not collect by itself) runs in its own ``python -m pytest`` with the
variable set and a private cache folder. A failure shows the child's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["cuda_sim_ops.py", "cuda_sim_models.py",
                                    "cuda_sim_interop.py"])
def test_on_cuda_simulator(module, tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "TRACEJIT_CACHE_DIR": str(tmp_path)}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist",
         "-W", "ignore::RuntimeWarning", str(ROOT / "tests" / module)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"simulator run of {module} failed:\n{tail}"
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], tail
