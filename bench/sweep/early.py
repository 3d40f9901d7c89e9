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
