"""Dynamic models: tracejit vs torch.jit.trace vs eager, and what a guard check costs.

Run: .venv/bin/python benchmarks/bench_dynamic.py [--backend numba-cpu] [--quick]

For every model of tests/dynamic_zoo.py, its input stream is played through eager (a
deep copy), tracejit and torch.jit.trace (traced on the first call of the stream, as a
user would): wrong answers are counted per system (an exception counts as "error"),
with tracejit's number of specialisations and the per-call time of a whole stream pass
(median of interleaved repeats, after the stream has been played once). Then the cost
of guards: compiled calls of a trivial graph with N attribute guards or N data-dependent
guards (slope per guard), ``guards_hold`` alone, and the guard-key + tree lookup path.
Writes benchmarks/results/dynamic.md and dynamic.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch import nn  # noqa: E402

import tracejit  # noqa: E402
from benchmarks.report import machine  # noqa: E402
from dynamic_zoo import CASES, fresh, run_stream, same  # noqa: E402
from tracejit.state import guards_hold  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def median_s(fns: dict, number: int, repeats: int) -> dict:
    """Median seconds per call of each function, round-robin blocks of ``number`` calls."""
    samples = {k: [] for k in fns}
    for r in range(repeats):
        names = list(fns)
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            for _ in range(number):
                fns[k]()
            samples[k].append((time.perf_counter() - t) / number)
    return {k: statistics.median(v) for k, v in samples.items()}


def wrong(got, want) -> tuple[int, int]:
    """(wrong answers, errors) of a stream against eager's."""
    errors = sum(isinstance(g, Exception) for g in got)
    return sum(not same(g, w) for g, w in zip(got, want)) - errors, errors


def jit_trace(case, model, calls):
    """torch.jit.trace of a copy of ``model``, on the first call as the stream makes it."""
    model = copy.deepcopy(model)
    for name, value in calls[0].attrs.items():
        setattr(model, name, value)
    if case.seeded:
        torch.manual_seed(1000)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(model, calls[0].args, check_trace=False)
        except Exception as e:    # noqa: BLE001 - reported as an error on every call
            return model, e
    return model, traced


def bench_case(case, backend: str, repeats: int) -> dict:
    model, calls = fresh(case)
    row = {"model": case.name, "dynamic": case.why, "calls": len(calls)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", tracejit.TraceJitWarning)
        eager_out = io.StringIO()
        ref = copy.deepcopy(model)             # eager, on a copy: the model may keep state
        want = run_stream(case, ref, ref, calls, eager_out)
        jit_model, traced = jit_trace(case, model, calls)
        jit_out = io.StringIO()
        if isinstance(traced, Exception):
            row["jit_wrong"], row["jit_errors"] = 0, len(calls)
            row["jit_note"] = f"trace failed: {type(traced).__name__}"
        else:
            got = run_stream(case, traced, jit_model, calls, jit_out)
            row["jit_wrong"], row["jit_errors"] = wrong(got, want)
        compiled = tracejit.compile(model, backend=backend)
        tj_out = io.StringIO()
        t = time.perf_counter()
        got = run_stream(case, compiled, model, calls, tj_out)
        row["first_pass_s"] = time.perf_counter() - t
        row["tj_wrong"], row["tj_errors"] = wrong(got, want)
        d = compiled._tj_dispatcher
        row["specialisations"] = d.count
        row["eager_reason"] = next((s.reason for s in d.all_specializations()
                                    if hasattr(s, "reason")), None)
        if case.quiet:
            lines = {k: v.getvalue().count("\n") for k, v in
                     (("eager", eager_out), ("tracejit", tj_out), ("jit.trace", jit_out))}
            row["printed_lines"] = lines
        ref = copy.deepcopy(model)
        times = median_s({
            "eager": lambda: run_stream(case, ref, ref, calls),
            "tracejit": lambda: run_stream(case, compiled, model, calls),
        }, number=1, repeats=repeats)
    row["eager_us"] = times["eager"] / len(calls) * 1e6
    row["tracejit_us"] = times["tracejit"] / len(calls) * 1e6
    return row


# ---- guard overhead ---------------------------------------------------------------------


class Attrs(nn.Module):
    """Forward reads ``n`` plain attributes: ``n`` attribute guards, a one-op graph."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        for i in range(n):
            setattr(self, f"a{i}", i)

    def forward(self, x):
        total = 0
        for i in range(self.n):
            total += getattr(self, f"a{i}")
        return x + total


def data_guards(n: int):
    """A function with ``n`` data-dependent guards (``bool(x[i] > 0)``), one add."""
    def f(x):
        y = x + 1
        for i in range(n):
            if x[i] > 0:
                y = y
        return y
    return f


def guard_overhead(backend: str, repeats: int, counts=(0, 16, 64)) -> dict:
    x = torch.rand(128) + 0.5
    out = {"backend": backend, "counts": list(counts)}
    with torch.no_grad():
        attr = {n: tracejit.compile(Attrs(n).eval(), backend=backend) for n in counts}
        data = {n: tracejit.compile(data_guards(n), backend=backend) for n in counts}
        for c in list(attr.values()) + list(data.values()):
            c(x)
            c(x)
        t = median_s({**{("attr", n): (lambda c=c: c(x)) for n, c in attr.items()},
                      **{("data", n): (lambda c=c: c(x)) for n, c in data.items()}},
                     number=2000, repeats=repeats)
        lo, hi = counts[0], counts[-1]
        for kind in ("attr", "data"):
            out[f"{kind}_call_us"] = {n: t[(kind, n)] * 1e6 for n in counts}
            out[f"{kind}_us_per_guard"] = (t[(kind, hi)] - t[(kind, lo)]) * 1e6 / (hi - lo)
        spec = attr[hi]._tj_dispatcher.all_specializations()[0]
        guards = spec.capture.state_guards
        assert len(guards) >= hi and guards_hold(guards)
        held = median_s({"hold": lambda: guards_hold(guards)}, number=20000, repeats=repeats)
        out["guards_hold_us_per_guard"] = held["hold"] * 1e6 / len(guards)
        base = data[0]
        spec0 = base._tj_dispatcher.all_specializations()[0]
        path = median_s({"call": lambda: base(x), "run": lambda: spec0.run([x])},
                        number=5000, repeats=repeats)
        out["dispatch_us"] = (path["call"] - path["run"]) * 1e6
        out["run_us"] = path["run"] * 1e6
    return out


# ---- report -----------------------------------------------------------------------------


def _wrong(row, kind) -> str:
    n, e = row[f"{kind}_wrong"], row[f"{kind}_errors"]
    return f"{n}/{row['calls']}" + (f" (+{e} error)" if e else "")


def render(rows, guards, meta) -> tuple[Table, str]:
    head = ["model", "dynamic", "tracejit wrong", "jit.trace wrong", "specialisations",
            "eager µs/call", "tracejit µs/call", "note"]
    table = Table(title=f"dynamic models (tracejit backend {meta['backend']})")
    for h in head:
        table.add_column(h, justify="left" if h in ("model", "dynamic", "note") else "right")
    md = ["# Dynamic models: tracejit vs torch.jit.trace vs eager", "",
          f"{meta['date']}; {meta['machine']['cpu']}, {meta['machine']['cores']} cores, load "
          f"average {meta['machine']['load_average'][0]:.1f}, torch threads {meta['threads']}; "
          "tracejit backend "
          f"`{meta['backend']}`. Each stream is played through eager (a deep copy), "
          "tracejit and torch.jit.trace (traced on the stream's first call). Wrong = "
          "outputs not within rtol 1e-4 / atol 1e-5 of eager. Times: median of "
          f"{meta['repeats']} interleaved stream passes, after a first pass (all "
          "specialisations made), per call; seeded streams (dropout, random depth) include "
          "the `torch.manual_seed` before each call in both columns.", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        note = r.get("jit_note") or ""
        if r.get("eager_reason"):
            note = "tracejit eager: " + r["eager_reason"].split(";")[0]
        if "printed_lines" in r:
            p = r["printed_lines"]
            note += f"; lines printed eager/tracejit/jit.trace {p['eager']}/{p['tracejit']}/" \
                    f"{p['jit.trace']}"
        cells = [r["model"], r["dynamic"], _wrong(r, "tj"), _wrong(r, "jit"),
                 str(r["specialisations"]), f"{r['eager_us']:.0f}", f"{r['tracejit_us']:.0f}",
                 note]
        table.add_row(*cells[:-1], note[:80])
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    g = guards
    md += ["", f"## Guard overhead (backend `{g['backend']}`)", "",
           "| guard kind | call µs at N=" + " / ".join(map(str, g["counts"])) +
           " | µs per guard |", "|---|---|---|",
           "| attribute read by forward | " + " / ".join(
               f"{v:.2f}" for v in g["attr_call_us"].values()) +
           f" | {g['attr_us_per_guard']:.3f} |",
           "| data-dependent (`if x[i] > 0`, incl. its index and compare) | " + " / ".join(
               f"{v:.2f}" for v in g["data_call_us"].values()) +
           f" | {g['data_us_per_guard']:.3f} |", "",
           f"- `tracejit.state.guards_hold` alone: {g['guards_hold_us_per_guard']:.3f} µs "
           "per attribute guard.",
           f"- guard key + tree lookup (a call minus `Specialization.run`, one input): "
           f"{g['dispatch_us']:.2f} µs per call (run itself {g['run_us']:.2f} µs).",
           "- target: <= 1 µs per guard."]
    return table, "\n".join(md) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numba-cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a busy machine, 2 spinning threads stall eager)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 15
    start = time.perf_counter()
    rows = [bench_case(c, args.backend, repeats) for c in CASES]
    guards = guard_overhead(args.backend, repeats)
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": {**machine(), "torch_threads": args.threads},
            "backend": args.backend, "repeats": repeats, "threads": args.threads,
            "wall_s": time.perf_counter() - start}
    table, md = render(rows, guards, meta)
    Console(width=200).print(table)
    print(md.split("## Guard overhead")[1])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dynamic.md").write_text(md)
    (args.out / "dynamic.json").write_text(json.dumps(
        {**meta, "models": rows, "guards": guards}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
