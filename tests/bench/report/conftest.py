"""Fixtures shared by the report tests."""
from __future__ import annotations

import pytest

from bench.table import drawing as drawing_mod
from moe.records.files import atomic_write_bytes
from tests.conftest import stored_figure


@pytest.fixture
def kept_figures(monkeypatch, figure_store):
    """Every figure drawn in this process during a test (``bench.table.drawing.draw``, still drawing) put in the run's
    figure store as well (``tests/conftest.py``; never read here): a later test with ``shared_figures`` takes it from
    there instead of drawing it again. For the tests about drawing, which draw for real."""
    real = drawing_mod.draw

    def draw(kind, args):
        png = real(kind, args)
        atomic_write_bytes(stored_figure(figure_store, kind, args), png)
        return png

    monkeypatch.setattr(drawing_mod, "draw", draw)


@pytest.fixture
def counted(monkeypatch, kept_figures):
    """The figure kinds drawn in this process during a test, in order (``bench.table.drawing.draw`` wrapped, still
    drawing; kept in the run's store too: ``kept_figures``)."""
    calls = []
    real = drawing_mod.draw

    def draw(kind, args):
        calls.append(kind)
        return real(kind, args)

    monkeypatch.setattr(drawing_mod, "draw", draw)
    monkeypatch.setattr(drawing_mod, "PER_WORKER", 10**6)  # every figure drawn here (no worker process), so counted
    return calls
