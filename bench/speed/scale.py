"""python -m bench.speed.scale: what a sweep's tables and report cost as the number of runs grows.

Builds synthetic sweep directories of N valid records (``synthetic_sweep``: a few real records trained here,
then N records of the same schema made by ``moe.records.record.finished_record`` from them, each with its own
configuration and seed and its scores, assignments and allocation perturbed), and times, each in a fresh
process as a user runs it: runs.csv and the tables without plots (``python -m bench.table DIR --no-plots``),
the tables with their plots (``python -m bench.table DIR``), report.html (``python -m bench.report DIR``, which
rebuilds the tables first: the records the tables read are kept by then, ``bench.table.record_cache``, but no
drill-down figure is) and the same report again (nothing new to read or draw); each with its wall and CPU seconds
(the process and its figure workers) and its peak resident memory
(the largest process: the command or one of its workers). Prints the cost per run at each size and, per step, a
least-squares line through the sizes (seconds per 1,000 runs, and the fixed part), in wall and in CPU seconds: a
report that grows linearly has residuals within ``LINEAR`` of the line. A build from nothing (no cache) is
``python -m bench.speed.targets --only scale``'s step.

    python -m bench.speed.scale [--sizes 100 1000] [--large] [--sweep] [--keep DIR] [--out FILE]

``--large`` adds 10,000 runs (about 450 MB of records; minutes). ``--sweep`` also runs the ``quick`` sweep end
to end (``bench.pipeline.run_sweep``) and prints its wall time against its trials' time on the slots it had (the
overhead ratio: 1 would be no cost outside the trials). The machine's load average is printed beside every
figure: the timings are absolute, so compare them only with timings taken under the same load.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import moe.training.loop
from bench.pipeline import run_sweep
from bench.sweep import spec
from bench.sweep.layout import SweepDir
from moe.records.record import finished_record, write_json_atomic

SEEDS = 5          # runs per configuration
LINEAR = 0.15      # the largest residual, relative to the line, of a cost that grows linearly (3 sizes or more)
BASE_ROUTERS = ("softmax", "topk[k=2]", "prototype", "hash")
BASE = {"dataset": "gm6", "budget": {"epochs": 3, "n_train": 240, "n_test": 120}}

# each step: a command line (after ``python``) and a label
STEPS = (("tables", ["-m", "bench.table", "{dir}", "--no-plots"], "runs.csv and tables, no plots"),
         ("tables_plots", ["-m", "bench.table", "{dir}"], "tables with plots"),
         ("report", ["-m", "bench.report", "{dir}"], "tables + report.html"),
         ("report_again", ["-m", "bench.report", "{dir}"], "tables + report.html again (nothing new)"))


def base_records(experts: int = 3) -> dict[str, dict[str, Any]]:
    """One real record per router of ``BASE_ROUTERS`` (gm6, 3 epochs, 240 training samples), trained here."""

    sweep = spec.from_mapping({**BASE, "grid": {"router": list(BASE_ROUTERS), "experts": [experts], "seed": [0]}},
                              name="scale-base")
    return {t.config["router"] + ("" if t.config.get("top_k") in (None, 1) else f"[k={t.config['top_k']}]"): moe.training.loop.run(t.config)
            for t in sweep.trials()}


def grid_for(n_runs: int) -> dict[str, list]:
    """A grid of exactly ``n_runs`` trials: the routers x learning-rate ratios x ``SEEDS`` seeds."""
    per = len(BASE_ROUTERS) * SEEDS
    if n_runs % per:
        raise ValueError(f"--sizes: each size must be a multiple of {per} (routers x seeds), got {n_runs}")
    ratios = [round(1.0 + 0.5 * k, 2) for k in range(n_runs // per)]
    return {"router": list(BASE_ROUTERS), "experts": [3], "lr_ratio": ratios, "seed": list(range(SEEDS))}


def _perturbed(base: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The fields a finished run's evaluation gives (``evaluated`` of ``finished_record``), perturbed: scores
    jittered within their ranges, a tenth of the test assignments moved, the allocation's experts relabelled."""
    skip = {"schema", "status", "error", "diverged", "config", "seed", "n_parameters", "history", "routing_dynamics",
            "resumed_from_epoch", "timing", "versions", "provenance"}
    ev = json.loads(json.dumps({k: v for k, v in base.items() if k not in skip}))
    for split in ("test", "validation"):
        for k, v in list((ev.get(split) or {}).items()):
            if isinstance(v, float) and math.isfinite(v) and 0.0 < v < 1.0:
                ev[split][k] = min(max(v + rng.gauss(0, 0.02), 0.0), 1.0)
    alloc = ev.get("allocation")
    if alloc:
        e = len(alloc[0])
        perm = rng.sample(range(e), e)
        ev["allocation"] = [[row[perm[j]] for j in range(e)] for row in alloc]
        if ev.get("test_assignment"):
            ev["test_assignment"] = [rng.randrange(e) if rng.random() < 0.1 else perm.index(a) if a < e else a
                                     for a in ev["test_assignment"]]
    return ev


def synthetic_sweep(root: str | os.PathLike, n_runs: int, bases: dict[str, dict[str, Any]], seed: int = 0) -> Path:
    """A sweep directory of ``n_runs`` valid records (sweep.json and records/NNNN.json, as ``bench.sweep`` writes
    them): trial i of ``grid_for(n_runs)`` gets the record of its router's base run, rebuilt by
    ``finished_record`` with the trial's config and seed, its history's losses and its scores perturbed."""

    sweep = spec.from_mapping({**BASE, "description": f"synthetic sweep of {n_runs} runs (bench.speed.scale)",
                               "version": 1, "grid": grid_for(n_runs)}, name=f"scale{n_runs}")
    trials = sweep.trials()
    folder = SweepDir(Path(root))
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.write_meta(sweep, trials)
    rng = random.Random(seed)
    for t in trials:
        cfg = t.config
        key = cfg["router"] + ("" if cfg.get("top_k") in (None, 1) else f"[k={cfg['top_k']}]")
        b = bases[key] if key in bases else bases[next(k for k in bases if k.startswith(cfg["router"]))]
        scale = 1.0 + rng.gauss(0, 0.05)
        history = [{k: (v * scale if isinstance(v, float) else v) for k, v in h.items()} for h in b["history"]]
        rec = finished_record("ok", None, dict(cfg), b["n_parameters"], history, _perturbed(b, rng),
                              b.get("routing_dynamics"), None, dict(b["timing"]), dict(b["provenance"]))
        rec["bench"] = {"index": t.index, "name": t.name, "trial_s": round(0.3 + rng.random(), 3)}
        folder.write_record(t.index, rec)
    return folder.root


def run_step(argv: list[str]) -> dict[str, float]:
    """Wall seconds, peak resident memory (MB, the largest of the process and its workers) and CPU seconds (user +
    system of the process and the workers it waited for: what the load changes far less than wall time) of one
    command."""
    code = ("import resource, runpy, sys, time; sys.argv = {argv!r}; t0 = time.perf_counter(); rc = 0\n"
            "try:\n    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n    rc = e.code or 0\n"
            "u = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]\n"
            "r = max(x.ru_maxrss for x in u); cpu = sum(x.ru_utime + x.ru_stime for x in u)\n"
            "sys.stderr.write('SCALE %r %r %r %r\\n' % (time.perf_counter() - t0, r / 1024, rc, cpu))")
    module, rest = argv[2], argv[3:]  # argv: python -m MODULE ARGS
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code.format(argv=[module] + rest)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("SCALE ")), None)
    if proc.returncode or line is None or line.split()[3] != "0":
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    _, inner, mb, _, cpu = line.split()
    return {"wall_s": wall, "inner_s": float(inner), "peak_mb": float(mb), "cpu_s": float(cpu)}


def fit(sizes: list[int], seconds: list[float]) -> dict[str, float]:
    """Least-squares line seconds = fixed + per_run * n, and the largest residual relative to the line's value."""
    if len(sizes) < 2:
        return {"per_1000_s": math.nan, "fixed_s": math.nan, "max_rel_residual": math.nan}
    slope, fixed = np.polyfit(np.asarray(sizes, float), np.asarray(seconds, float), 1)
    pred = fixed + slope * np.asarray(sizes, float)
    return {"per_1000_s": float(slope * 1000), "fixed_s": float(fixed),
            "max_rel_residual": float(np.max(np.abs(np.asarray(seconds) - pred) / np.maximum(pred, 1e-9)))}


def quick_sweep(scratch: Path) -> dict[str, Any]:
    """The ``quick`` sweep end to end (``bench.pipeline.run_sweep``): wall time, trial time, slots."""

    load = os.getloadavg()[0]
    runs = run_sweep("quick", out=scratch / "quick", quiet=True)
    a = runs.attrs
    return {"total_s": a["total_s"], "tuner_s": a["wall_s"], "trial_s": a["trial_s"], "slots": a["slots"],
            "ideal_s": a["trial_s"] / a["slots"] if a["slots"] else math.nan,
            "end_to_end_over_ideal": a["total_s"] / (a["trial_s"] / a["slots"]) if a["slots"] else math.nan,
            "overhead": a["overhead"], "load": load}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed.scale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="numbers of runs (multiples of 20)")
    p.add_argument("--large", action="store_true", help="add 10,000 runs (minutes; about 200 MB of records)")
    p.add_argument("--sweep", action="store_true", help="also time the quick sweep end to end against its trials")
    p.add_argument("--keep", default=None, help="build the directories here and keep them (default: a temporary folder)")
    p.add_argument("--out", default=os.path.join("results", "bench_scale.json"), help="JSON of every figure")
    args = p.parse_args(argv)
    sizes = sorted(set(args.sizes + ([10000] if args.large else [])))
    for n in sizes:
        try:
            grid_for(n)
        except ValueError as err:
            p.error(str(err))
    scratch = Path(args.keep or tempfile.mkdtemp(prefix="bench-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    bases = base_records()
    rows = []
    try:
        for n in sizes:
            t0 = time.perf_counter()
            folder = synthetic_sweep(scratch / f"runs{n}", n, bases)
            mb = sum(f.stat().st_size for f in (folder / "records").iterdir()) / 1e6
            print(f"{n} runs: directory built in {time.perf_counter() - t0:.1f} s ({mb:.0f} MB of records)", flush=True)
            for key, cmd, label in STEPS:
                load = os.getloadavg()[0]
                r = run_step([sys.executable] + [c.format(dir=folder) for c in cmd])
                rows.append({"runs": n, "step": key, "label": label, "load": load, **r})
                print(f"  {label:44s} {r['wall_s']:7.1f} s wall  {r['cpu_s']:7.1f} s CPU  "
                      f"{1000 * r['cpu_s'] / n:7.1f} ms CPU/run  peak {r['peak_mb']:6.0f} MB  (load {load:.1f})", flush=True)
        fits = {}
        if len(sizes) < 2:
            print("one size: no line through the sizes (give two or more to --sizes for the slope)")
        for key, _, label in STEPS:
            sizes_ = [r["runs"] for r in rows if r["step"] == key]
            fits[key] = fit(sizes_, [r["wall_s"] for r in rows if r["step"] == key])
            fits[key]["cpu"] = fit(sizes_, [r["cpu_s"] for r in rows if r["step"] == key])
            for what, f in (("wall", fits[key]), ("CPU", fits[key]["cpu"])) if len(set(sizes_)) > 1 else ():
                print(f"{label:44s} {what:4s} slope {f['per_1000_s']:.2f} s per 1,000 runs, fixed {f['fixed_s']:.1f} s, "
                      f"largest residual {f['max_rel_residual']:.0%} of the line"
                      + ("" if len(sizes_) < 3 else " (linear)" if f["max_rel_residual"] <= LINEAR else " (NOT linear)"))
        sweep = quick_sweep(scratch) if args.sweep else None
        if sweep:
            print(f"quick sweep: {sweep['total_s']:.1f} s end to end, trials {sweep['trial_s']:.1f} s on "
                  f"{sweep['slots']} slots ({sweep['ideal_s']:.1f} s ideal): end to end / ideal = "
                  f"{sweep['end_to_end_over_ideal']:.2f}, Tuner.fit / ideal = {sweep['overhead']:.2f} (load {sweep['load']:.1f})")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    write_json_atomic(args.out, {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
                                 "rows": rows, "fits": fits, "quick_sweep": sweep})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
