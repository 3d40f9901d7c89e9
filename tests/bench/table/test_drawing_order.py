"""The order in which a build's missing figures are drawn (``bench.table.drawing.FigurePool``): the costliest waiting
figure first, by whichever process is free (a costly plot added after many small figures is the next one drawn, not
the last), and the same PNGs whatever the order."""
from __future__ import annotations

import queue

import pytest

from bench.table import drawing
from bench.table.drawing import COST, FigurePool


def heatmap(title: str) -> tuple[str, tuple]:
    return "heatmap", ([[1, 2], [3, 4]], ["a", "b"], title)


def curves(title: str) -> tuple[str, tuple]:
    history = [{"epoch": e, "train_accuracy": e / 3, "train_loss": 3 / e} for e in (1, 2, 3)]
    return "curves", ([("seed 0", history)], title)


SATURATION = ("saturation", ({"topk[k=2]": ([1, 2], [0.5, 1.0], 2)}, "t", 0.9))


class Alive:
    """A stand-in for a worker process that never ends."""

    def is_alive(self) -> bool:
        return True


@pytest.fixture
def fake_workers(monkeypatch):
    """Pools whose 'worker' is a plain queue: the jobs handed out are read back from ``pool._jobs_q``."""

    def start(self):
        self._procs.append(Alive())
        self._jobs_q, self._results_q = queue.Queue(), queue.Queue()

    monkeypatch.setattr(FigurePool, "_start_worker", start)
    monkeypatch.setattr(drawing, "PER_WORKER", 1)


def handed(pool: FigurePool) -> list[str]:
    out = []
    while not pool._jobs_q.empty():
        number, kind, args = pool._jobs_q.get()
        out.append((number, kind, args[-1] if kind != "saturation" else "saturation"))
    return out


def test_a_costly_figure_added_after_small_ones_is_handed_out_next(fake_workers):
    pool = FigurePool(None, workers=2)
    for i in range(6):
        pool.add_job(*heatmap(f"h{i}"))
    first = handed(pool)
    assert [t for *_, t in first] == ["h0", "h1"]  # AHEAD per worker: the rest wait here
    pool.add_job(*curves("c"))
    pool.add_job(*SATURATION)
    assert handed(pool) == []  # the worker still has its two
    pool._results_q.put((first[0][0], b"png of h0"))  # h0 is back: one more is handed out, the costliest
    pool._results_q.put(None)
    pool._receive()
    assert [t for *_, t in handed(pool)] == ["saturation"]
    assert pool._png[pool.key(*heatmap("h0"))] == b"png of h0" and pool.drawn == 1


def test_this_process_draws_the_costliest_waiting_figure_first(fake_workers, monkeypatch):
    monkeypatch.setattr(drawing, "AHEAD", 0)  # nothing handed to the worker: every figure drawn here
    drawn = []
    monkeypatch.setattr(drawing, "draw", lambda kind, args: drawn.append((kind, args[-1])) or kind.encode())
    pool = FigurePool(None, workers=2)
    jobs = [heatmap("h0"), curves("c0"), heatmap("h1"), SATURATION, curves("c1")]
    for job in jobs:
        pool.add_job(*job)
    assert len(pool._procs) == 1
    pool._collect()
    assert drawn == [("saturation", 0.9), ("curves", "c0"), ("curves", "c1"), ("heatmap", "h0"), ("heatmap", "h1")]
    assert [COST[k] for k, _ in drawn] == sorted((COST[k] for k, _ in drawn), reverse=True)


def test_the_same_pngs_whatever_order_the_figures_are_drawn_in():
    """Figures of a kind are drawn on one Figure per process (moe.pictures.drawers.REUSED): drawn in another order,
    every PNG is the same."""
    jobs = [heatmap("h0"), curves("c0"), heatmap("h1\nsecond line"), SATURATION, curves("c1")]
    forward, backward = FigurePool(None, workers=1), FigurePool(None, workers=1)
    for job in jobs:
        forward.add_job(*job)
    for job in reversed(jobs):
        backward.add_job(*job)
    assert forward.finish() == list(reversed(backward.finish()))
    assert forward.drawn == backward.drawn == len(jobs)
