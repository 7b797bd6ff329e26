"""One fresh process: compile one model with one system, time it, and measure memory.

Run by the harness as ``python benchmarks/probe.py MODEL SYSTEM BATCH`` with the
system's cache variables pointing at a folder (empty: cold; filled by an earlier
probe: warm). Prints one JSON line.

compile_s = (build + first two calls) - two eager calls, the eager call measured just
before: tracejit's first call runs eagerly while tracing and Numba compiles its entry
point lazily, on the first compiled call, so both calls are part of the compile.
Memory: the kernel's peak RSS (VmHWM in /proc/self/status), reset to the current RSS by
writing 5 to /proc/self/clear_refs once the model and input exist and eager has run
once; peak_delta_mib = peak after build + 6 calls minus the RSS at that reset.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def probe(model_name: str, system_name: str, batch: int, workdir: str) -> dict:
    import torch

    from benchmarks import systems, zoo
    torch.set_num_threads(2)
    system = systems.SYSTEMS[system_name]
    with torch.no_grad():
        model = zoo.build(model_name)
        x = zoo.make_input(model_name, batch)
        model(x)
        t = time.perf_counter()
        model(x)
        eager_s = time.perf_counter() - t
        rss0 = _status_kib("VmRSS")
        reset = _reset_peak()
        t = time.perf_counter()
        f = system.build(model, x, workdir)
        f(x)
        first_s = time.perf_counter() - t
        t = time.perf_counter()
        f(x)
        second_s = time.perf_counter() - t
        for _ in range(4):
            f(x)
        peak = _status_kib("VmHWM")
    compile_s = max(first_s + second_s - 2 * eager_s, 0.0)
    return {"eager_call_s": eager_s, "first_call_s": first_s, "second_call_s": second_s,
            "compile_s": compile_s if system.compiles else None,
            "peak_delta_mib": (peak - rss0) / 1024 if reset else None,
            "onnx_exporter": systems.ONNX_EXPORTER["note"] or None}


def main() -> None:
    model_name, system_name, batch, workdir = sys.argv[1:5]
    try:
        out = probe(model_name, system_name, int(batch), workdir)
    except Exception as e:                       # reported in the table, never dropped
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    print("PROBE " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
