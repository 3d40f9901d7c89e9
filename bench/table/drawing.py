"""The figures of a build (the tables' plots, report.html's drill-down): each drawn once, kept by content, the missing
ones drawn in parallel while the build goes on.

A figure is a job: the name of a drawing function (``bench.table.pictures.draw``: the heat-map, per-epoch curves and
the pictures of a record's views of ``moe.pictures``, the trade-off and saturation plots) and its arguments, plain
data read from the records. Its PNG is kept in the sweep directory's figure cache (``SweepDir.figure_cache_dir``)
under the SHA-256 of the function's name, its arguments, the source of the drawing modules and matplotlib's
version: a rebuild whose records did not change draws nothing; a changed record, or changed drawing code, draws
its figures anew.

A job missing from the cache is drawn as soon as it is added, by worker processes (``spawn``: nothing of the
caller, Ray's threads included, is inherited; each imports only ``bench.table.pictures``: matplotlib, no pandas, no
torch), one per available core besides this one and at most one per ``PER_WORKER`` missing figures; the build
goes on meanwhile, and at its end (``FigurePool.finish``) this process draws the jobs no worker has taken yet.
Each PNG goes back to its own job, so what is built is the same whichever process drew it.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench.table import pictures
from moe.pictures.drawers import DRAWERS
from moe.records.files import atomic_write_bytes

# the modules whose source decides what a figure looks like: part of every cache key
DRAWING_MODULES = ("moe.pictures.drawers", "moe.pictures.plots", "moe.pictures.view_plots", "moe.records.view_codes",
                   "moe.records.model_views", "moe.records.naming", "bench.table.pictures")
KINDS = tuple(DRAWERS) + tuple(pictures.DRAWERS)
PER_WORKER = 6  # missing figures per worker process at least: a worker's start costs about as much as a few figures
DRAW_HERE = True  # this process draws a share too (tests turn it off to see every figure drawn by a worker)
POLL_S = 0.05  # how long this process waits for a worker's figure before it looks for a job to draw itself


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
    """The PNG of one job drawn in this process (``bench.table.pictures.draw``)."""
    return pictures.draw(kind, args)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class FigurePool:
    """The figures of one build: ``add`` a job (looked up in the cache at once; when missing, handed to the workers
    once enough are missing; ``add_job`` is the same), ``write_to`` a file as well, ``finish`` for every job's PNG in the order added.
    ``jobs``: (kind, args, alt, key) of each; ``drawn``: how many were drawn (not found in the cache)."""

    def __init__(self, cache_dir: str | os.PathLike | None, workers: int | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = available_cores() if workers is None else workers
        self.jobs: list[tuple[str, tuple, str, str]] = []
        self.drawn = 0
        self._stamp = _code_stamp()
        self._png: dict[str, bytes] = {}  # key -> PNG: found in the cache or drawn
        self._todo: dict[str, tuple[str, tuple]] = {}  # key -> (kind, args): missing, not drawn yet
        self._handed: dict[int, str] = {}  # job number on the queue -> key
        self._files: list[tuple[str, Path]] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._jobs_q: Any = None
        self._results_q: Any = None

    def key(self, kind: str, args: tuple) -> str:
        """The cache key of a figure of this build's drawing code (:func:`figure_key`)."""
        return figure_key(kind, args, self._stamp)

    def add_job(self, kind: str, args: tuple, alt: str = "") -> int:
        """Add a job; returns its number (its place in ``jobs``)."""
        if kind not in KINDS:
            raise ValueError(f"figure kind {kind!r}: not one of {', '.join(KINDS)}")
        key = self.key(kind, args)
        self.jobs.append((kind, args, alt, key))
        if key not in self._png and key not in self._todo:
            png = self._cached(key)
            if png is None:
                self._todo[key] = (kind, args)
                self._hand_out()
            else:
                self._png[key] = png
        return len(self.jobs) - 1

    add = add_job

    def write_to(self, number: int, path: str | os.PathLike) -> Path:
        """Write job ``number``'s PNG to ``path`` (atomically) when the build finishes; returns the path."""
        self._files.append((self.jobs[number][3], Path(path)))
        return Path(path)

    def _cached(self, key: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        try:
            return (self.cache_dir / f"{key}.png").read_bytes()
        except OSError:
            return None

    def _hand_out(self) -> None:
        """Start another worker while the missing figures exceed ``PER_WORKER`` per process (this one counted), up
        to one per other core; put every missing figure not handed out yet on the workers' queue."""
        while len(self._procs) + 1 < self.workers and len(self._todo) > PER_WORKER * (len(self._procs) + 1):
            self._start_worker()
        if self._procs:
            handed = set(self._handed.values())
            for key, (kind, args) in self._todo.items():
                if key not in handed:
                    number = len(self._handed)
                    self._handed[number] = key
                    self._jobs_q.put((number, kind, args))

    def warm_up(self) -> None:
        """Start one worker now (where there is a core for it), ahead of the jobs: a build that will draw many figures
        lets it import matplotlib while this process reads the records."""
        if not self._procs and self.workers > 1:
            self._start_worker()

    def _start_worker(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        if self._jobs_q is None:
            self._jobs_q, self._results_q = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=pictures.serve, args=(self._jobs_q, self._results_q, os.getpid()), name="figures", daemon=True)
        proc.start()
        self._procs.append(proc)

    def _done(self, key: str, png: bytes) -> None:
        if key in self._png:
            return
        self._png[key] = png
        self._todo.pop(key, None)
        self.drawn += 1
        if self.cache_dir is not None:
            atomic_write_bytes(self.cache_dir / f"{key}.png", png)

    def _collect(self) -> None:
        """Every handed-out job's PNG: from the workers, or drawn here, taken from the queue before a worker took it."""
        waiting = {n for n, key in self._handed.items() if key not in self._png}
        while waiting:
            if DRAW_HERE:
                try:
                    number, kind, args = self._jobs_q.get(timeout=POLL_S)
                except queue.Empty:
                    pass
                else:
                    self._done(self._handed[number], draw(kind, args))
                    waiting.discard(number)
                    continue
            try:
                number, png = self._results_q.get(timeout=POLL_S)
            except queue.Empty:
                if not all(p.is_alive() for p in self._procs):  # a worker died: what is not back, drawn here
                    break
                continue
            if isinstance(png, BaseException):
                raise png
            self._done(self._handed[number], png)
            waiting.discard(number)

    def close(self, kill: bool = False) -> None:
        """Stop the workers: each after the jobs on the queue (all of them taken by then), or at once (``kill``)."""
        for p in self._procs:
            if kill:
                p.kill()
            else:
                self._jobs_q.put(None)
        for p in self._procs:
            p.join()
        if kill and self._jobs_q is not None:
            self._jobs_q.cancel_join_thread()  # jobs no worker took: not waited for
        self._procs = []

    def finish(self) -> list[bytes]:
        """Every job's PNG, in the order added (drawing what is missing), and the files of ``write_to`` written."""
        if self._procs:
            try:
                self._collect()
            except BaseException:
                self.close(kill=True)
                raise
            self.close(kill=any(key not in self._png for key in self._handed.values()))  # a worker died
        for key, (kind, args) in list(self._todo.items()):
            self._done(key, draw(kind, args))
        for key, path in self._files:
            atomic_write_bytes(path, self._png[key])
        return [self._png[key] for *_, key in self.jobs]
