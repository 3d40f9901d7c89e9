"""Ray started first: ``python -m bench.sweep`` starts connecting to Ray (``bench.sweep.cluster.Starting``, in the
background) before it imports the modules of its run, so that Ray's processes start while torch, pandas, matplotlib,
the tables and the report import and the sweep is prepared; the runner then takes that instance (:func:`starting`).

Imports nothing heavy (no torch, no Ray until Ray starts): the command reads what Ray to start from its command line
(:func:`ray_request`) before anything else.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from bench.sweep import file_shape, lock  # (yaml, the shape rules of a sweep file, fcntl: no torch)
from bench.sweep.cluster import QUIET_ENV, TUNE_ENV, Starting, wait_shut_down

_EARLY: list[Starting] = []  # an instance started by start_early, until starting() takes it


def ray_environment(verbose: bool) -> None:
    """The environment Ray's processes and Tune start with (set before Ray starts; what is set already stays): quiet
    unless ``verbose``, and without Tune's own logger files."""
    for k, v in QUIET_ENV.items():
        if not verbose or k != "RAY_AIR_NEW_OUTPUT":
            os.environ.setdefault(k, v)
    for k, v in TUNE_ENV.items():
        os.environ.setdefault(k, v)


class _HintParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ValueError(message)  # (not argparse's usage message and exit)


def ray_request(argv: list[str]) -> tuple[str | None, bool] | None:
    """(``--address``, ``--verbose``) of a ``python -m bench.sweep`` command line that runs trials, read before the
    command imports its modules (its parser needs torch); None for ``--list``, ``--dry-run`` and ``--help``. Only a
    hint, read as argparse reads it (abbreviations too): the command's own parser decides, and ``starting`` ends an
    early instance started for another request."""
    ap = _HintParser(add_help=False)
    ap.add_argument("--address", default=None)
    for flag in ("--list", "--dry-run", "--help", "-h", "--verbose", "-v"):
        ap.add_argument(flag, action="store_true")
    try:
        args, _ = ap.parse_known_args(argv)
    except ValueError:  # a bad command line: its own parser says what is wrong
        return None
    if args.list or args.dry_run or args.help or args.h:
        return None
    return args.address, args.verbose or args.v


def passes_light_checks(argv: list[str]) -> bool:
    """Whether a command line that runs trials passes the checks that need no heavy import: the sweep file is there
    and has the shape of one (``bench.sweep.file_shape``), each ``--set`` is KEY=VALUE, ``--add-seeds`` lists
    non-negative integers, ``--out`` is a new or empty directory that can be made, and ``--resume`` names a sweep
    directory this process may write and no other process writes now (``bench.sweep.lock``), without ``--set``,
    ``--out`` or ``--data-root``. Only a hint for :func:`start_early`: a command line that fails it starts no Ray
    early, so its own checks (``bench.sweep.cli``) say what is wrong at once instead of after an instance started and
    ended; one it misjudges as bad only loses the head start."""
    ap = _HintParser(add_help=False)
    ap.add_argument("name", nargs="?", default=None)
    for flag in ("--out", "--resume", "--data-root", "--add-seeds"):
        ap.add_argument(flag, default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    try:
        args, _ = ap.parse_known_args(argv)
    except ValueError:
        return False
    if any("=" not in pair for pair in args.sets):
        return False
    if args.add_seeds is not None and not all(s.strip().isdigit() for s in args.add_seeds.split(",") if s.strip()):
        return False
    if args.resume is not None:
        folder = Path(args.resume)
        return (not (args.sets or args.out or args.data_root) and (folder / "sweep.json").is_file()
                and os.access(folder, os.W_OK | os.X_OK) and lock.locked_by_other(folder) is None)
    try:
        path = file_shape.sweep_path(args.name or "quick")  # (as bench.sweep.spec.resolve finds it)
        data = file_shape.read_file(path) if path is not None else None
    except file_shape.ShapeError:
        return False
    if not isinstance(data, dict) or file_shape.section_problems(data):
        return False
    return args.out is None or _new_directory(Path(args.out))


def _new_directory(out: Path) -> bool:
    """``--out``: an empty directory, or none yet under a directory this process may write."""
    if out.exists():
        return out.is_dir() and not any(out.iterdir()) and os.access(out, os.W_OK | os.X_OK)
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def start_early(address: str | None, verbose: bool) -> None:
    """Start connecting to Ray now, in the background (``Starting``), for trials a command will run later: Ray's
    processes start while the command imports its modules and prepares the sweep. ``starting`` takes it; one
    nothing took (bad input, nothing left to run) ends with :func:`end_unused`."""
    ray_environment(verbose)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_interrupt)  # until the command sets its own: the instance ends with it
    _EARLY.append(Starting(address, verbose))


def _as_interrupt(signum, frame) -> None:
    """A SIGTERM while Ray starts and the command imports: a KeyboardInterrupt, so that the command ends the instance
    it started (:func:`end_unused`) instead of dying at once with Ray half started (an agent that Ray started and
    not yet named to the reaper would outlive it)."""
    raise KeyboardInterrupt


def starting(address: str | None, verbose: bool) -> Starting:
    """The instance :func:`start_early` started for this ``address`` and ``verbose``, else a new ``Starting``; an
    early one started for another request is ended first (a process holds one Ray connection)."""
    while _EARLY:
        early = _EARLY.pop()
        if early.request == (address, verbose):
            return early
        early.shut_down_later()
    return Starting(address, verbose)  # (waits until an instance ended just now is gone)


def starts_locally(address: str | None) -> bool:
    """Whether trials asked to run at ``address`` run on a local instance this process starts (or started early,
    :func:`start_early`), rather than on a cluster or on a Ray this process was already connected to."""
    import ray  # (only to ask whether this process already runs one: importing ray starts nothing)

    if address or os.environ.get("RAY_ADDRESS"):
        return False
    return not ray.is_initialized() or any(early.request[0] is None for early in _EARLY)


def end_unused() -> None:
    """End an instance :func:`start_early` started that no ``starting`` took, and wait until it is gone."""
    while _EARLY:
        _EARLY.pop().shut_down_later()
    wait_shut_down()
