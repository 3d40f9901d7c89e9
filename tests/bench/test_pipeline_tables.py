"""``bench.pipeline.tables_and_report``: one build of the tables, made by the page (their plots drawn with the page's
figures, by the same workers), and a page that fails after that build still leaves every table and plot. No Ray."""
from __future__ import annotations

import pytest

from bench import pipeline
from bench.report import sweep as page
from bench.sweep.layout import SweepDir
from tests.bench.sweep_dirs import make_sweep_dir

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)

TABLES = ("runs.csv", "results_long.csv", "table.md", "table.tex", "pareto.csv", "tradeoff.png")


@pytest.fixture
def builds(monkeypatch):
    """Who built the tables: 'page' (the report's own build) or 'alone' (the pipeline's, without the page)."""
    seen: list[str] = []
    page_build, alone = page.build, pipeline.build_tables
    monkeypatch.setattr(page, "build", lambda *a, **k: seen.append("page") or page_build(*a, **k))
    monkeypatch.setattr(pipeline, "build_tables", lambda *a, **k: seen.append("alone") or alone(*a, **k))
    return seen


def test_the_tables_are_built_once_by_the_page(tmp_path, builds):
    out = make_sweep_dir(tmp_path / "sweep")
    built = pipeline.tables_and_report(str(out))
    assert builds == ["page"]
    assert all((out / f).is_file() for f in TABLES) and SweepDir(out).report_path.is_file()
    assert len(built["runs"]) == len(SweepDir(out).record_files())


def test_a_page_failing_after_its_build_leaves_the_tables_and_their_plots(tmp_path, builds, monkeypatch, capsys):
    out = make_sweep_dir(tmp_path / "sweep")

    def broken(*args, **kwargs):
        raise RuntimeError("no drill-down today")

    monkeypatch.setattr(page, "drill_down", broken)
    built = pipeline.tables_and_report(str(out))
    assert builds == ["page", "alone"]  # the page's build went with it: built again on its own
    assert all((out / f).is_file() for f in TABLES) and not SweepDir(out).report_path.exists()
    assert "warning: report.html not written (RuntimeError: no drill-down today)" in capsys.readouterr().err
    assert len(built["runs"]) == len(SweepDir(out).record_files())


def test_an_error_of_the_tables_themselves_is_raised(tmp_path, monkeypatch, capsys):
    out = make_sweep_dir(tmp_path / "sweep")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bench.table.tables.write_csv", full_disk)
    with pytest.raises(OSError, match="No space"):
        pipeline.tables_and_report(str(out))
