"""The figures of report.html: placeholders in the page's HTML while they are drawn, their images put in at the end.

``Figures`` is the build's ``bench.table.drawing.FigurePool`` (each figure drawn once, kept by content in the sweep
directory's figure cache, the missing ones drawn in parallel by worker processes while the page is written): the
page's drill-down figures and, when the page builds its tables, the tables' plots (``use`` places one of those
on the page). Entries of the cache that a page does not use are removed at its end, so the cache holds one build's
figures.
"""
from __future__ import annotations

from bench.report import page_parts
from bench.table.drawing import FigurePool, figure_key  # noqa: F401 (figure_key: re-exported)

PLACEHOLDER = "\x00figure:{}\x00"


class Figures(FigurePool):
    """The figures of one page: ``add`` returns a placeholder for the page's HTML, ``fill`` draws what the cache
    lacks and puts every image in its place. ``drawn``: how many were drawn (not found in the cache)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.uses: list[tuple[int, str]] = []  # (job number, alt text) of each image on the page
        self.keep: set[str] = set()  # cache keys to keep besides the page's (the tables' plots of a separate build)

    def add(self, kind: str, args: tuple, alt: str = "") -> str:
        """A figure on the page: its placeholder (``add_job``: a job not placed yet, e.g. a table's plot)."""
        return self.use(self.add_job(kind, args, alt), alt)

    def use(self, number: int, alt: str) -> str:
        """A placeholder for job ``number``'s image with ``alt`` text."""
        self.uses.append((number, alt))
        return PLACEHOLDER.format(len(self.uses) - 1)

    def pngs(self) -> list[bytes]:
        """Every job's PNG, in the order they were added: from the cache, else drawn (in parallel when many)."""
        pngs = self.finish()
        self._prune({key for *_, key in self.jobs} | self.keep)
        return pngs

    def _prune(self, keep: set[str]) -> None:
        """Remove the cache's PNGs this page does not use (figures of records that changed or went), and the
        temporary files of writes cut short (a worker drawing ahead stopped mid-write: ``bench.report.predraw``)."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return
        for p in self.cache_dir.glob("*.png"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)
        for p in self.cache_dir.glob(".*.png.*.tmp"):
            p.unlink(missing_ok=True)

    def fill(self, page: str) -> str:
        """``page`` with every placeholder replaced by its image (inline PNG)."""
        if not self.jobs:
            return page
        pngs = self.pngs()
        parts = page.split("\x00")
        for i, part in enumerate(parts):
            if part.startswith("figure:"):
                number, alt = self.uses[int(part[len("figure:"):])]
                parts[i] = page_parts.img(pngs[number], alt)
        return "".join(parts)
