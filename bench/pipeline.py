"""A sweep from start to finish: its trials (``bench.sweep.runner``), then its tables (``bench.table``), then its
report (``bench.report``). The step above the sweep runner, so that the runner imports neither tables nor report.
While the trials run, each configuration's report figures are drawn as soon as its last record is written, on the
CPU the trials leave idle (``bench.report.predraw``); a local Ray instance ends while the tables are built.

``run_sweep(name, out=None, address=None, **options)`` takes the arguments of ``bench.sweep.runner.run_trials``
and returns the runs table (``runs.csv``) as a DataFrame whose ``attrs`` hold how the run went (``out``,
``interrupted``, ``wall_s``, ``trial_s``, ``slots``, ``overhead``, ``n_run``) and ``total_s`` (this call).
"""
from __future__ import annotations

import sys
import time
from typing import Any

import pandas as pd

from bench.report.predraw import Predraw
from bench.report.sweep import write_sweep_report
from bench.sweep.cluster import wait_shut_down
from bench.sweep.layout import SweepDir
from bench.sweep.lock import released_after
from bench.sweep.runner import run_trials
from bench.table.tables import build as build_tables

__all__ = ["run_sweep", "tables_and_report"]


def tables_and_report(folder: str) -> dict[str, Any]:
    """Build a sweep directory's tables and its report.html, as ``python -m bench.report`` does: one build, whose plots
    are drawn with the page's figures (by the same worker processes, while the rest is written). A report that fails
    costs neither records nor tables: they are built again on their own (an error of the tables themselves is raised
    there, as from ``bench.table``), and a warning says how to rebuild the page. Returns what
    ``bench.table.tables.build`` returns."""
    if not SweepDir(folder).record_files() and not SweepDir(folder).runs_csv.is_file():
        return {"runs": pd.DataFrame(columns=["index", "name", "status"]), "files": []}  # stopped before any record
    built: dict[str, Any] = {}
    try:
        write_sweep_report(folder, on_built=built.update)
        return built
    except Exception as err:  # the page must not cost the finished records and tables
        failure = err
    built = build_tables(folder)  # the tables, their plots included, whatever of them the page had written
    print(f"warning: report.html not written ({type(failure).__name__}: {failure}); rebuild it with "
          f"`python -m bench.report {folder}`", file=sys.stderr, flush=True)
    return built


def run_sweep(name: str | None = None, out: Any = None, address: str | None = None, **options: Any) -> pd.DataFrame:
    """Run (or resume) a sweep's trials, then write its tables and report; returns the runs table."""
    started = time.perf_counter()
    predraw = Predraw()  # each finished configuration's report figures, drawn on the CPU the trials leave idle
    try:
        with released_after():  # the sweep directory stays locked (one writer) until its tables and report are written
            try:
                stats = run_trials(name, out, address, on_record=predraw, **options)
            finally:
                predraw.close()
            runs = tables_and_report(stats["out"])["runs"]  # while a local Ray instance ends (bench.sweep.cluster)
    finally:
        wait_shut_down()
    runs.attrs.update(stats, total_s=time.perf_counter() - started)
    return runs
