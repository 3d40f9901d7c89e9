"""The sweep command's arguments, and what it does without running a trial: ``--list``, ``--dry-run``, ``--help``
and bad input; one ``error:`` line per problem (exit status 2), one message for a command that stopped.

It imports neither Ray nor pandas nor matplotlib: ``python -m bench.sweep`` (``bench.sweep.__main__``) imports the
run's modules (``bench.sweep.cli``: the trials, the tables, the report) only for a command that runs trials.
"""
from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import Any

from bench.sweep import estimate, lock, spec
from bench.sweep.cluster import ResourceError
from bench.sweep.runner import ORDERS, SCHEDULERS
from bench.sweep.spec import SweepError
from moe.config import ConfigError
from moe.data.base import default_data_root
from moe.training import stacked

# each problem is one line: a line break inside one (a key or value echoed from the input) is shown escaped
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep",
                                 description="Run a sweep of sweeps/NAME.yaml with Ray Tune and write its trade-off tables.")
    ap.add_argument("name", nargs="?", default=None, help="sweep name (see --list) or a .yaml file (default: quick)")
    ap.add_argument("--list", action="store_true", help="list the sweeps: per budget the trial count, an estimate of the CPU time, the data needed and whether it is under the data root; then exit")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field (config field, budget.X, settings.X, grid.X, grid: a whole grid, resources.cpu|gpu|max_concurrent); "
                         "value read as YAML, e.g. --set epochs=2 --set experts=[2,4]")
    ap.add_argument("--budget", default=None, metavar="NAME",
                    help="apply a named budget of the sweep file (its budgets: section), before any --set")
    ap.add_argument("--data-root", default=None, metavar="DIR",
                    help="where the MNIST-family files are (same as --set data_root=DIR; default: $MOE_DATA, "
                         "else ~/.cache/moe-interp-bench)")
    ap.add_argument("--dry-run", action="store_true", help="print the trial configs and exit")
    ap.add_argument("--out", default=None, help="results directory (default: results/<sweep>-<timestamp>)")
    ap.add_argument("--resume", default=None, metavar="DIR",
                    help="continue an interrupted sweep in DIR: trials without a record run again, each from its "
                         "latest checkpoint (its last finished epoch) when DIR holds one")
    ap.add_argument("--allow-changes", action="store_true",
                    help="with --resume: continue although the sweep file, the data or the code changed since the sweep "
                         "started (refused otherwise; the report marks the mixture)")
    ap.add_argument("--add-seeds", default=None, metavar="S,S,...",
                    help="with --resume: grow the sweep by these seeds of every configuration (e.g. 2,3): its finished "
                         "trials keep their records, the new seeds' trials run (sweep.json notes the growth)")
    ap.add_argument("--add", dest="adds", action="append", default=[], metavar="AXIS=VALUES",
                    help="with --resume: grow the sweep by more values of a grid axis, in every grid block that has it "
                         "(repeatable; values read as YAML as --set reads them, e.g. --add experts=[5,20] --add "
                         "'router=[\"topk[k=2]\"]'): the trials of the grown grid that the sweep lacks run, its finished "
                         "trials keep their records (sweep.json notes the growth)")
    ap.add_argument("--retry-errors", action="store_true",
                    help="with --resume: run the trials that ended in error again too, each from its latest "
                         "checkpoint (their error records move to DIR/records/errors/)")
    ap.add_argument("--max-failures", type=int, default=None,
                    help="retries of a trial that raises or loses its node, each from its latest checkpoint (default: 1; "
                         "with --resume, the number the sweep ran with, saved in its sweep.json; one given then "
                         "replaces it)")
    ap.add_argument("--scheduler", choices=SCHEDULERS, default=None, help="asha: stop weak trials early")
    ap.add_argument("--stack-seeds", choices=("off", "auto", "on"), default=None,
                    help="train the trials that differ only in their seed together, as one stacked model "
                         f"(moe.training.stacked: routers {', '.join(stacked.ROUTERS)} (topk without noise), gates "
                         f"{', '.join(stacked.GATES)}, soft routing, linear experts, objectives {', '.join(stacked.OBJECTIVES)}, "
                         "no regulariser, the joint regime): auto groups "
                         "the configurations it supports, on refuses the others, off never groups (default: auto, or off "
                         "with --scheduler asha, which needs per-epoch reports)")
    ap.add_argument("--order", choices=ORDERS, default=None,
                    help="which trials start first: longest (default: the shortest tail on the last slots) or cheapest "
                         "(the widest part of the grid soonest, for a sweep that may be stopped and resumed); no result "
                         "depends on it (with --resume: the order the sweep ran with, saved in its sweep.json; one given "
                         "then replaces it)")
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: $RAY_ADDRESS, else a local instance)")
    ap.add_argument("-v", "--verbose", action="store_true", help="Ray's own output and worker logs")
    ap.add_argument("--wide", action="store_true", help="print every column of the final table and full configuration "
                    "names (default: what fits 120 columns; table.md always has them all)")
    return ap


def list_sweeps(data_root: str | None = None) -> int:
    """Each sweep, then per budget (the file's own, then its named budgets): trials, the data it needs and whether
    it is under the data root, and the estimated CPU time (``bench.sweep.estimate``'s per-trial model)."""
    root = Path(data_root).expanduser() if data_root else default_data_root()
    n = estimate.cores()
    print(f"data root: {root}   CPU time: the sum of the trials' estimated times (bench/sweep/estimate.py, "
          f"rough); wall: on {n} cores, with Ray's start and the report")
    print(f"  {'budget':<8} {'trials':>6}  {'CPU time':>8}  {'wall':>7}  data")
    for name in spec.available():
        try:
            sweep = spec.load(name)
        except SweepError as err:
            print(f"{name}: cannot be read: {err}")
            continue
        print(f"{name} (v{sweep.version}, {sweep.dataset}): {sweep.description}")
        for budget in (None, *sweep.budgets):
            label = budget or "(file)"
            try:
                c = estimate.cost(spec.load(name, sweep.budget_overrides(budget) if budget else None))
            except (SweepError, ConfigError) as err:
                print(f"  {label:<8} not runnable here yet: {err.problems[0].split(': ', 1)[-1]}")
                continue
            print(f"  {label:<8} {c.trials:>6}  {estimate.duration(c.cpu_s):>8}  "
                  f"{estimate.duration(c.wall_s(n)):>7}  {estimate.data_status(c.datasets, root)}")
    return 0


def dry_run(name: str, overrides: dict[str, Any]) -> int:
    sweep = spec.load(name, overrides)
    trials = spec.validate(sweep)  # before printing anything: a bad sweep is one error line per problem
    print(f"{sweep.name} v{sweep.version}: {len(trials)} trials on {sweep.dataset}; resources per trial {sweep.resources}")
    print("(fields not shown take the defaults of moe.config.Config)")
    width = max(len(t.name) for t in trials) if trials else 0
    for t in trials:
        print(f"{t.index:>4}  {t.name:<{width}}  {json.dumps(t.config, default=str)}")
    return 0


def runs_trials(args: argparse.Namespace) -> bool:
    """Whether parsed arguments ask for trials to run (neither ``--list`` nor ``--dry-run``)."""
    return not (args.list or args.dry_run)


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    """The fields a command line overrides: ``--budget`` (its sweep file's named budget), then ``--set``, then
    ``--data-root``; a SweepError for a bad one."""
    overrides = spec.parse_set(args.sets)
    if args.budget is not None:
        if args.resume:
            raise SweepError("--resume continues a sweep as it was defined: no --budget with it")
        overrides = {**spec.load(args.name or "quick").budget_overrides(args.budget), **overrides}
    if args.data_root is not None:
        overrides.setdefault("data_root", str(Path(args.data_root).expanduser().resolve()))
    return overrides


def problems(err: SweepError | ResourceError) -> int:
    """Bad input: one ``error:`` line per problem; returns the exit status, 2."""
    for line in getattr(err, "problems", None) or str(err).splitlines():
        print(f"error: {line.translate(LINE_BREAKS)}", file=sys.stderr)
    return 2


def without_trials(args: argparse.Namespace) -> int:
    """``--list`` or ``--dry-run`` of parsed arguments (for which :func:`runs_trials` is False)."""
    try:
        if args.list:
            return list_sweeps(args.data_root)
        return dry_run(args.name or "quick", overrides_of(args))
    except SweepError as err:
        return problems(err)
    except KeyboardInterrupt:
        return stopped("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader of the output went away (| head): bench.command_exit ends quietly with 0
        raise
    except Exception as err:  # noqa: BLE001 -- a damaged sweep file system, ...: one message, as for a run
        return stopped(f"stopped: {type(err).__name__}: {first_line(err)}", EXIT_STOPPED)


EXIT_INTERRUPTED, EXIT_STOPPED = 130, 3  # exit codes: 0 done, 2 bad input (nothing run), 3 stopped by the disk or the cluster


# a failed write: no space, no quota, a file too large, a read-only or refused folder, a folder removed, the device
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.EIO}


def write_error(err: BaseException) -> OSError | None:
    """The OSError of a failed write that ``err`` is, or that caused it (Ray Tune wraps an error of the driver's
    callbacks, such as writing a record to a full disk, in a TuneError); None for anything else."""
    if isinstance(err, OSError) and not isinstance(err, ConnectionError):
        return err
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def first_line(err: BaseException) -> str:
    """What an error says, in one line of at most 200 characters (the last line of a traceback it carries as text)."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    return (lines[-1] if lines[0].startswith("Traceback") else lines[0])[:200]


def stopped(what: str, code: int, fix: str = "", resume: str | None = None) -> int:
    """One message for a sweep that stopped before its end: what is safe, and how to continue."""
    folder = lock.last_locked()
    if folder is None and resume is not None and Path(resume, "sweep.json").is_file():
        folder = Path(resume).resolve()  # stopped before its lock was taken (a read-only directory)
    if folder is not None:
        print(f"{what}. Every finished trial's record in {folder} is safe (unfinished trials restart from their "
              f"last checkpoint); {fix}continue with: python -m bench.sweep --resume {folder}", file=sys.stderr)
    else:
        print(f"{what}, before the sweep directory was made: nothing was written; {fix}run the same command again",
              file=sys.stderr)
    return code
