"""``python -m bench.reproduce [NAME|all]``: the command line of the reproduction (see bench.reproduce).

A bad claim name or budget gives one ``error:`` line with the valid choices and exit status 2, before
any work; Ctrl-C says how to continue (exit 130).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.reproduce import claims as C
from bench.reproduce.engine import describe_condition
from bench.reproduce.report import REPORT, clock, summary_table
from bench.reproduce.results import BUDGET_WORDS, ReproduceError
from bench.reproduce.runner import reproduce, select_claims
from bench.sweep.layout import default_out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.reproduce",
                                 description="Run the seed papers' findings as sweeps and write REPRODUCTION.md.")
    ap.add_argument("name", nargs="?", default=None, metavar="NAME",
                    help="all (default), a sweep (lr_asymmetry, pretrained_experts, pretrained_experts_mnist, "
                         "fmnist_mnist_joint, cheating, expert_count) or one claim (see --list)")
    ap.add_argument("--data-root", default=None, metavar="DIR",
                    help="MNIST-family files in torchvision's layout (default: $MOE_DATA, else ~/.cache/moe-interp-bench)")
    ap.add_argument("--budget", default=None, metavar="{small,seed,paper}",
                    help="small (default): subsets, fewer epochs and seeds, <= 30 min on 2 CPUs; seed: the seed code's "
                         "settings, splits and run counts; paper: the papers' settings")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="output directory (default: results/reproduce-<timestamp>); an existing one is continued")
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: $RAY_ADDRESS, else a local instance)")
    ap.add_argument("--report-only", action="store_true",
                    help="train no sweep trial: rebuild the report from the sweeps of --out that have finished (their "
                         "runs.csv as written; their own tables and pages are left as they are); the others are "
                         "reported as not run, with how many of their trials have finished")
    ap.add_argument("--list", action="store_true", help="list the claims with their statistics and thresholds, and exit")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-trial progress lines")
    ap.add_argument("-v", "--verbose", action="store_true", help="Ray's own output, tracebacks of failing sweeps")
    return ap


def list_claims() -> int:
    for c in C.CLAIMS:
        print(f"{c.name}  [sweep {c.sweep}]  {c.text}")
        for cond in c.conditions:
            print(f"    {describe_condition(cond)}")
        for p in c.premises:
            print(f"    premise: {p.name} SUPPORTED")
        print(f"    collapsed runs: {'kept' if c.keep_collapsed else 'left out'}")
    return 0


def main(argv: list[str] | None = None, *, budget_table: dict[str, dict[str, Any]] | None = None) -> int:
    """The command; ``budget_table`` (tests): sweep -> overrides of the chosen budget, in place of the sweep files' own."""
    args = parser().parse_args(argv)
    if args.list:
        return list_claims()
    out = args.out
    try:
        budget = args.budget if args.budget is not None else "small"
        if budget not in BUDGET_WORDS:
            raise ReproduceError(f"--budget {budget!r}: unknown budget; valid choices: {', '.join(BUDGET_WORDS)}")
        target = args.name if args.name is not None else "all"
        select_claims(target)  # a bad name fails before any work
        out = Path(args.out).resolve() if args.out is not None else default_out("reproduce")
        rep = reproduce(target, budget=budget, data_root=args.data_root, out=out, address=args.address,
                        verbose=args.verbose, quiet=args.quiet, budget_table=budget_table,
                        report_only=args.report_only)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--out" and a != args.out]
        print(f"\ninterrupted: finished trials are kept in {out}; continue with: python -m bench.reproduce "
              f"{' '.join(again)} --out {out}", file=sys.stderr)
        return 130
    print()
    print(summary_table(rep.verdicts))
    print(f"\nwrote {rep.out / REPORT} (wall time of this call {clock(rep.wall_s)})")
    return rep.exit_status
