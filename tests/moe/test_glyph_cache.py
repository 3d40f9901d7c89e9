"""``moe.pictures.plots.GlyphCanvas``: text drawn from glyph bitmaps kept between texts and figures, byte for byte the
PNG of matplotlib's own Agg canvas (rotated, mathtext with its rules, not antialiased, many sizes and fractions of
a pixel), the first time and once every glyph is kept."""
from __future__ import annotations

import io

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import IdentityTransform

from moe.pictures import drawers, plots
from tests.moe.test_figure_reuse import CASES


def plain_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def texts(shift: float) -> Figure:
    fig = Figure(figsize=(4.1 + shift, 3.3), dpi=97)
    ax = fig.add_subplot()
    ax.plot([0, 1 + shift], [0, 2])
    ax.set_title("a title with kerning: AVATAR Ty", fontsize=11.5)
    ax.set_ylabel("rotated 90 degrees")
    for i in range(12):
        ax.text(0.05 + 0.073 * i + shift / 7, 0.1 + 0.061 * i, f"t{i} {shift:.3f}", rotation=17 * i, fontsize=6 + i,
                transform=ax.transAxes, antialiased=i % 3 != 0)
    ax.text(0.5, 0.8, r"$\frac{a}{b} + \sqrt{x^2}$", transform=ax.transAxes)  # mathtext: glyphs and rules
    ax.text(0.2, 0.6, r"$x_{i}^{2}$ plain", transform=ax.transAxes, fontstyle="italic")
    ax.legend(["a line"], title="legend")
    for rotation in (0, 90, 45):  # the same glyphs at the same pen positions, turned
        fig.text(40, 40, "same glyphs", rotation=rotation, rotation_mode="anchor", transform=IdentityTransform(),
                 fontsize=9)
    for size in (8, 13, 8):  # the same glyphs at the same pen positions, in two sizes
        fig.text(40, 120, "same glyphs", fontsize=size, va="baseline", transform=IdentityTransform())
    return fig


@pytest.fixture(scope="module")
def plain():
    """matplotlib's own PNG of ``texts(shift)``, drawn once per shift for the tests below (Agg's canvas: no glyph kept)."""
    made: dict[float, bytes] = {}

    def png(shift: float) -> bytes:
        if shift not in made:
            made[shift] = plain_png(texts(shift))
        return made[shift]

    return png


@pytest.mark.parametrize("shift", [0.0, 0.013, 0.5])
def test_text_of_every_kind_is_matplotlibs_own_bytes(shift, monkeypatch, plain):
    monkeypatch.setattr(plots, "_glyphs", {})
    monkeypatch.setattr(plots, "_layouts", {})
    expected = plain(shift)
    assert plots.png_bytes(texts(shift)) == expected  # every glyph rendered
    assert plots._glyphs
    assert plots.png_bytes(texts(shift)) == expected  # every glyph kept


@pytest.mark.slow  # every kind of the report's figures, each drawn twice: ~5 s
def test_the_report_figures_are_matplotlibs_own_bytes(monkeypatch):
    monkeypatch.setattr(plots, "_glyphs", {})
    monkeypatch.setattr(plots, "_layouts", {})
    monkeypatch.setattr(plots, "GLYPHS_KEPT", 500)  # emptied on the way, too
    for kind, cases in sorted(CASES.items()):
        for args in cases + cases[:1]:  # the first again: its glyphs kept
            assert plots.png_bytes(drawers.DRAWERS[kind](*args)) == plain_png(drawers.DRAWERS[kind](*args)), kind
    assert 0 < len(plots._glyphs) <= 500 and 0 < len(plots._layouts) <= 500


def test_another_matplotlib_draws_with_its_own_canvas(monkeypatch, plain):
    """The renderer copies matplotlib 3.11's private text drawing: on another version png_bytes uses Agg's own canvas."""
    assert plots.GLYPHS_OK  # the pinned version (pyproject.toml)
    made = []
    monkeypatch.setattr(plots.GlyphCanvas, "print_png",
                        lambda self, buf: made.append(self) or FigureCanvasAgg.print_png(self, buf))
    plots.png_bytes(texts(0.0))
    assert len(made) == 1
    monkeypatch.setattr(plots, "GLYPHS_OK", False)
    fig = texts(0.0)
    assert plots.png_bytes(fig) == plain(0.0) and len(made) == 1
    assert type(fig.canvas) is FigureCanvasAgg
