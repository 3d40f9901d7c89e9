"""python -m bench.speed.sweep_speed NAME: a whole sweep end to end with its seeds stacked (``--stack-seeds``)
against the same sweep unstacked, timed in the same run, in interleaved rounds (each round runs both, in a
shuffled order, into fresh directories); the ratio unstacked / stacked (higher is better) with a 95% bootstrap
interval and a verdict against ``--target``, as the other speed benchmarks print them; JSON beside.

    python -m bench.speed.sweep_speed lr_asymmetry [--target 4] [--rounds 2] [--mode auto|on] [--set KEY=VALUE ...]

The time of a sweep is ``bench.pipeline.run_sweep``'s whole call: Ray's start, every trial, the tables.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.speed.kernel_bench import meta
from bench.speed.timing import paired_ratio, time_interleaved
from bench.pipeline import run_sweep
from bench.sweep.spec import SweepError, parse_set
from moe.records.record import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed.sweep_speed", description=__doc__.split("\n")[0])
    p.add_argument("name", help="a sweep of sweeps/ or a .yaml file")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds, >= 2 (default 2)")
    p.add_argument("--target", type=float, default=None, help="the speed-up wanted (default: none)")
    p.add_argument("--mode", choices=("auto", "on"), default="auto", help="--stack-seeds of the stacked runs (default auto)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="as bench.sweep --set")
    p.add_argument("--out", default=None, help="JSON file (default results/bench_sweep_<name>.json)")
    args = p.parse_args(argv)
    if args.rounds < 2:
        p.error(f"--rounds: must be >= 2 (a ratio's interval needs at least two paired rounds), got {args.rounds}")
    try:
        overrides = parse_set(args.sets)
    except SweepError as err:
        p.error(str(err))
    scratch = Path(tempfile.mkdtemp(prefix="sweep-speed-"))
    counter = iter(range(10**6))

    def sweep(mode: str):
        def call():
            run_sweep(args.name, out=scratch / f"{mode}-{next(counter)}", stack_seeds=mode, quiet=True, **overrides)
        return call

    try:
        times = time_interleaved({"unstacked": sweep("off"), "stacked": sweep(args.mode)}, args.rounds, warmup=0)
    except SweepError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    row = dict(sweep=args.name, overrides=overrides, metric="end-to-end time: unstacked / stacked", direction="higher",
               **paired_ratio(times["unstacked"], times["stacked"], ">=", args.target or 1.0),
               target=f">= {args.target:g}" if args.target else "", unstacked_s=times["unstacked"], stacked_s=times["stacked"])
    if not args.target:
        row["verdict"] = ""
    print(f"{args.name} {overrides or ''}: unstacked / stacked = {row['ratio']:.2f} [{row['ratio_lo']:.2f}-{row['ratio_hi']:.2f}] "
          f"target {row['target'] or '-'} met {row['verdict'] or '-'}  (unstacked {times['unstacked']} s, stacked {times['stacked']} s)")
    args.device, args.seed = "cpu", 0
    out = args.out or os.path.join("results", f"bench_sweep_{Path(args.name).stem}.json")
    write_json_atomic(out, dict(meta=meta(args), rows=[row], when=time.time()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
