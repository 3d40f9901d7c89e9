"""The figures of report.html's drill-down: each drawn once, kept by content, the missing ones drawn in parallel.

A figure is a job: the name of a drawing function (``DRAWERS``: the heat-map, per-epoch curves and the pictures of
a record's views, all of ``moe.pictures``) and its arguments, plain data read from the records. Its PNG is kept in
the sweep directory's figure cache (``SweepDir.figure_cache_dir``) under the SHA-256 of the function's name, its
arguments, the source of the drawing modules and matplotlib's version: a rebuild whose records did not change
draws nothing; a changed record, or changed drawing code, draws its figures anew. Entries a build no longer uses
are removed at its end, so the cache holds one build's figures.

The figures missing from the cache are drawn in parallel: by this process and worker processes (``spawn``: nothing
of the caller, Ray's threads included, is inherited; each imports only ``moe.pictures.drawers``, no torch), one
process per available core and at most one per ``PER_WORKER`` figures; each PNG goes back to its own place in the
page, so the page is the same whichever process drew it.
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench.report import page_parts
from moe.pictures import drawers
from moe.pictures.drawers import DRAWERS
from moe.records.files import atomic_write_bytes

# the modules whose source decides what a figure looks like: part of every cache key
DRAWING_MODULES = ("moe.pictures.drawers", "moe.pictures.plots", "moe.pictures.view_plots", "moe.records.view_codes",
                   "moe.records.model_views", "moe.records.naming")
PER_WORKER = 6  # figures per worker process at least: a worker's start costs about as much as a few figures
DRAW_HERE = True  # this process draws a share too (tests turn it off to see every figure drawn by a worker)
PLACEHOLDER = "\x00figure:{}\x00"


def _code_stamp() -> bytes:
    """The drawing code's identity: the source of ``DRAWING_MODULES`` and matplotlib's version."""
    digest = hashlib.sha256(version("matplotlib").encode())
    for name in DRAWING_MODULES:
        spec = find_spec(name)
        digest.update(Path(spec.origin).read_bytes() if spec and spec.origin else name.encode())
    return digest.digest()


def figure_key(kind: str, args: tuple, stamp: bytes) -> str:
    """The cache key of a figure: SHA-256 of its drawer, its arguments (as JSON) and the drawing code's stamp."""
    text = json.dumps([kind, args], sort_keys=True, default=repr, allow_nan=True)
    return hashlib.sha256(stamp + text.encode()).hexdigest()


def draw(kind: str, args: tuple) -> bytes:
    """The PNG of one job drawn in this process (``moe.pictures.drawers.draw``)."""
    return drawers.draw(kind, args)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Figures:
    """The figures of one page: ``add`` returns a placeholder for the page's HTML, ``fill`` draws what the cache
    lacks and puts every image in its place. ``drawn``: how many were drawn (not found in the cache)."""

    def __init__(self, cache_dir: str | os.PathLike | None, workers: int | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = available_cores() if workers is None else workers
        self.jobs: list[tuple[str, tuple, str, str]] = []  # kind, args, alt, key
        self._stamp = _code_stamp()
        self.drawn = 0

    def key(self, kind: str, args: tuple) -> str:
        """The cache key of a figure of this page's drawing code (:func:`figure_key`)."""
        return figure_key(kind, args, self._stamp)

    def add(self, kind: str, args: tuple, alt: str) -> str:
        if kind not in DRAWERS:
            raise ValueError(f"figure kind {kind!r}: not one of {', '.join(DRAWERS)}")
        self.jobs.append((kind, args, alt, figure_key(kind, args, self._stamp)))
        return PLACEHOLDER.format(len(self.jobs) - 1)

    def _cached(self, key: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        try:
            return (self.cache_dir / f"{key}.png").read_bytes()
        except OSError:
            return None

    def pngs(self) -> list[bytes]:
        """Every job's PNG, in the order they were added: from the cache, else drawn (in parallel when many)."""
        found = {key: self._cached(key) for *_, key in self.jobs}
        missing = list(dict.fromkeys(key for key, png in found.items() if png is None))
        todo = {key: next((k, a) for k, a, _, kk in self.jobs if kk == key) for key in missing}
        n_workers = min(self.workers, math.ceil(len(todo) / PER_WORKER)) if todo else 0
        drawn = self._draw_shared(list(todo.values()), n_workers) if n_workers > 1 else [draw(*job) for job in todo.values()]
        self.drawn = len(drawn)
        for key, png in zip(todo, drawn):
            found[key] = png
            if self.cache_dir is not None:
                atomic_write_bytes(self.cache_dir / f"{key}.png", png)
        self._prune(set(found))
        return [found[key] for *_, key in self.jobs]

    @staticmethod
    def _draw_shared(jobs: list[tuple[str, tuple]], n_workers: int) -> list[bytes]:
        """Every job's PNG, drawn by ``n_workers - 1`` spawned workers taking jobs from the front and this process
        taking them from the back (each job it takes back from the queue before a worker starts it): no worker
        is started for the share this process, already running, can draw while the workers import."""
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers - 1, mp_context=ctx) as pool:
            futures = [pool.submit(drawers.draw_job, job) for job in jobs]
            here: dict[int, bytes] = {}
            for i in range(len(jobs) - 1, -1, -1):
                if not DRAW_HERE or not futures[i].cancel():  # a worker has it already: so it has every job before it
                    break
                here[i] = draw(*jobs[i])
            return [here[i] if i in here else f.result() for i, f in enumerate(futures)]

    def _prune(self, keep: set[str]) -> None:
        """Remove the cache's PNGs this page does not use (figures of records that changed or went), and the
        temporary files of writes cut short (a worker drawing ahead stopped mid-write: ``bench.report.predraw``)."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return
        for p in self.cache_dir.glob("*.png"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)
        for p in self.cache_dir.glob(".*.png.*.tmp"):
            p.unlink(missing_ok=True)

    def fill(self, page: str) -> str:
        """``page`` with every placeholder replaced by its image (inline PNG)."""
        if not self.jobs:
            return page
        pngs = self.pngs()
        parts = page.split("\x00")
        for i, part in enumerate(parts):
            if part.startswith("figure:"):
                j = int(part[len("figure:"):])
                parts[i] = page_parts.img(pngs[j], self.jobs[j][2])
        return "".join(parts)
