"""``$MOE_FIGURE_WORKERS`` (``bench.table.drawing.figure_workers``): at most that many figure worker processes for a
build (0: every figure drawn by the building process) and, at 0, no drawing ahead of a running sweep
(``bench.report.predraw``); a value that is not an integer >= 0 is left unused with one warning line."""
from __future__ import annotations

import queue

import pytest

from bench.report.predraw import Predraw
from bench.table import drawing
from bench.table.drawing import PER_WORKER, WORKERS_VAR, FigurePool, figure_workers


def heatmap(title: str) -> tuple[str, tuple]:
    return "heatmap", ([[1, 2], [3, 4]], ["a", "b"], title)


@pytest.fixture
def started(monkeypatch):
    """The worker processes pools start here (none really started: counted)."""
    calls = []

    def start(self):
        calls.append(self)
        self._procs.append(object())
        self._jobs_q = self._jobs_q or queue.Queue()

    monkeypatch.setattr(FigurePool, "_start_worker", start)
    monkeypatch.setattr(drawing, "available_cores", lambda: 4)
    return calls


@pytest.mark.parametrize("value, expected", [("", None), ("0", 0), ("3", 3), (" 2 ", 2)])
def test_the_value_is_an_integer_or_unset(monkeypatch, value, expected):
    monkeypatch.setenv(WORKERS_VAR, value)
    assert figure_workers() == expected


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_value_that_is_not_a_count_is_left_unused_with_one_warning(monkeypatch, capsys, value):
    monkeypatch.setenv(WORKERS_VAR, value)
    monkeypatch.setattr(drawing, "_warned", set())
    assert figure_workers() is None and figure_workers() is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {WORKERS_VAR}={value!r} is not an integer >= 0"), err


@pytest.mark.parametrize("value, workers", [(None, 3), ("0", 0), ("1", 1), ("9", 3)])
def test_a_build_of_many_missing_figures_starts_at_most_that_many_workers(monkeypatch, started, value, workers):
    if value is None:
        monkeypatch.delenv(WORKERS_VAR, raising=False)
    else:
        monkeypatch.setenv(WORKERS_VAR, value)
    pool = FigurePool(None)
    for i in range(PER_WORKER * 8):
        pool.add_job(*heatmap(f"figure {i}"))
    assert len(started) == workers  # without the variable: one per core besides this one (4 cores here)
    explicit = FigurePool(None, workers=2)  # a caller's own number of processes is kept
    assert explicit.workers == 2


def test_without_workers_every_figure_is_drawn_here_the_same(monkeypatch):
    monkeypatch.setattr(drawing, "available_cores", lambda: 4)
    jobs = [heatmap(f"figure {i}") for i in range(PER_WORKER + 2)]
    monkeypatch.setenv(WORKERS_VAR, "0")
    pool = FigurePool(None)
    for job in jobs:
        pool.add_job(*job)
    assert not pool._procs
    pngs = pool.finish()
    assert len(pngs) == len(jobs) and [pngs[0], pngs[-1]] == [drawing.draw(*jobs[0]), drawing.draw(*jobs[-1])]


def test_no_drawing_ahead_of_a_sweep_without_workers(monkeypatch, capsys):
    monkeypatch.setenv(WORKERS_VAR, "0")
    predraw = Predraw()
    predraw(None, {}, {"bench": {"index": 0}})  # the first record: nothing read, no worker started
    assert predraw.off and predraw.worker is None and not predraw.submitted
    assert capsys.readouterr().err == ""
