"""Benchmark tracejit against eager PyTorch and the alternatives, side by side.

    python benchmarks/run.py                       # the whole zoo, every system
    python benchmarks/run.py --quick               # a few models, fewer repeats (< 2 min)
    python benchmarks/run.py --models MLP,LeNet --systems eager,tracejit-numba --batch 1,32

Latency: medians of interleaved round-robin blocks in this process, with p10/p90.
Compile: cold and warm in fresh processes (benchmarks/probe.py). Memory: peak RSS delta
in the cold process. Correctness: max abs error vs eager. Writes latest.json, latest.md
and speedup.png under --out (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402

from benchmarks import measure, report, systems, zoo  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="tracejit bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="few models and repeats, no torch.compile cold/warm probes")
    ap.add_argument("--models", help=f"comma list from: {', '.join(zoo.ZOO)}")
    ap.add_argument("--systems", help=f"comma list from: {', '.join(systems.SYSTEMS)}")
    ap.add_argument("--batch", help="comma list of batch sizes (default: each model's pair)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds per model and batch")
    ap.add_argument("--probes", help="systems whose cold/warm compile and memory are "
                    "measured in fresh processes: comma list or 'none' (default: all; "
                    "--quick: tracejit-numba,tracejit-onnx)")
    ap.add_argument("--warm-repeats", type=int, default=None,
                    help="fresh processes per warm start, the median reported (default 3; "
                    "--quick: 1)")
    ap.add_argument("--system-timeout", type=float, default=180.0,
                    help="seconds allowed for one system's build, first call and warm-up "
                    "in this process; beyond it the system is reported as timed out")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = ap.parse_args(argv)
    quick_models = [n for n, e in zoo.ZOO.items() if e.quick or not args.quick]
    args.models = _pick(args.models, zoo.ZOO, quick_models, ap)
    args.systems = _pick(args.systems, systems.SYSTEMS, list(systems.SYSTEMS), ap)
    if "eager" not in args.systems:
        args.systems.insert(0, "eager")          # speed-ups and errors are against eager
    try:
        args.batch = [int(b) for b in args.batch.split(",")] if args.batch else None
    except ValueError:
        ap.error(f"--batch wants comma-separated integers, not {args.batch!r}")
    quick_probes = "tracejit-numba,tracejit-onnx"
    args.probes = [] if args.probes == "none" else _pick(
        args.probes or (quick_probes if args.quick else None), systems.SYSTEMS,
        list(systems.SYSTEMS), ap)
    args.repeats = args.repeats or (5 if args.quick else 15)
    args.warm_repeats = args.warm_repeats or (1 if args.quick else 3)
    if args.warm_repeats < 1:
        ap.error("--warm-repeats must be at least 1")
    # a block of at least 0.1 s: with 0.03 s a 15-20 ms model got one or two timed calls
    # right after the pause before each block, and measured waking up (ResNet at batch 16
    # on numba-cpu: 20-22 ms that way, 13-15 ms in longer blocks, same process)
    args.block_s = 0.01 if args.quick else 0.1
    return args


def _pick(text, table, default, ap):
    if not text:
        return default
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in table]
    if bad:
        ap.error(f"unknown {', '.join(bad)}; choose from {', '.join(table)}")
    return names


def _applicable(model: str, system: str) -> str | None:
    """Why ``system`` is skipped on ``model``, or None."""
    if systems.SYSTEMS[system].small_only and not zoo.ZOO[model].small:
        return "skipped: the NumPy interpreter runs small models only"
    return None


def _probes(args, model, batch, workdir, progress, task) -> list[dict]:
    """Cold and warm compile plus memory, each in a fresh process."""
    rows = []
    for name in args.systems:
        row = {"model": model, "system": name, "batch": batch}
        skip = _applicable(model, name)
        if skip or name not in args.probes:
            row["skipped"] = skip or "not probed (--probes / --quick)"
            rows.append(row)
            continue
        cache = workdir / model / name
        cache.mkdir(parents=True, exist_ok=True)
        progress.update(task, description=f"{model}: {name} cold start")
        row["cold"] = measure.run_probe(model, name, batch, cache, args.probe_timeout)
        library = systems.SYSTEMS[name].library_env
        if library and args.warmed is not None and "error" not in row["cold"]:
            progress.update(task, description=f"{model}: {name} cold graph after warmup")
            fresh = cache / "after-warmup"
            shutil.copytree(args.warmed / library.lower(), fresh / library.lower())
            row["after_warmup"] = measure.run_probe(model, name, batch, fresh,
                                                    args.probe_timeout)
        progress.advance(task)
        if systems.SYSTEMS[name].disk_cache and "error" not in row["cold"]:
            progress.update(task, description=f"{model}: {name} warm start")
            row["warm"] = _warm(args, model, name, batch, cache)
        rows.append(row)
        progress.advance(task)
    return rows


def _warm(args, model, system, batch, cache) -> dict:
    """The warm start of ``args.warm_repeats`` fresh processes on the caches the cold run
    filled: the probe with the median compile time, with every run's time in ``runs_s``.
    One process's start varies by 0.1-0.2 s on a shared VM, as much as the differences
    it is meant to show."""
    probes = [measure.run_probe(model, system, batch, cache, args.probe_timeout)
              for _ in range(args.warm_repeats)]
    timed = sorted((p for p in probes if p.get("compile_s") is not None),
                   key=lambda p: p["compile_s"])
    if len(timed) < len(probes):
        return next(p for p in probes if p.get("compile_s") is None)
    return dict(timed[(len(timed) - 1) // 2], runs_s=[p["compile_s"] for p in probes])


def _warm_library(args) -> tuple[Path | None, float | None]:
    """Run ``tracejit warmup`` once in a new process with its own caches: (the folder, its
    seconds), or (None, None) where tracejit-numba is not probed or the warm-up failed
    (the report then has no "after warmup" figures)."""
    if "tracejit-numba" not in args.probes or "tracejit-numba" not in args.systems:
        return None, None
    folder = args.workdir / "warmed"
    t = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "tracejit", "warmup"], check=True,
                       capture_output=True, env=systems.cache_env("tracejit-numba", folder),
                       cwd=Path(__file__).resolve().parent.parent, timeout=args.probe_timeout)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None, None
    return folder, time.perf_counter() - t


def _reuse_probe_cache(folder: Path, system: str) -> None:
    """Point this process at the caches a probe filled (saves a second inductor build).

    NUMBA_CACHE_DIR is read once when numba is imported, so it stays as it is.
    """
    if folder.is_dir():
        for var in systems.SYSTEMS[system].env:
            if var != "NUMBA_CACHE_DIR":
                os.environ[var] = str(folder / var.lower())


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError in this (main) thread after ``seconds``, via SIGALRM."""
    def expire(signum, frame):
        raise TimeoutError(f"build, first call and warm-up took over {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _latency(args, model_name, batch, progress, task) -> list[dict]:
    """Build every system, check it against eager, then time all of them interleaved."""
    model = zoo.build(model_name)
    x = zoo.make_input(model_name, batch)
    ref = model(x).double()
    fns, rows = {}, {}
    for name in args.systems:
        row = rows[name] = {"model": model_name, "batch": batch, "system": name}
        skip = _applicable(model_name, name)
        if skip:
            row["skipped"] = skip
            continue
        progress.update(task, description=f"{model_name} x{batch}: build {name}")
        _reuse_probe_cache(args.workdir / model_name / name, name)
        try:
            with _time_limit(args.system_timeout):
                t = time.perf_counter()
                f = systems.SYSTEMS[name].build(model, x, args.workdir / "inproc" / model_name)
                f(x)
                row["first_call_s"] = time.perf_counter() - t
                t = time.perf_counter()
                f(x)                             # Numba compiles on the first compiled call
                row["second_call_s"] = time.perf_counter() - t
                for _ in range(3):               # warm-up
                    out = f(x)
            row["max_abs_err"] = float((out.double() - ref).abs().max())
            fns[name] = f
        except Exception as e:                   # reported in the table, never dropped
            row["error"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
    progress.update(task, description=f"{model_name} x{batch}: timing {len(fns)} systems")
    samples = measure.interleaved(fns, x, args.repeats, args.block_s)
    for name, s in samples.items():
        rows[name]["latency_us"] = measure.summary_us(s)
    progress.advance(task)
    eager = rows["eager"].get("latency_us", {}).get("median")
    for row in rows.values():
        if eager and "latency_us" in row:
            row["speedup"] = eager / row["latency_us"]["median"]
    return list(rows.values())


def main(argv=None) -> int:
    args = parse_args(argv)
    args.probe_timeout = 300 if args.quick else 600
    console = Console(width=None if sys.stdout.isatty() else 150)
    torch.set_num_threads(2)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracejit-bench-") as tmp:
        args.workdir = Path(tmp)
        for var in ("TRACEJIT_CACHE_DIR", "NUMBA_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
            os.environ[var] = str(args.workdir / "inproc" / var.lower())
        latency, compile_rows = [], []
        steps = sum(len(args.batch or zoo.ZOO[m].batches) + 2 * len(args.systems)
                    for m in args.models)
        with Progress(console=console, transient=True) as progress, torch.no_grad():
            task = progress.add_task("benchmarks", total=steps)
            progress.update(task, description="tracejit warmup (the kernel library)")
            args.warmed, args.warmup_s = _warm_library(args)
            for m in args.models:
                batches = args.batch or list(zoo.ZOO[m].batches)
                compile_rows += _probes(args, m, batches[0], args.workdir, progress, task)
                for b in batches:
                    latency += _latency(args, m, b, progress, task)
    wall = time.perf_counter() - start
    data = report.assemble(args, latency, compile_rows, wall)
    paths = report.write(data, args.out)
    report.print_tables(console, data)
    console.print(f"wrote {', '.join(str(p) for p in paths)} in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
