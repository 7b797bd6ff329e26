"""Results as JSON, Markdown, a rich table and a PNG of speed-ups (log scale)."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.table import Table

from . import systems

METHOD = {
    "latency": "median per-call time of interleaved round-robin blocks (~30 ms each, 10 ms "
               "in --quick) over all systems, after 3 warm-up calls; spread is p10/p90",
    "compile_cold": "fresh process, empty TRACEJIT/NUMBA/TORCHINDUCTOR cache folders: "
                    "(build + first two calls) - two eager calls (tracejit's first call traces "
                    "eagerly; Numba compiles on the first compiled call)",
    "compile_after_warmup": "tracejit-numba: fresh process, empty graph cache; Numba's "
                            "cache holds what one `tracejit warmup` run compiled (the kernel "
                            "library, once per installation; make install runs it), copied "
                            "afresh for each model",
    "compile_warm": "fresh processes on the caches the cold run filled (systems with a disk "
                    "cache only): the median of --warm-repeats of them (3; 1 in --quick)",
    "steady_state": "the latency columns (compiled code, caches hot, per call)",
    "memory": "peak RSS delta (VmHWM after build + 6 calls minus VmRSS once model, input "
              "and one eager call exist; peak reset via /proc/self/clear_refs) in the "
              "cold process",
    "correctness": "max abs error vs eager on the benchmark input, float64 comparison",
    "threads": "torch.set_num_threads(2); onnxruntime intra-op threads 2; no_grad, eval",
}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for pkg in ("torch", "numba", "onnxruntime", "onnx", "numpy", "tracejit"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    versions["python"] = platform.python_version()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": 2,
            "platform": platform.platform(), "versions": versions,
            "load_average": os.getloadavg()}


def _geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def assemble(args, latency, compile_rows, wall_s) -> dict:
    geo = {}
    for name in args.systems:
        for idx, label in ((0, "small"), (1, "large")):
            sp = [r.get("speedup") for r in latency if r["system"] == name
                  and len(_batches(args, r["model"])) > idx
                  and r["batch"] == _batches(args, r["model"])[idx]]
            geo.setdefault(name, {})[label] = _geomean(sp)
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(), "method": METHOD, "wall_s": wall_s,
            "options": {"quick": args.quick, "models": args.models, "systems": args.systems,
                        "batch": args.batch, "repeats": args.repeats,
                        "warm_repeats": args.warm_repeats},
            "onnx_exporter": systems.ONNX_EXPORTER["note"] or None,
            "warmup_s": getattr(args, "warmup_s", None),
            "geomean_speedup": geo, "latency": latency, "compile": compile_rows}


def _batches(args, model):
    from . import zoo
    return args.batch or list(zoo.ZOO[model].batches)


def _err(row) -> str | None:
    return row.get("error") or row.get("skipped")


def _t(us: float) -> str:
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.1f} ms"


def latency_cell(row, rich=False) -> str:
    """'median (p10–p90) speed-up'; rich: 'median speed-up' (spread is in the Markdown)."""
    if _err(row):
        return ("[red]error[/]" if rich else "error") if row.get("error") else "—"
    lat, sp = row["latency_us"], row.get("speedup")
    flag = " ⚠" if row.get("max_abs_err", 0.0) > 1e-3 else ""
    if rich:
        return f"{_t(lat['median'])}\n{sp:.2f}x{flag}"
    return f"{_t(lat['median'])} ({_t(lat['p10'])}–{_t(lat['p90'])}) {sp:.2f}x{flag}"


def compile_cell(row) -> str:
    if row.get("skipped"):
        return "—"
    cold, warm = row.get("cold", {}), row.get("warm")
    if "error" in cold:
        return "error"
    parts = []
    after = row.get("after_warmup") or {}
    if cold.get("compile_s") is not None:
        parts.append(f"{cold['compile_s']:.2f} s")
        if after.get("compile_s") is not None:
            parts.append(f"after warmup {after['compile_s']:.2f} s")
        parts.append(_warm_text(warm))
    if cold.get("peak_delta_mib") is not None:
        parts.append(f"+{cold['peak_delta_mib']:.0f} MiB")
    return " / ".join(p for p in parts if p)


def _warm_text(warm) -> str:
    """"warm 0.45 s", with the range over the processes when there were several."""
    if not warm:
        return ""
    if "compile_s" not in warm:
        return "warm error"
    runs = warm.get("runs_s") or []
    spread = f" ({min(runs):.2f}–{max(runs):.2f})" if len(runs) > 1 else ""
    return f"warm {warm['compile_s']:.2f} s{spread}"


def _grid(data):
    systems_ = data["options"]["systems"]
    keys = []
    for r in data["latency"]:
        if (r["model"], r["batch"]) not in keys:
            keys.append((r["model"], r["batch"]))
    cells = {(r["model"], r["batch"], r["system"]): r for r in data["latency"]}
    return systems_, keys, cells


def markdown(data) -> str:
    m = data["machine"]
    v = m["versions"]
    systems_, keys, cells = _grid(data)
    out = [f"# tracejit benchmarks — {data['date']}", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}; "
           f"load average at the end {', '.join(f'{x:.1f}' for x in m['load_average'])}.  ",
           "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".  ",
           f"Run: {'--quick, ' if data['options']['quick'] else ''}"
           f"{data['options']['repeats']} interleaved rounds, {data['wall_s']:.0f} s wall.  ",
           f"ONNX reference export: {data['onnx_exporter'] or 'not run'}.  ",
           f"Note: {data['notes']}." if data.get("notes") else "", "",
           "## Latency per call: median µs (p10–p90), speed-up vs eager", "",
           "| model | batch | " + " | ".join(systems_) + " |",
           "|---|---|" + "---|" * len(systems_)]
    for model, batch in keys:
        out.append(f"| {model} | {batch} | " + " | ".join(
            latency_cell(cells.get((model, batch, s), {"skipped": "-"})) for s in systems_)
            + " |")
    geo = data["geomean_speedup"]
    for label in ("small", "large"):
        out.append(f"| geomean | {label} | " + " | ".join(
            f"{geo[s][label]:.2f}x" if geo[s][label] else "—" for s in systems_) + " |")
    out += ["", "## Max abs error vs eager", "",
            "| model | batch | " + " | ".join(systems_) + " |",
            "|---|---|" + "---|" * len(systems_)]
    for model, batch in keys:
        out.append(f"| {model} | {batch} | " + " | ".join(
            f"{cells[(model, batch, s)]['max_abs_err']:.1e}"
            if "max_abs_err" in cells.get((model, batch, s), {}) else "—"
            for s in systems_) + " |")
    warmup = (f"`tracejit warmup` (tracejit-numba's kernel library) took "
              f"{data['warmup_s']:.1f} s." if data.get("warmup_s") else "")
    out += ["", "## Compile: cold / after warmup / warm (new process), peak RSS delta", "",
            warmup, "",
            "| model | " + " | ".join(systems_) + " |", "|---|" + "---|" * len(systems_)]
    comp = {(r["model"], r["system"]): r for r in data["compile"]}
    for model in dict.fromkeys(k[0] for k in keys):
        out.append(f"| {model} | " + " | ".join(
            compile_cell(comp.get((model, s), {"skipped": "-"})) for s in systems_) + " |")
    out += ["", "## Errors and skips", ""]
    notes = [(r["model"], r.get("batch"), r["system"], _err(r)) for r in data["latency"]
             if _err(r)]
    notes += [(r["model"], r["batch"], r["system"] + " probe", p["error"])
              for r in data["compile"]
              for p in (r.get("cold", {}), r.get("after_warmup") or {}, r.get("warm") or {})
              if "error" in p]
    out += [f"- {m_} x{b} {s}: {e}" for m_, b, s, e in notes] or ["- none"]
    out += ["", "## Method", ""] + [f"- {k}: {val}" for k, val in data["method"].items()]
    return "\n".join(out) + "\n"


def print_tables(console, data) -> None:
    systems_, keys, cells = _grid(data)
    table = Table(title="latency per call (µs median, p10–p90) and speed-up vs eager")
    table.add_column("model")
    table.add_column("batch", justify="right")
    for s in systems_:
        table.add_column(s, justify="right")
    for model, batch in keys:
        table.add_row(model, str(batch), *(latency_cell(
            cells.get((model, batch, s), {"skipped": "-"}), rich=True) for s in systems_))
    console.print(table)
    comp = Table(title="compile cold / after warmup / warm (new process), peak RSS delta")
    comp.add_column("model")
    for s in systems_:
        comp.add_column(s, justify="right")
    byk = {(r["model"], r["system"]): r for r in data["compile"]}
    for model in dict.fromkeys(k[0] for k in keys):
        comp.add_row(model, *(compile_cell(byk.get((model, s), {"skipped": "-"}))
                              .replace(" / ", "\n") for s in systems_))
    console.print(comp)
    for line in markdown(data).split("## Errors and skips")[1].split("## Method")[0] \
            .strip().splitlines():
        console.print(line, markup=False)


def plot(data, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    systems_, keys, cells = _grid(data)
    shown = [s for s in systems_ if s != "eager"]
    models = list(dict.fromkeys(k[0] for k in keys))
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(models)), 8), squeeze=False)
    for ax, idx, label in ((axes[0][0], 0, "smaller batch"), (axes[1][0], -1, "larger batch")):
        width = 0.8 / max(len(shown), 1)
        for j, s in enumerate(shown):
            ys = []
            for model in models:
                batches = [b for mm, b in keys if mm == model]
                ys.append(cells.get((model, batches[idx], s), {}).get("speedup") or 0)
            xs = [i + (j - (len(shown) - 1) / 2) * width for i in range(len(models))]
            ax.bar(xs, [y if y > 0 else float("nan") for y in ys], width, label=s)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(models)), [
            f"{mm}\nx{[b for m2, b in keys if m2 == mm][idx]}" for mm in models], fontsize=8)
        ax.set_ylabel("speed-up vs eager (log)")
        ax.set_title(f"{label}; {data['machine']['cpu']}, 2 threads, {data['date'][:10]}")
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(data, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "latest.json", out / "latest.md", out / "speedup.png"]
    paths[0].write_text(json.dumps(data, indent=1) + "\n")
    paths[1].write_text(markdown(data))
    plot(data, paths[2])
    return paths
