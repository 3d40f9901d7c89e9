"""Figures drawn again on one Figure per process (``moe.pictures.drawers.REUSED``): each PNG byte for byte the one a
new Figure gives, whichever figures of its kind that process drew before (no limits, legends, lines, titles or
layout left over)."""
from __future__ import annotations

import numpy as np
import pytest

from moe.pictures import drawers
from moe.pictures.view_plots import png_bytes


def history(epochs: int, scale: float, experts: int | None, keys=("train_accuracy", "val_accuracy", "train_loss")):
    out = []
    for e in range(1, epochs + 1):
        h = {"epoch": e, **{k: (scale * e / epochs if "accuracy" in k else scale * 10 / e) for k in keys}}
        if experts:
            share = np.linspace(1, 2, experts) ** e
            h["expert_share"] = (share / share.sum()).tolist()
        out.append(h)
    return out


def gate_view(experts: int, classes: int, span: float) -> dict:
    xs = np.linspace(-span, span, 16)
    grid = (np.add.outer(np.arange(16), np.arange(16)) * experts // 32).tolist()
    return {"expert": grid, "x_range": [-span, span], "y_range": [-2 * span, span],
            "points": {"x": xs.tolist(), "y": (xs ** 2 - span).tolist(), "label": [i % classes for i in range(16)]}}


CASES = {
    "curves": [
        ([("seed 0", history(10, 1.0, 4)), ("seed 1", history(10, 0.9, 4))], "a\ntitle"),
        ([("", history(60, 300.0, None))], None),  # other ticks, no shares, no suptitle
        ([("", history(3, 0.5, 40, keys=("test_accuracy",)))], "only accuracy"),  # an empty loss panel, 40 experts
    ],
    "heatmap": [
        ([[100, 0], [3, 97], [50, 50]], ["a", "b", "c"], "two experts\ncounts in the cells"),
        ([[i * j % 7 for j in range(40)] for i in range(5)], [f"class {i}" for i in range(5)], None),  # 40 experts: no
        ([[0.5, 2.25, 0.0]], ["a long class name"], "floats"),  # x ticks, no counts written; another size
    ],
    "gate_regions": [
        (gate_view(3, 2, 1.0), ["a", "b"], None),
        (gate_view(12, 11, 40.0), None, "a much longer title " * 4),  # a wider legend, other limits
        ({**gate_view(2, 1, 0.01), "points": {}}, None, "no points"),
    ],
}


@pytest.mark.parametrize("kind", sorted(drawers.REUSED))
def test_a_figure_drawn_after_others_of_its_kind_is_the_new_figures_bytes(kind, monkeypatch):
    monkeypatch.setattr(drawers, "_kept", {})
    cases = CASES[kind]
    new = [png_bytes(drawers.DRAWERS[kind](*args)) for args in cases]  # a new Figure each
    assert len(set(new)) == len(cases)
    for step, i in enumerate((0, 1, 2, 0, 2, 1, 0)):  # the first on a new Figure; then every case after every other
        assert drawers.draw(kind, cases[i]) == new[i], (step, i)
    assert kind in drawers._kept
