"""Fixtures shared by the report tests."""
from __future__ import annotations

import pytest

from bench.table import drawing as drawing_mod


@pytest.fixture
def counted(monkeypatch):
    """The figure kinds drawn in this process during a test, in order (``bench.table.drawing.draw`` wrapped, still
    drawing)."""
    calls = []
    real = drawing_mod.draw

    def draw(kind, args):
        calls.append(kind)
        return real(kind, args)

    monkeypatch.setattr(drawing_mod, "draw", draw)
    monkeypatch.setattr(drawing_mod, "PER_WORKER", 10**6)  # every figure drawn here (no worker process), so counted
    return calls
