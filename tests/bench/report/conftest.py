"""Fixtures shared by the report tests."""
from __future__ import annotations

import pytest

from bench.report import figures as figures_mod


@pytest.fixture
def counted(monkeypatch):
    """The figure kinds drawn during a test, in order (``bench.report.figures.draw`` wrapped, still drawing)."""
    calls = []
    real = figures_mod.draw

    def draw(kind, args):
        calls.append(kind)
        return real(kind, args)

    monkeypatch.setattr(figures_mod, "draw", draw)
    return calls
