"""Every example runs in smoke mode (``--quick``) in a fresh process, so none can rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "models.py")

# What each example must print: the line that shows it did its job.
EXPECT = {
    "dynamic_depth.py": ["torch.jit.trace  on the other branch", "WRONG",
                         "tracejit         on the other branch", "correct",
                         "specialisations: 2"],
    "ir_passes.py": ["after fuse", 'fused[kind="epilogue"]'],
    "decorator.py": ["function: max |compiled - eager|", "module: max |compiled - eager|"],
    "sequence_models.py": ["RNN ", "LSTM", "GRU "],
}


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """One cache folder for all examples: generic kernels compile once per session."""
    folder = tmp_path_factory.mktemp("tracejit-cache")
    return dict(os.environ, TRACEJIT_CACHE_DIR=str(folder), NUMBA_CACHE_DIR=str(folder / "nb"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, cache_env):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick"], env=cache_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for text in EXPECT.get(script, []):
        assert text in proc.stdout, f"{script} did not print {text!r}"

