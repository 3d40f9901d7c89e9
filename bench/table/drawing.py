"""The figures of a build (the tables' plots, report.html's drill-down): each drawn once, kept by content, the missing
ones drawn in parallel while the build goes on.

A figure is a job: the name of a drawing function (``bench.table.pictures.draw``: the heat-map, per-epoch curves and
the pictures of a record's views of ``moe.pictures``, the trade-off and saturation plots) and its arguments, plain
data read from the records. Its PNG is kept in the sweep directory's figure cache (``SweepDir.figure_cache_dir``)
under the SHA-256 of the function's name, its arguments, the source of the drawing modules and matplotlib's
version: a rebuild whose records did not change draws nothing; a changed record, or changed drawing code, draws
its figures anew.

A job missing from the cache is drawn as soon as a process is free for it, by worker processes (``spawn``: nothing
of the caller, Ray's threads included, is inherited; each imports only ``bench.table.pictures``: matplotlib, no
pandas, no torch), one per available core besides this one (at most ``$MOE_FIGURE_WORKERS``: :func:`figure_workers`)
and at most one per ``PER_WORKER`` missing figures; the build goes on meanwhile, and at its end
(``FigurePool.finish``) this process draws too, until every job is drawn.
The costliest waiting job goes first (``COST``: the tables' plots, added last, are drawn next, not at the end of the
build on one core). Each PNG goes back to its own job, so what is built is the same whichever process drew it, in
whichever order.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import multiprocessing
import os
import queue
import sys
import threading
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
POLL_S = 0.5  # how often a wait for a worker's figure looks whether the workers are still alive
AHEAD = 2  # figures handed to each worker at a time: the one it draws and the next, so that it never waits for one
# the relative drawing time of a figure of each kind (about 0.15 s for 1): the costliest waiting figure is drawn first
COST = {"heatmap": 1, "gate_regions": 1, "curves": 2, "expert_weights": 2, "prototypes": 2,
        "saturation": 8, "tradeoff": 8, "vs_experts": 8}


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


WORKERS_VAR = "MOE_FIGURE_WORKERS"  # at most this many figure worker processes; 0: no worker, drawn where built
_warned: set[str] = set()


def figure_workers() -> int | None:
    """The figure worker processes a build may start, at most (``$MOE_FIGURE_WORKERS``, an integer >= 0; never more
    than one per available core besides the building process: on a machine whose cores are busy with other work, 0
    draws every figure in the process that builds, without the ~0.5-1 s of CPU each worker spends importing
    matplotlib, and draws nothing ahead of a running sweep, ``bench.report.predraw``); None when unset. A value that
    is not such an integer is left unused, with a warning line once."""
    raw = os.environ.get(WORKERS_VAR, "").strip()
    if not raw:
        return None
    if raw.isdecimal():
        return int(raw)
    if raw not in _warned:
        _warned.add(raw)
        print(f"warning: {WORKERS_VAR}={raw!r} is not an integer >= 0 (the figure worker processes, at most); "
              f"left unused: one per available core", file=sys.stderr, flush=True)
    return None


class FigurePool:
    """The figures of one build: ``add`` a job (looked up in the cache at once; when missing, handed to the workers
    once enough are missing; ``add_job`` is the same), ``write_to`` a file as well, ``finish`` for every job's PNG in the order added.
    ``jobs``: (kind, args, alt, key) of each; ``drawn``: how many were drawn (not found in the cache).

    The missing figures wait here, the costliest first (:data:`COST` by kind, then in the order added), and go to the
    workers a few at a time (``AHEAD`` each: one drawing, the next queued), so that a costly figure added late (the
    tables' plots, known only once the tables are computed) is the next one drawn, not the last; a thread of this
    process takes each PNG as it comes back and hands out the next job. ``finish`` draws here the costliest that no
    worker has taken yet, until none is left."""

    def __init__(self, cache_dir: str | os.PathLike | None, workers: int | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if workers is None:  # (workers: all the processes that draw, this one included)
            limit = figure_workers()
            workers = available_cores() if limit is None else min(available_cores(), limit + 1)
        self.workers = workers
        self.jobs: list[tuple[str, tuple, str, str]] = []
        self.drawn = 0
        self._stamp = _code_stamp()
        self._png: dict[str, bytes] = {}  # key -> PNG: found in the cache or drawn
        self._todo: dict[str, tuple[str, tuple]] = {}  # key -> (kind, args): missing, not drawn yet
        self._waiting: list[tuple[int, int, str]] = []  # heap of (-cost, order, key): missing, no process has it
        self._handed: dict[int, str] = {}  # job number on the queue -> key: with a worker, its PNG not back yet
        self._numbers = itertools.count()
        self._lock = threading.Condition()  # guards the above; notified when a PNG comes back
        self._order = itertools.count()  # the order of the waiting figures of one cost
        self._failure: BaseException | None = None  # a worker's exception: raised by ``finish``
        self._lost = False  # a worker died: what is not back is drawn here
        self._files: list[tuple[str, Path]] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._receiver: threading.Thread | None = None
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
        with self._lock:
            if key not in self._png and key not in self._todo:
                png = self._cached(key)
                if png is None:
                    self._todo[key] = (kind, args)
                    heapq.heappush(self._waiting, (-COST.get(kind, 1), next(self._order), key))
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
        to one per other core; give the workers the costliest waiting figures, up to ``AHEAD`` each (lock held)."""
        while len(self._procs) + 1 < self.workers and len(self._todo) > PER_WORKER * (len(self._procs) + 1):
            self._start_worker()
        while self._procs and self._waiting and len(self._handed) < AHEAD * len(self._procs):
            key = heapq.heappop(self._waiting)[2]
            number = next(self._numbers)
            self._handed[number] = key
            self._jobs_q.put((number, *self._todo[key]))

    def warm_up(self) -> None:
        """Start one worker now (where there is a core for it), ahead of the jobs: a build that will draw many figures
        lets it import matplotlib while this process reads the records."""
        with self._lock:
            if not self._procs and self.workers > 1:
                self._start_worker()

    def _start_worker(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        if self._jobs_q is None:
            self._jobs_q, self._results_q = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=pictures.serve, args=(self._jobs_q, self._results_q, os.getpid()), name="figures", daemon=True)
        proc.start()
        self._procs.append(proc)
        if self._receiver is None:
            self._receiver = threading.Thread(target=self._receive, name="figure results", daemon=True)
            self._receiver.start()

    def _receive(self) -> None:
        """The thread taking the workers' PNGs as they come back (each into the cache, the next job handed out), until
        a None (``close``), a worker's exception (or one here: a cache that cannot be written) or a worker's death."""
        try:
            while (item := self._result()) is not None:
                number, png = item
                if isinstance(png, BaseException):
                    raise png
                with self._lock:
                    self._done(self._handed.pop(number), png)
                    self._hand_out()
                    self._lock.notify_all()
        except BaseException as err:  # noqa: BLE001 -- raised by finish, in the build's own thread
            with self._lock:
                self._failure = err
                self._lock.notify_all()

    def _result(self) -> tuple[int, Any] | None:
        """The next (job number, PNG or exception) from the workers; None after ``close``, or when a worker died."""
        while True:
            try:
                return self._results_q.get(timeout=POLL_S)
            except queue.Empty:
                if not all(p.is_alive() for p in list(self._procs)):
                    with self._lock:
                        self._lost = True
                        self._lock.notify_all()
                    return None

    def _done(self, key: str, png: bytes) -> None:
        if key in self._png:
            return
        self._png[key] = png
        self._todo.pop(key, None)
        self.drawn += 1
        if self.cache_dir is not None:
            atomic_write_bytes(self.cache_dir / f"{key}.png", png)

    def _collect(self) -> None:
        """Every missing figure: the costliest that no worker has taken drawn here, one at a time, then the workers'
        last ones waited for. A worker's exception is raised; a worker's death ends the wait (the rest drawn here)."""
        while True:
            with self._lock:
                if self._failure is not None:
                    raise self._failure
                if self._lost or not self._todo:
                    return
                if not (DRAW_HERE and self._waiting):
                    self._lock.wait(POLL_S)
                    continue
                key = heapq.heappop(self._waiting)[2]
                kind, args = self._todo[key]
            png = draw(kind, args)
            with self._lock:
                self._done(key, png)

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
        if self._receiver is not None:
            self._results_q.put(None)
            self._receiver.join(timeout=1.0 if kill else None)  # after a kill: a PNG cut short may never end
            self._receiver = None
        self._procs = []

    def finish(self) -> list[bytes]:
        """Every job's PNG, in the order added (drawing what is missing), and the files of ``write_to`` written."""
        if self._procs:
            try:
                self._collect()
            except BaseException:
                self.close(kill=True)
                raise
            self.close(kill=bool(self._todo))  # a worker died
        for key, (kind, args) in list(self._todo.items()):
            self._done(key, draw(kind, args))
        for key, path in self._files:
            atomic_write_bytes(path, self._png[key])
        return [self._png[key] for *_, key in self.jobs]
