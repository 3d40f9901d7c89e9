"""python -m bench.speed.targets: every speed target of the harness measured in one call, with a summary.

    python -m bench.speed.targets [--only scale sweep fast full] [--sizes 100 1000 10000] [--reference DIR]

Run it on a quiet machine (the figures are wall times; the load average is printed beside each). The steps,
each as a user runs it, in a fresh process:

- ``scale``: synthetic sweep directories of each size (``bench.speed.scale``: valid records of the real schema),
  then ``python -m bench.report DIR`` (runs.csv, the tables and report.html, nothing cached): its wall time and
  peak memory (the largest process); a least-squares line through the sizes (seconds per 1,000 runs) and its
  largest residual. Targets: 1,000 runs in under 20 s and 2 GB, 10,000 runs in under 3 minutes.
- ``sweep``: ``python3 run.py sweep`` (the default 60-trial sweep) end to end, against ``Tuner.fit`` as it
  prints it; target under 35 s. ``--reference DIR`` (a sweep directory of the same sweep written by another
  version of the code) also compares every record, without when and where it ran: equal or not.
- ``fast``: ``python3 run.py test --fast`` (the edit-loop tier); target under 30 s.
- ``full``: ``python3 run.py test`` (the whole suite, what CI runs); target under 3 minutes.

A target holds for the default sizes and commands only: ``--sweep-args`` and ``--pytest-args`` (extra arguments,
to try the command on a small case) leave those rows without a target. Writes every figure to ``--out`` (JSON).
Exit status 0 when every step ran (met or not), 1 when a command failed, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.speed import scale
from bench.speed.same_records import WHEN_AND_WHERE
from bench.sweep.layout import SweepDir
from moe.records.record import write_json_atomic
from moe.records.record_diff import largest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("scale", "sweep", "fast", "full")
SIZES = (100, 1000, 10000)
REPORT_S = {1000: 20.0, 10000: 180.0}  # runs -> the most seconds tables + report.html may take
REPORT_MB = {1000: 2048.0}  # runs -> the most peak memory (MB)
SWEEP_S, FAST_S, FULL_S = 35.0, 30.0, 180.0
LINEAR_RESIDUAL = 0.15  # the line through the sizes: largest residual relative to its value, for 'linear'


class Failed(RuntimeError):
    """A measured command did not succeed."""


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds and the finished process of one command, run in the repository's root."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def measure_scale(sizes: list[int], scratch: Path) -> dict[str, Any]:
    """``bench.report DIR`` of a synthetic directory of each size: wall time and peak memory, and the line."""
    bases = scale.base_records()
    rows = []
    for n in sizes:
        folder = scale.synthetic_sweep(scratch / f"runs{n}", n, bases)
        load = os.getloadavg()[0]
        try:
            r = scale.run_step([sys.executable, "-m", "bench.report", str(folder)])
        except RuntimeError as err:
            raise Failed(str(err)[-1500:]) from None
        rows.append({"runs": n, "load": load, **r})
        print(f"  {n:>6} runs: tables + report.html {r['wall_s']:7.1f} s ({r['cpu_s']:.1f} s of CPU), peak "
              f"{r['peak_mb']:6.0f} MB (load {load:.1f})", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    line = scale.fit([r["runs"] for r in rows], [r["wall_s"] for r in rows])
    line["cpu"] = scale.fit([r["runs"] for r in rows], [r["cpu_s"] for r in rows])  # the same line in CPU seconds
    return {"rows": rows, "line": line}


BENCH_WHEN_AND_WHERE = ("node_id", "pid", "trial_id", "started_at", "ended_at")  # which Ray trial ran it, where, when


def sweep_records(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Configuration name -> record of a sweep directory, without when and where it ran (and the trial's time, its
    Ray trial, node and process)."""
    good, _ = SweepDir(Path(folder)).scan_records()
    out = {}
    for rec in good.values():
        rec = {k: v for k, v in rec.items() if k not in WHEN_AND_WHERE}
        rec["bench"] = {k: v for k, v in (rec.get("bench") or {}).items()
                        if not k.endswith("_s") and k not in BENCH_WHEN_AND_WHERE}
        rec["history"] = [{k: v for k, v in h.items() if k != "epoch_s"} for h in rec.get("history") or []]
        out[f"{rec['bench'].get('name')} seed {rec.get('seed')}"] = rec
    return out


def differing(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The records of ``before`` and ``after`` (``sweep_records``) that are not equal, or only in one."""
    return [f"{name}: {'only in one' if name not in before or name not in after else largest(before[name], after[name])[0]}"
            for name in sorted(set(before) | set(after))
            if name not in before or name not in after or largest(before[name], after[name])[0]]


def measure_sweep(extra: list[str], scratch: Path, reference: str | None) -> dict[str, Any]:
    """``python3 run.py sweep`` end to end, its ``Tuner.fit`` time as printed, and its records against ``reference``."""
    out = scratch / "sweep"
    load = os.getloadavg()[0]
    wall, proc = timed([sys.executable, str(ROOT / "run.py"), "sweep", *extra, "--out", str(out)])
    if proc.returncode:
        raise Failed(f"run.py sweep exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-1500:]}")
    fit = re.search(r"Tuner\.fit wall ([0-9.]+) s for (\d+) trials", proc.stdout)
    runs = re.search(r"^runs: (.*); results in", proc.stdout, re.M)
    result = {"wall_s": wall, "tuner_s": float(fit.group(1)) if fit else math.nan, "runs": runs.group(1) if runs else "?",
              "load": load}
    if reference is not None:
        result["differ"] = differing(sweep_records(reference), sweep_records(out))
    return result


def measure_tests(fast: bool, extra: list[str]) -> dict[str, Any]:
    """``python3 run.py test [--fast]``: wall time and pytest's closing line."""
    load = os.getloadavg()[0]
    wall, proc = timed([sys.executable, str(ROOT / "run.py"), "test", *(["--fast"] if fast else []), "-q",
                        "-p", "no:cacheprovider", *extra])
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1].strip("= ") if lines else ""
    if proc.returncode:
        raise Failed(f"run.py test{' --fast' if fast else ''} exited {proc.returncode}: {summary or proc.stderr[-1500:]}")
    return {"wall_s": wall, "summary": summary, "load": load}


def verdict(value: float, target: float | None) -> str:
    if target is None:
        return "-"
    return "yes" if value < target else "NO"


def summary_rows(results: dict[str, Any], narrowed: dict[str, bool]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, met) for each figure measured."""
    rows = []
    if "scale" in results:
        for r in results["scale"]["rows"]:
            n, s_target, mb_target = r["runs"], REPORT_S.get(r["runs"]), REPORT_MB.get(r["runs"])
            cpu = f"; {r['cpu_s']:.1f} s of CPU" if "cpu_s" in r else ""
            rows.append((f"{n:,} runs: tables + report.html", f"{r['wall_s']:.1f} s (load {r['load']:.1f}{cpu})",
                         f"< {s_target:g} s" if s_target else "-", verdict(r["wall_s"], s_target)))
            rows.append((f"{n:,} runs: peak memory", f"{r['peak_mb']:.0f} MB", f"< {mb_target:g} MB" if mb_target else "-",
                         verdict(r["peak_mb"], mb_target)))
        line = results["scale"]["line"]
        if math.isfinite(line["per_1000_s"]):
            linear = line["max_rel_residual"] <= LINEAR_RESIDUAL and len(results["scale"]["rows"]) > 2
            cpu = line.get("cpu") or {}
            cpu = (f"; CPU {cpu['per_1000_s']:.2f} s per 1,000 runs + {cpu['fixed_s']:.1f} s"
                   if math.isfinite(cpu.get("per_1000_s", math.nan)) else "")
            rows.append(("slope through the sizes", f"{line['per_1000_s']:.2f} s per 1,000 runs + {line['fixed_s']:.1f} s; "
                         f"largest residual {line['max_rel_residual']:.0%}{cpu}",
                         f"linear (residual <= {LINEAR_RESIDUAL:.0%}, 3+ sizes)",
                         "yes" if linear else "NO" if len(results["scale"]["rows"]) > 2 else "-"))
    if "sweep" in results:
        s = results["sweep"]
        target = None if narrowed["sweep"] else SWEEP_S
        rows.append(("python3 run.py sweep, end to end", f"{s['wall_s']:.1f} s (Tuner.fit {s['tuner_s']:.1f} s; {s['runs']}; "
                     f"load {s['load']:.1f})", f"< {target:g} s" if target else "-", verdict(s["wall_s"], target)))
        if "differ" in s:
            rows.append(("the sweep's records against --reference", "equal" if not s["differ"] else
                         f"{len(s['differ'])} differ: {'; '.join(s['differ'][:3])}", "equal", "NO" if s["differ"] else "yes"))
    for key, label, limit in (("fast", "python3 run.py test --fast", FAST_S), ("full", "python3 run.py test", FULL_S)):
        if key in results:
            r, target = results[key], None if narrowed["tests"] else limit
            rows.append((label, f"{r['wall_s']:.1f} s ({r['summary']}; load {r['load']:.1f})",
                         f"< {target:g} s" if target else "-", verdict(r["wall_s"], target)))
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.speed.targets", description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), metavar="STEP",
                   help=f"the steps to run, of {', '.join(STEPS)} (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                   help="numbers of runs of the scale step (multiples of 20; default: 100 1000 10000)")
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="a directory of the same sweep written by other code: its records must equal the new sweep's")
    p.add_argument("--sweep-args", default="", metavar="ARGS", help="extra arguments of run.py sweep (no target then)")
    p.add_argument("--pytest-args", default="", metavar="ARGS",
                   help="extra arguments of both test commands, e.g. a test file (no target then)")
    p.add_argument("--out", default=os.path.join("results", "speed_targets.json"), help="JSON of every figure")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    for n in args.sizes:
        try:
            scale.grid_for(n)
        except ValueError as err:
            p.error(str(err))
    if args.reference is not None and not SweepDir(Path(args.reference)).record_files():
        p.error(f"--reference {args.reference}: no sweep records there")
    sweep_extra, pytest_extra = shlex.split(args.sweep_args), shlex.split(args.pytest_args)
    narrowed = {"sweep": bool(sweep_extra), "tests": bool(pytest_extra)}
    steps = [s for s in STEPS if s in args.only]
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"steps: {', '.join(steps)}", flush=True)
    results: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="speed-targets-"))
    failed = []
    try:
        for step in steps:
            print(f"{step} ...", flush=True)
            try:
                if step == "scale":
                    results[step] = measure_scale(sorted(set(args.sizes)), scratch)
                elif step == "sweep":
                    results[step] = measure_sweep(sweep_extra, scratch, args.reference)
                else:
                    results[step] = measure_tests(step == "fast", pytest_extra)
            except Failed as err:
                failed.append(step)
                print(f"  {step} FAILED: {err}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = summary_rows(results, narrowed)
    width = max((len(r[0]) for r in rows), default=10)
    print("\nsummary (load average now {:.1f})".format(os.getloadavg()[0]))
    for what, measured, target, met in rows:
        print(f"  {what:<{width}}  {met:>3}  {measured}  [target {target}]")
    for step in failed:
        print(f"  {step}: FAILED (no figure)")
    write_json_atomic(args.out, {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
                                 "results": results, "failed": failed,
                                 "summary": [dict(zip(("what", "measured", "target", "met"), r)) for r in rows]})
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
