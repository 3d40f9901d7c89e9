"""Plot helpers: the class x expert allocation heat-map, the expert x class ablation heat-map, and atomic
PNG writes (``save_png``).

Letters: C classes (rows, the y axis), E experts (columns, the x axis).

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot:
no global backend switch, no figure registry to leak; text by ``GlyphCanvas`` (each glyph's bitmap kept for the next
text that puts it at the same fraction of a pixel: matplotlib's own pixels, in less time). Files are written
atomically (a temporary file in the same directory, then ``os.replace``), so a reader never sees half a PNG. A
process drawing many figures of one kind may draw each on the same Figure (``remember_layout`` when it is made,
``emptied`` before the next one: ``moe.pictures.drawers.draw``), with the same pixels as on a new one.
"""
from __future__ import annotations

import io
import math
import os
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.ft2font import RenderMode
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from moe.records.files import atomic_write_bytes

__all__ = ["allocation_heatmap", "ablation_heatmap", "heatmap_figure", "heatmap_size", "png_bytes", "save_png", "DPI",
           "ANNOTATE_MAX_CELLS", "remember_layout", "emptied"]

DPI = 100
ANNOTATE_MAX_CELLS = 400  # counts are written in the cells when C * E is at most this (and E <= 32)
_MAX_PX = 2000


def png_bytes(fig: Figure) -> bytes:
    """The PNG of ``fig`` (Agg, no pyplot state; its Agg canvas kept: a Figure drawn again reuses its renderer and
    text sizes; a new one gets a :class:`GlyphCanvas`)."""
    buf = io.BytesIO()
    made = GlyphCanvas if GLYPHS_OK else FigureCanvasAgg
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else made(fig)
    canvas.print_png(buf)
    return buf.getvalue()


# GlyphRenderer copies matplotlib 3.11's text drawing (private methods of its Agg renderer and FT2Font): another
# version draws with its own canvas until test_glyph_cache has compared the two again
GLYPHS_OK = matplotlib.__version__.startswith("3.11.")
GLYPHS_KEPT = 100_000  # glyph bitmaps a process keeps (a few hundred bytes each); past this many, it starts again
_glyphs: dict[tuple, tuple[np.ndarray, int, int]] = {}
_layouts: dict[tuple, list[tuple]] = {}


class GlyphRenderer(RendererAgg):
    """Matplotlib's Agg renderer, each glyph's bitmap kept for the next text that puts the same glyph of the same font,
    size and rotation at the same fraction of a pixel: the same pixels, without FreeType rendering it again (text is
    about a third of a figure's drawing, and the same labels, ticks and titles recur from figure to figure).

    A glyph is rendered at its pen position in 1/64 pixel; moved by whole pixels its bitmap is the same, moved by
    as many pixels (``tests/moe/test_glyph_cache.py`` compares every kind of figure with matplotlib's own
    renderer). Text drawn with boxes (mathtext's rules) goes through matplotlib's own code. The layout of a text (its
    glyphs and their places, FreeType's and HarfBuzz's) is kept too, by font, size, string and features."""

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):  # matplotlib 3.11's, the layout kept
        if ismath:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        font = self._prepare_font(prop)
        size = prop.get_size_in_points()
        features, language = (mtext.get_fontfeatures(), mtext.get_language()) if mtext is not None else (None, None)
        key = (font, size, self.dpi, s, get_hinting_flag(), features, language)
        try:
            items = _layouts.get(key)
        except TypeError:  # features or language in a list: not kept
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        if items is None:
            if len(_layouts) >= GLYPHS_KEPT:
                _layouts.clear()
            items = _layouts[key] = [(item.ft_object, item.glyph_index, item.x, item.y)
                                     for item in font._layout(s, flags=key[4], features=features, language=language)]
        glyphs = ((ft, size, index, 0, 1, dx, dy) for ft, index, dx, dy in items)
        self._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, [])

    def _draw_text_glyphs_and_boxes(self, gc, x, y, angle, glyphs, boxes):  # matplotlib 3.11's, the bitmap kept
        if boxes:
            return super()._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, boxes)
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        flags, antialiased = get_hinting_flag(), gc.get_antialiased()
        matrices: dict[tuple[float, float], np.ndarray] = {}
        for font, size, glyph_index, slant, extend, dx, dy in glyphs:  # dy is upwards
            if (matrix := matrices.get((slant, extend))) is None:
                matrix = matrices[slant, extend] = (0x10000 * np.array([[cos, -sin], [sin, cos]])
                                                    @ [[extend, extend * slant], [0, 1]]).round().astype(int)
            pen_x = round(0x40 * (x + dx * cos - dy * sin))  # 1/64 pixel; FreeType's y is upwards
            pen_y = round(0x40 * (self.height - y + dx * sin + dy * cos))
            key = (font, size, self.dpi, glyph_index, matrix.tobytes(), pen_x & 63, pen_y & 63, flags, antialiased)
            if (kept := _glyphs.get(key)) is None:
                font.set_size(size, self.dpi)
                font._set_transform(matrix, [pen_x, pen_y])
                bitmap = font._render_glyph(glyph_index, flags, RenderMode.NORMAL if antialiased else RenderMode.MONO)
                buffer = bitmap.buffer if antialiased else bitmap.buffer * 0xff
                if len(_glyphs) >= GLYPHS_KEPT:
                    _glyphs.clear()
                kept = _glyphs[key] = (buffer, bitmap.left - (pen_x >> 6), bitmap.top - (pen_y >> 6))
            buffer, left, top = kept
            # draw_text_image's y is downwards & the bitmap bottom side
            self._renderer.draw_text_image(buffer, left + (pen_x >> 6),
                                           int(self.height) - top - (pen_y >> 6) + buffer.shape[0], 0, gc)


class GlyphCanvas(FigureCanvasAgg):
    """An Agg canvas drawing with :class:`GlyphRenderer` (matplotlib's ``get_renderer``, that renderer made)."""

    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = GlyphRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer


def save_png(fig, path: str | os.PathLike) -> Path:
    """Render a matplotlib Figure to PNG (:func:`png_bytes`) and write it atomically."""
    return atomic_write_bytes(path, png_bytes(fig))


def heatmap_size(n_classes: int, n_experts: int, longest_name: int = 1) -> tuple[int, int]:
    """Size in pixels (width, height) of the heat-map of a [C, E] allocation.

    Grows with the number of experts (and the longest class name) across, the number of classes down;
    at most 2000 pixels either way.
    """
    width = 260 + 8 * max(1, longest_name) + 48 * n_experts
    height = 180 + 34 * n_classes
    return min(_MAX_PX, width), min(_MAX_PX, height)


def allocation_heatmap(allocation, class_names: Sequence[str], path: str | os.PathLike,
                       title: str | None = None) -> Path:
    """Draw the allocation matrix [C, E] as a heat-map PNG at ``path``; returns the path.

    Classes (named by ``class_names``) on the y axis, experts 0..E-1 on the x axis, the count of
    class-c samples routed to expert e as the colour, and written in each cell when the matrix is small
    (as Figures 1 and 3 of Krishnamurthy & Watkins 2021). ``allocation``: nested lists, a numpy array
    or a tensor of non-negative counts. The PNG has :func:`heatmap_size` pixels; written atomically.
    """
    return save_png(heatmap_figure(allocation, class_names, title), path)


def heatmap_figure(allocation, class_names: Sequence[str], title: str | None = None,
                   reuse: Figure | None = None) -> Figure:
    """The Figure :func:`allocation_heatmap` writes (for a caller that wants the PNG's bytes, not a file).
    ``reuse``: a Figure this function drew before, drawn on again (:func:`emptied`; its colour bar updated)."""
    rows = _matrix(allocation)
    n_classes, n_experts = len(rows), len(rows[0])
    names = [str(c) for c in class_names]
    if len(names) != n_classes:
        raise ValueError(f"class_names: expected {n_classes} names (one per row), got {len(names)}")
    width, height = heatmap_size(n_classes, n_experts, max(len(s) for s in names))
    if reuse is None:
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        image = ax.imshow(rows, cmap="Blues", aspect="auto", interpolation="nearest", vmin=0)
        fig.colorbar(image, ax=ax, label="samples")
    else:
        fig = reuse
        fig.set_size_inches(width / DPI, height / DPI)
        ax, = emptied(fig)
        image = ax.imshow(rows, cmap="Blues", aspect="auto", interpolation="nearest", vmin=0)
        ax._colorbar_of.update_normal(image)  # the new image's norm: the colour bar's ticks and colours made again
    _label_axes(ax, names, n_experts, title)
    if n_classes * n_experts <= ANNOTATE_MAX_CELLS and n_experts <= 32:
        _annotate(ax, rows)
    return fig


def remember_layout(fig: Figure) -> None:
    """Note where ``fig``'s Axes are before it is first drawn (a layout engine moves them), for :func:`emptied`."""
    fig._fresh_positions = [(ax, ax._originalPosition.frozen(), ax._position.frozen()) for ax in fig.axes]
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):  # the Axes it belongs to, to update it
            ax._colorbar_info["parents"][0]._colorbar_of = ax._colorbar


def emptied(fig: Figure) -> list:
    """The Axes of a Figure drawn before (:func:`remember_layout` called when it was made), back to what they
    were then, colour bars left out (updated by their drawing): their lines, collections, images, texts and legends
    removed, data and view limits reset, autoscaling on, default tick locators and formatters, their places those
    noted before the first drawing (a constrained layout starts from there); the suptitle removed. What is kept
    (the Axes, their ticks, labels and grid settings, the title Text objects) is set again by every drawing or
    recomputed when it is drawn."""
    for ax, original, active in fig._fresh_positions:
        ax._set_position(original, which="original")
        ax._set_position(active, which="active")
    axes = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    for ax in axes:
        for artist in [*ax.lines, *ax.collections, *ax.images, *ax.texts]:
            artist.remove()
        if ax.legend_ is not None:
            ax.legend_.remove()
        ax.relim()  # null data limits, ignored until the next artist
        ax.viewLim.set_points(Bbox.unit().get_points())
        ax.set_autoscale_on(True)
        ax._tight = None
        ax.set_prop_cycle(None)
        for axis in (ax.xaxis, ax.yaxis):
            axis._set_scale("linear")  # AutoLocator, ScalarFormatter: what set_ticks replaced
    if fig._suptitle is not None:
        fig._suptitle.remove()
        fig._suptitle = None
    return axes


def ablation_heatmap(ablation, class_names: Sequence[str], path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the ablation matrix D [E, C] (``moe.scoring.ablation``: the drop of class c's test accuracy when expert e is
    removed) as a heat-map PNG at ``path``; returns the path.

    Experts on the y axis, classes (named by ``class_names``) on the x axis; a diverging colour scale centred on 0
    (red: removing the expert costs the class accuracy, blue: it helps), the drop written in each cell when the
    matrix is small. Written atomically."""
    rows = ablation.tolist() if hasattr(ablation, "tolist") else [list(r) for r in ablation]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("ablation: expected a non-empty matrix [E, C] with rows of equal length")
    rows = [[float("nan") if v is None else float(v) for v in r] for r in rows]
    n_experts, n_classes = len(rows), len(rows[0])
    names = [str(c) for c in class_names]
    if len(names) != n_classes:
        raise ValueError(f"class_names: expected {n_classes} names (one per column), got {len(names)}")
    width, height = heatmap_size(n_experts, n_classes, 2)  # rows: experts ('e12'), columns: classes
    fig = Figure(figsize=(width / DPI, (height + 6 * max(map(len, names))) / DPI), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    top = max((abs(v) for r in rows for v in r if v == v), default=0.0) or 1.0
    image = ax.imshow(rows, cmap="RdBu_r", aspect="auto", interpolation="nearest", vmin=-top, vmax=top)
    fig.colorbar(image, ax=ax, label="accuracy drop of the class")
    if n_experts <= 32:
        ax.set_yticks(range(n_experts))
    ax.set_xticks(range(n_classes), labels=names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
    ax.set_xlabel("class")
    ax.set_ylabel("expert removed")
    ax.set_title(title if title is not None else "Ablation: accuracy drop per class when an expert is removed")
    if n_classes * n_experts <= ANNOTATE_MAX_CELLS and n_classes <= 32:
        for e, row in enumerate(rows):
            for c, v in enumerate(row):
                ax.text(c, e, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(v) > top / 2 else "black")
    return save_png(fig, path)


def _matrix(allocation) -> list[list[float]]:
    """The allocation as a C x E list of lists of non-negative numbers, checked."""
    rows = allocation.tolist() if hasattr(allocation, "tolist") else [list(r) for r in allocation]
    if not rows or not isinstance(rows[0], list) or not rows[0]:
        raise ValueError("allocation: expected a non-empty matrix [C, E]")
    if any(not isinstance(r, list) or len(r) != len(rows[0]) for r in rows):
        raise ValueError("allocation: rows of unequal length")
    for r in rows:
        for v in r:  # C x E cells, not samples
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"allocation: expected non-negative counts, got {v!r}")
    return rows


def _label_axes(ax, names: list[str], n_experts: int, title: str | None) -> None:
    ax.set_yticks(range(len(names)), labels=names)
    if n_experts <= 32:
        ax.set_xticks(range(n_experts))
    ax.set_xlabel("expert")
    ax.set_ylabel("class")
    text = title if title is not None else "Allocation of test samples to experts"
    # wrapped to the figure's width (about 6.5 pixels a character at 9 points), so no line is clipped at its sides
    chars = max(24, int(ax.figure.get_figwidth() * ax.figure.dpi / 6.5))
    ax.set_title("\n".join(textwrap.fill(line, chars, break_long_words=True, break_on_hyphens=False)
                           for line in text.split("\n")), fontsize=9)


def _annotate(ax, rows: list[list[float]]) -> None:
    top = max(max(r) for r in rows) or 1
    for c, row in enumerate(rows):
        for e, v in enumerate(row):
            text = f"{v:g}" if isinstance(v, float) else str(v)
            ax.text(e, c, text, ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black",
                    in_layout=False)  # inside its cell: the constrained layout need not measure it (same pixels)
