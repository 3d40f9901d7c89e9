"""``python -m bench.sweep [NAME]``: the command line of a sweep (a run, ``--resume``; its arguments, ``--list`` and
``--dry-run``: ``bench.sweep.command``).

Bad input (an unknown sweep, a bad ``--set``, a request no node can hold) gives one ``error:`` line per
problem and exit status 2, before any work; an interrupted sweep exits with 130 and says how to continue.
"""
from __future__ import annotations

import signal
from pathlib import Path

import pandas as pd

from bench.sweep import groups, growth
from bench.sweep.cluster import ResourceError
from bench.sweep.command import (EXIT_INTERRUPTED, EXIT_STOPPED, first_line, overrides_of, parser, problems, runs_trials,
                                 stopped, without_trials, write_error)
from bench.sweep.layout import SweepDir
from bench.pipeline import run_sweep
from bench.sweep.spec import SweepError
from bench.table.configurations import summary, terminal

OVERHEAD_TARGET = 1.3


def seed_list(text: str) -> list[int]:
    """``--add-seeds 2,3``: the seeds, or one SweepError line."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise SweepError(f"--add-seeds {text!r}: give seeds as non-negative integers separated by commas, e.g. 2,3")
    return list(dict.fromkeys(seeds))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not runs_trials(args):
        return without_trials(args)  # --list, --dry-run (bench.sweep.command)
    try:
        overrides = overrides_of(args)
        if args.resume and (args.sets or args.out or args.data_root):
            raise SweepError("--resume continues a sweep as it was defined: no --set, --data-root or --out with it")
        add_seeds = seed_list(args.add_seeds) if args.add_seeds is not None else None
        add_values = growth.parse_additions(args.adds) if args.adds else None
        stack_seeds = args.stack_seeds if args.resume else groups.default_mode(args.stack_seeds, args.scheduler)
        signal.signal(signal.SIGTERM, as_interrupt)  # a SIGTERM (a job scheduler, kill) ends the sweep as Ctrl-C does
        runs = run_sweep(args.name, out=args.out, address=args.address, resume=args.resume, retry_errors=args.retry_errors, allow_changes=args.allow_changes,
                         add_seeds=add_seeds, add_values=add_values,
                         max_failures=args.max_failures, scheduler=args.scheduler,
                         verbose=args.verbose, stack_seeds=stack_seeds, order=args.order, **overrides)
    except (SweepError, ResourceError) as err:
        return problems(err)
    except KeyboardInterrupt:
        return stopped("interrupted", EXIT_INTERRUPTED, resume=args.resume)
    except BrokenPipeError:  # the reader of the output went away (| head): bench.command_exit ends quietly with 0
        raise
    except Exception as err:  # a full or read-only disk, a lost cluster, anything Ray raises: the records are safe
        if (disk := write_error(err)) is not None:
            where = f" ({disk.filename})" if disk.filename else ""
            return stopped(f"stopped: cannot write{where}: {disk.strerror or disk}", EXIT_STOPPED, "free space or fix "
                           "the permissions, then ", resume=args.resume)
        return stopped(f"stopped: {type(err).__name__}: {first_line(err)}", EXIT_STOPPED,
                       "check the cluster (or leave out --address for a local one), then ", resume=args.resume)
    return report(runs, wide=args.wide)


def as_interrupt(signum, frame) -> None:
    """SIGTERM handled as SIGINT: by whatever handles Ctrl-C now (Ray Tune's graceful stop while trials run)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def report(runs: pd.DataFrame, wide: bool = False) -> int:
    """The table on screen, the overhead ratio, where the files are; exit status 130 when interrupted."""
    a = runs.attrs
    out = Path(a["out"])
    print()
    table = SweepDir(out).table_path("table.md")
    if table.is_file():
        print(terminal(summary(runs), wide=wide))
        print(f"(every column: {table})")
    else:
        print("(no trial finished: no table yet)")
    if a.get("n_run"):
        ideal = a["trial_s"] / a["slots"]
        verdict = "ok" if a["overhead"] <= OVERHEAD_TARGET else f"above the {OVERHEAD_TARGET} target"
        print(f"timing: Tuner.fit wall {a['wall_s']:.1f} s for {a['n_run']} trials; sum of trial times "
              f"{a['trial_s']:.1f} s / {a['slots']} slots = {ideal:.1f} s; overhead ratio {a['overhead']:.2f} ({verdict}); "
              f"{a['total_s']:.1f} s in all with Ray's start and the tables")
    statuses = runs["status"].value_counts().to_dict() if len(runs) else {}
    print(f"runs: {', '.join(f'{v} {k}' for k, v in statuses.items()) or 'none'}; results in {out}")
    if a.get("interrupted"):
        print(f"interrupted: {len(a.get('missing', []))} trial(s) unfinished; continue with: "
              f"python -m bench.sweep --resume {out}")
        return 130
    return 0
