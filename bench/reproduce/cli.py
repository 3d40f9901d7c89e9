"""``python -m bench.reproduce [NAME|all]``: the command line of the reproduction (see bench.reproduce).

A bad claim name or budget gives one ``error:`` line with the valid choices and exit status 2, before
any work; Ctrl-C says how to continue (exit 130).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.reproduce import claims
from bench.reproduce.engine import describe_condition
from bench.reproduce.verdict_page import REPORT, clock, summary_table
from bench.reproduce.results import BUDGET_WORDS, ReproduceError
from bench.reproduce.runner import SWEEPS, budget_overrides, reproduce, select_claims
from bench.sweep import estimate, spec
from bench.sweep.layout import default_out
from moe.data.base import default_data_root


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.reproduce",
                                 description="Run the seed papers' findings as sweeps and write REPRODUCTION.md.")
    ap.add_argument("name", nargs="?", default=None, metavar="NAME",
                    help=f"all (default), a sweep ({', '.join(SWEEPS)}) or one claim (see --list)")
    ap.add_argument("--data-root", default=None, metavar="DIR",
                    help="MNIST-family files in torchvision's layout (default: $MOE_DATA, else ~/.cache/moe-interp-bench)")
    ap.add_argument("--budget", default=None, metavar="{" + ",".join(BUDGET_WORDS) + "}",
                    help="small (default): subsets, fewer epochs and seeds; seed: the seed code's "
                         "settings, splits and run counts; paper: the papers' settings")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="output directory (default: results/reproduce-<timestamp>); an existing one is continued")
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: $RAY_ADDRESS, else a local instance)")
    ap.add_argument("--report-only", action="store_true",
                    help="train no sweep trial: rebuild the report from the sweeps of --out that have finished (their "
                         "runs.csv as written, also when their records are not kept; their own tables and pages are "
                         "left as they are); the others are "
                         "reported as not run, with how many of their trials have finished")
    ap.add_argument("--partial", action="store_true",
                    help="with --report-only: judge the finished runs of a sweep whose directory has runs still to come "
                         "(unfinished trials, or a budget beyond its grid) instead of reporting it as not run; its "
                         "section says so, and the runs still to come are listed at the end")
    ap.add_argument("--allow-changes", action="store_true",
                    help="continue (or grow) a sweep directory of --out although its sweep file, the data or the code "
                         "changed since it started (as bench.sweep --allow-changes; refused otherwise; its page marks "
                         "the mixture)")
    ap.add_argument("--list", action="store_true", help="list per budget each sweep's trials, estimated CPU time and data (present under the data root or "
                         "not), then the claims with their statistics and thresholds, and exit")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-trial progress lines")
    ap.add_argument("-v", "--verbose", action="store_true", help="Ray's own output, tracebacks of failing sweeps")
    return ap


def list_budgets(data_root: str | None = None) -> None:
    """Per budget and sweep: trials, estimated CPU time (bench.sweep.estimate's per-trial model), data needed."""
    root = Path(data_root).expanduser() if data_root else default_data_root()
    n = estimate.cores()
    print(f"Budgets (data root: {root}; CPU time: the sum of the trials' estimated times, rough; wall: on {n} cores)")
    for budget, words in BUDGET_WORDS.items():
        costs = {name: estimate.cost(spec.load(name, budget_overrides(budget, name))) for name in SWEEPS}
        cpu = sum(c.cpu_s for c in costs.values())
        wall = sum(c.wall_s(n) for c in costs.values())
        print(f"{budget}: {words}: {sum(c.trials for c in costs.values())} trials, CPU time "
              f"{estimate.duration(cpu)}, wall {estimate.duration(wall)}")
        for name, c in costs.items():
            print(f"    {name:<25} {c.trials:>4} trials  {estimate.duration(c.cpu_s):>8}  "
                  f"{estimate.data_status(c.datasets, root)}")
    print()


def list_claims() -> int:
    for c in claims.CLAIMS:
        print(f"{c.name}  [sweep {c.sweep}]  {c.text}")
        for cond in c.conditions:
            print(f"    {describe_condition(cond)}")
        for p in c.premises:
            print(f"    premise: {p.name} SUPPORTED")
        print(f"    collapsed runs: {'kept' if c.keep_collapsed else 'left out'}")
    return 0


EXIT_STOPPED = 3  # stopped by a full or read-only disk (as bench.sweep)


def again(argv: list[str] | None, given_out: str | None, out: Any) -> str:
    """The command that continues this one: the same arguments, with ``--out`` the directory it wrote."""
    same = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--out" and a != given_out]
    return f"python -m bench.reproduce {' '.join(same)} --out {out}"


def main(argv: list[str] | None = None, *, budget_table: dict[str, dict[str, Any]] | None = None) -> int:
    """The command; ``budget_table`` (tests): sweep -> overrides of the chosen budget, in place of the sweep files' own."""
    args = parser().parse_args(argv)
    if args.list:
        list_budgets(args.data_root)
        return list_claims()
    out = args.out
    try:
        budget = args.budget if args.budget is not None else "small"
        if budget not in BUDGET_WORDS:
            raise ReproduceError(f"--budget {budget!r}: unknown budget; valid choices: {', '.join(BUDGET_WORDS)}")
        if args.partial and not args.report_only:
            raise ReproduceError("--partial goes with --report-only: it judges the runs that have finished")
        target = args.name if args.name is not None else "all"
        select_claims(target)  # a bad name fails before any work
        out = Path(args.out).resolve() if args.out is not None else default_out("reproduce")
        rep = reproduce(target, budget=budget, data_root=args.data_root, out=out, address=args.address,
                        verbose=args.verbose, quiet=args.quiet, budget_table=budget_table,
                        report_only=args.report_only, allow_changes=args.allow_changes, partial=args.partial)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are kept in {out}; continue with: {again(argv, args.out, out)}",
              file=sys.stderr)
        return 130
    except OSError as err:  # a full or read-only disk: the records written are safe
        where = f" ({err.filename})" if err.filename else ""
        print(f"stopped: cannot write{where}: {err.strerror or err}. Finished trials are kept in {out}; free space or "
              f"fix the permissions, then continue with: {again(argv, args.out, out)}", file=sys.stderr)
        return EXIT_STOPPED
    print()
    print(summary_table(rep.verdicts))
    print(f"\nwrote {rep.out / REPORT} (wall time of this call {clock(rep.wall_s)})")
    return rep.exit_status
