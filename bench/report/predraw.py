"""Drawing a running sweep's drill-down figures ahead of its report.

``Predraw`` is called with each record the sweep writes (``bench.sweep.runner.run_trials``'s ``on_record``); when
the last record of a configuration arrives, it reads that configuration's records back from the directory and
hands the configuration's drill-down figures (``bench.report.sweep.figure_jobs``, the page's own) that the
figure cache lacks to one background worker process at the lowest CPU priority: it draws on what the trials
leave idle (Ray's start, the gaps between trials, the last trials' tail) and writes each PNG into the cache
(``SweepDir.figure_cache_dir``) under the key the report looks up (``bench.report.figures.figure_key``). The
report built after the trials is the report of a build from scratch: a figure is taken from the cache only
under the key of what it shows; anything not drawn yet (or drawn from other data) is drawn then.

Only where the page draws every configuration's figures (at most ``DRILL_FIGURES`` configurations): beyond, which
ones are drawn depends on every run's validation score; and not when ``$MOE_FIGURE_WORKERS`` is 0 (no worker process
wanted: ``bench.table.drawing.figure_workers``). Nothing here stops or slows the sweep: a failure drops the drawing
ahead, and ``close`` leaves what is not drawn to the report.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

from bench.report.figures import Figures
from bench.report.sweep import DRILL_FIGURES, figure_jobs
from bench.sweep.layout import DamagedFile, SweepDir
from bench.table.drawing import figure_workers
from bench.table.runs import runs_frame
from moe.pictures.drawers import draw_queued


class Predraw:
    """``predraw(folder, trials, record)`` after each record written; ``close()`` when the trials end.
    ``submitted``: the figures handed to the worker (their cache keys)."""

    def __init__(self):
        self.submitted: set[str] = set()
        self.configurations: dict[str, list[int]] | None = None  # name -> its trials' indices
        self.finished: set[int] = set()
        self.figures: Figures | None = None
        self.worker: multiprocessing.process.BaseProcess | None = None
        self.jobs: Any = None
        self.off = figure_workers() == 0  # no worker process wanted (the report draws all); after a failure: nothing more

    def __call__(self, folder: SweepDir, trials: dict[int, Any], record: dict[str, Any]) -> None:
        if self.off:
            return
        try:
            self._record(folder, trials, int(record["bench"]["index"]))
        except Exception as err:  # noqa: BLE001 -- drawing ahead is a saving, never a reason to stop a sweep
            self.off = True
            print(f"warning: report figures not drawn ahead ({type(err).__name__}: {err}); the report draws them",
                  file=sys.stderr, flush=True)

    def _record(self, folder: SweepDir, trials: dict[int, Any], index: int) -> None:
        if self.configurations is None:
            self.configurations = {}
            for t in sorted(trials.values(), key=lambda t: t.index):
                self.configurations.setdefault(t.name, []).append(t.index)
            if len(self.configurations) > DRILL_FIGURES:  # which configurations get figures: known at the end only
                self.off = True
                return
            self.figures = Figures(folder.figure_cache_dir)
            self.finished = set(folder.finished_indices())  # a resumed sweep's records of before count too
        self.finished.add(index)
        name = trials[index].name
        if all(i in self.finished for i in self.configurations[name]):
            self._draw(folder, name, self.configurations[name])

    def _draw(self, folder: SweepDir, name: str, indices: list[int]) -> None:
        records = {}
        for i in indices:
            try:
                records[i] = folder.read_record(folder.record_path(i))
            except (OSError, DamagedFile):
                return  # the report will say what is wrong with it
        g = runs_frame([records[i] for i in indices], stability=False)  # the figures show none of it
        for kind, args, _ in figure_jobs(name, g, records, folder.class_names()):
            key = self.figures.key(kind, args)
            path = folder.figure_cache_dir / f"{key}.png"
            if key in self.submitted or path.is_file():
                continue
            if self.worker is None:  # spawned: it inherits nothing of this process (Ray's threads included)
                ctx = multiprocessing.get_context("spawn")
                self.jobs = ctx.Queue()
                self.worker = ctx.Process(target=draw_queued, args=(self.jobs, os.getpid()), name="predraw", daemon=True)
                self.worker.start()
            self.jobs.put((kind, args, str(path)))
            self.submitted.add(key)

    def finish(self) -> None:
        """Wait until the worker has drawn every figure handed to it, then stop it."""
        if self.worker is not None:
            self.jobs.put(None)
            self.worker.join()
            self.worker = None

    def close(self) -> None:
        """Stop drawing ahead, at once: what the worker has not drawn is left to the report (which draws it at full
        priority). A figure cut short leaves no PNG (written atomically; at most a temporary file, which the
        report's next build of the cache removes)."""
        if self.worker is not None:
            self.worker.kill()
            self.jobs.cancel_join_thread()  # jobs it never took: not waited for
            self.worker.join()
            self.worker = None
