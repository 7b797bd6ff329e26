"""Every example runs in smoke mode (``--quick``), so none can rot.

All scripts run one after another in ONE fresh process (``runpy``, ``__main__``), so torch
is imported once and the generic Numba kernels compile once, in a temporary cache folder:
that keeps the whole file near a minute on 2 cores. Each script's output, error and run
time come back as JSON and are checked per script.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Tested elsewhere, with the arguments they need: the ONNX train/serve pair
# (tests/test_export_examples.py runs the server where importing torch fails).
ELSEWHERE = {"models.py", "onnx_export_train.py", "onnx_serve_no_torch.py"}
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in ELSEWHERE)

# What each example must print: the lines that show it did its job.
EXPECT = {
    "dynamic_depth.py": ["torch.jit.trace  on the other branch", "WRONG",
                         "tracejit         on the other branch", "correct",
                         "specialisations: 2"],
    "ir_passes.py": ["after fuse", 'fused[kind="epilogue"]'],
    "decorator.py": ["function: max |compiled - eager|", "module: max |compiled - eager|"],
    "sequence_models.py": ["RNN ", "LSTM", "GRU "],
    "feedforward_sgd.py": ["final train loss"],
}

RUNNER = """
import contextlib, io, json, runpy, sys, time, traceback
results = {}
for path in sys.argv[1:]:
    out, start = io.StringIO(), time.perf_counter()
    sys.argv = [path, "--quick"]
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            error = None if e.code in (0, None) else f"exit {e.code}"
        except BaseException:
            error = traceback.format_exc()
    results[path] = {"stdout": out.getvalue(), "error": error,
                     "seconds": time.perf_counter() - start}
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracejit-cache")
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(folder), NUMBA_CACHE_DIR=str(folder / "nb"))
    paths = [str(EXAMPLES / s) for s in SCRIPTS]
    proc = subprocess.run([sys.executable, "-c", RUNNER, *paths], env=env, cwd=EXAMPLES.parent,
                          capture_output=True, text=True, timeout=900)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")), None)
    assert line is not None, proc.stderr[-3000:]
    return {Path(k).name: v for k, v in json.loads(line[len("RESULTS "):]).items()}


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, runs):
    result = runs[script]
    assert result["error"] is None, result["error"] + result["stdout"][-2000:]
    assert result["stdout"].strip(), f"{script} printed nothing"
    for text in EXPECT.get(script, []):
        assert text in result["stdout"], f"{script} did not print {text!r}"
