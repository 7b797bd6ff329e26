"""The benchmark harness writes its JSON, Markdown and PNG with the expected fields.

No timing assertions: the numbers belong to benchmarks/, not to tests.
"""

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def test_quick_smoke_writes_results(tmp_path):
    cmd = [sys.executable, str(RUN), "--quick", "--models", "SimpleNN",
           "--systems", "eager,tracejit-interp", "--batch", "1", "--repeats", "2",
           "--probes", "tracejit-interp", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    assert {"machine", "method", "latency", "compile", "geomean_speedup"} <= set(data)
    assert data["machine"]["versions"]["torch"]
    assert data["machine"]["cpu"]
    rows = {r["system"]: r for r in data["latency"]}
    assert set(rows) == {"eager", "tracejit-interp"}
    interp = rows["tracejit-interp"]
    assert interp["latency_us"]["median"] > 0
    assert interp["latency_us"]["p10"] <= interp["latency_us"]["p90"]
    assert interp["max_abs_err"] < 1e-4            # the interpreter matches eager
    assert interp["speedup"] > 0
    probe = next(r for r in data["compile"] if r["system"] == "tracejit-interp")
    assert probe["cold"]["compile_s"] >= 0
    md = (tmp_path / "latest.md").read_text()
    assert "| SimpleNN | 1 |" in md and "tracejit-interp" in md
    assert (tmp_path / "speedup.png").read_bytes()[:4] == b"\x89PNG"


def test_failing_system_is_reported_not_dropped(tmp_path, monkeypatch):
    sys.path.insert(0, str(RUN.parent.parent))
    from benchmarks import run, systems

    def broken(model, x, workdir):
        raise RuntimeError("no such compiler")

    monkeypatch.setitem(systems.SYSTEMS, "torchscript",
                        systems.System("torchscript", broken))
    assert run.main(["--quick", "--models", "SimpleNN", "--systems", "torchscript",
                     "--batch", "2", "--repeats", "1", "--probes", "none",
                     "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    row = next(r for r in data["latency"] if r["system"] == "torchscript")
    assert "no such compiler" in row["error"]
    assert "no such compiler" in (tmp_path / "latest.md").read_text()


def test_warm_start_is_the_median_of_fresh_processes(monkeypatch):
    sys.path.insert(0, str(RUN.parent.parent))
    from types import SimpleNamespace

    from benchmarks import measure, report, run
    times = iter([0.61, 0.42, 0.47])
    monkeypatch.setattr(measure, "run_probe", lambda *a: {"compile_s": next(times)})
    args = SimpleNamespace(warm_repeats=3, probe_timeout=1.0)
    warm = run._warm(args, "MLP", "tracejit-numba", 1, Path("unused"))
    assert warm == {"compile_s": 0.47, "runs_s": [0.61, 0.42, 0.47]}
    assert report._warm_text(warm) == "warm 0.47 s (0.42–0.61)"
    probes = iter([{"compile_s": 0.5}, {"error": "probe exited 1: boom"}])
    monkeypatch.setattr(measure, "run_probe", lambda *a: next(probes))
    failed = run._warm(SimpleNamespace(warm_repeats=2, probe_timeout=1.0), "MLP",
                       "tracejit-numba", 1, Path("unused"))
    assert failed == {"error": "probe exited 1: boom"}
    assert report._warm_text(failed) == "warm error"
