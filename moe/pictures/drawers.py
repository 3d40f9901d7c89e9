"""The figures a report draws from plain data, by name (``DRAWERS``), and ``draw``: one PNG from a drawer's name and
its arguments. The report's worker processes import only this module (matplotlib and numpy, no torch), so a
worker starts in about a fifth of the time of one that imports the report. A process draws the figures of the
kinds in ``REUSED`` on one Figure per kind, kept between jobs: the same PNG, in about two thirds of the time.
"""
from __future__ import annotations

import os
import queue

from matplotlib.figure import Figure

from moe.pictures.plots import heatmap_figure, remember_layout
from moe.pictures.view_plots import (curves_figure, expert_weights_figure, gate_regions_figure, png_bytes,
                                     prototypes_figure)
from moe.records.files import atomic_write_bytes

# job kind -> the function drawing its matplotlib Figure from plain data
DRAWERS = {"heatmap": heatmap_figure, "curves": curves_figure, "gate_regions": gate_regions_figure,
           "expert_weights": expert_weights_figure, "prototypes": prototypes_figure}


# kinds drawn on one Figure per process, emptied between jobs (moe.pictures.plots.emptied): the same PNG as on a
# new Figure, without making its Axes, colour bar and ticks again
REUSED = {"curves", "gate_regions", "heatmap"}
_kept: dict[str, Figure] = {}  # kind -> its Figure in this process


def draw(kind: str, args: tuple) -> bytes:
    """The PNG of one job (in whichever process runs it)."""
    if kind not in REUSED:
        return png_bytes(DRAWERS[kind](*args))
    fig = DRAWERS[kind](*args, reuse=_kept.get(kind))
    if kind not in _kept:
        remember_layout(fig)
        _kept[kind] = fig
    return png_bytes(fig)


PARENT_POLL_S = 1.0  # how often a waiting worker looks whether the process that started it is still there


def next_job(jobs, parent: int, poll_s: float = PARENT_POLL_S):
    """The next item of the queue ``jobs``, or None once the process ``parent`` that started this worker is gone.
    A process killed without a word (SIGKILL, out of memory) never sends the None that ends its worker, and a
    spawned worker holds both ends of its queue's pipe, so it would wait for ever: here it ends within ``poll_s``
    of its parent, and never outlives it."""
    while True:
        try:
            return jobs.get(timeout=poll_s)
        except queue.Empty:
            if os.getppid() != parent:
                return None


def draw_job(job: tuple[str, tuple]) -> bytes:
    """``draw`` of a (kind, args) pair: what a worker process runs."""
    return draw(*job)



def draw_queued(jobs, parent: int | None = None) -> None:
    """A background worker: at the lowest CPU priority, draw each (kind, args, path) job taken from the queue
    ``jobs`` and write its PNG to its path atomically (a reader never sees half a file), until a None. Drawing ahead
    only fills a cache: a job that cannot be drawn or written (a full or read-only disk, a bad argument) is skipped
    without a word, and the report that reads the cache later draws it, or says why it cannot. It ends with the
    process ``parent`` (default: the one that started it; ``next_job``)."""
    parent = os.getppid() if parent is None else parent
    try:
        os.nice(19)
    except OSError:  # not allowed here: it draws at its inherited priority
        pass
    while (job := next_job(jobs, parent)) is not None:
        kind, args, path = job
        try:
            atomic_write_bytes(path, draw(kind, args))
        except Exception:  # noqa: BLE001 - a cache left unfilled costs the report a drawing, never the sweep
            continue
