"""Figures drawn ahead while a sweep runs (``bench.report.predraw``): the report built afterwards equals a report
built from scratch, takes every figure drawn ahead and draws none of them again; a configuration is drawn only
once all its trials have records; a figure drawn from a record that changed afterwards is drawn anew."""
from __future__ import annotations

import json
import shutil

import pytest

from bench.report import predraw as predraw_mod
from bench.report.predraw import Predraw
from bench.report.sweep import render
from bench.sweep.layout import SweepDir
from bench.table import drawing as drawing_mod
from bench.table.tables import build
from tests.bench.sweep_dirs import make_sweep_dir

pytestmark = pytest.mark.slow  # a spawned worker process importing matplotlib: a few seconds on 2 loaded cores


@pytest.fixture(autouse=True, scope="module")
def workers():
    """The drawing ahead: a worker process, as a user's sweep has it (tests/conftest.py turns figure workers off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MOE_FIGURE_WORKERS", raising=False)
        yield


@pytest.fixture
def sweeps(tmp_path):
    """Two copies of one sweep directory: ``ahead`` for drawing ahead, ``scratch`` for a build from nothing."""
    ahead = make_sweep_dir(tmp_path / "ahead")
    scratch = tmp_path / "scratch"
    shutil.copytree(ahead, scratch)
    return ahead, scratch


@pytest.fixture(scope="module")
def drawn_once(tmp_path_factory):
    """The sweep directory drawn ahead once for this module (one worker process, its figures drawn once), with the
    figures it handed to the worker, and an untouched copy: the tests that start from a directory drawn ahead each
    get copies of these (``drawn``), the same files as drawing ahead in each test."""
    base = tmp_path_factory.mktemp("drawn")
    ahead = make_sweep_dir(base / "ahead")
    shutil.copytree(ahead, base / "scratch")
    return base / "ahead", base / "scratch", frozenset(draw_ahead(ahead).submitted)


@pytest.fixture(scope="module")
def from_scratch(drawn_once, tmp_path_factory):
    """The report of the untouched directory built from nothing, once for this module: (its folder, whose figure caches
    that build filled; its page; the figure kinds it drew, in order: every figure drawn in this process, as
    ``counted`` has them)."""
    folder = shutil.copytree(drawn_once[1], tmp_path_factory.mktemp("from_scratch") / "scratch")
    kinds = []
    real = drawing_mod.draw

    def draw(kind, args):
        kinds.append(kind)
        return real(kind, args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(drawing_mod, "draw", draw)
        mp.setattr(drawing_mod, "PER_WORKER", 10**6)
        text = page(folder)
    return folder, text, kinds


@pytest.fixture
def drawn(tmp_path, drawn_once):
    """(``ahead``: a copy of the directory drawn ahead, ``scratch``: a copy of it before, submitted figures' keys)."""
    ahead, scratch, submitted = drawn_once
    shutil.copytree(ahead, tmp_path / "ahead")
    shutil.copytree(scratch, tmp_path / "scratch")
    return tmp_path / "ahead", tmp_path / "scratch", submitted


def trials_of(folder: SweepDir) -> dict:
    return {t.index: t for t in folder.read_meta()[1]}


def page(folder) -> str:
    return render(folder).replace(str(SweepDir(folder).root), "DIR")  # the page names its directory


def draw_ahead(root, indices=None) -> Predraw:
    folder = SweepDir(root)
    trials = trials_of(folder)
    predraw = Predraw()
    for i in sorted(trials) if indices is None else indices:
        predraw(folder, trials, json.loads(folder.record_path(i).read_text()))
    predraw.finish()
    return predraw


def test_the_report_after_drawing_ahead_is_the_report_from_scratch_and_draws_nothing_again(drawn, from_scratch,
                                                                                            counted, tmp_path):
    ahead, _, submitted = drawn
    built, scratch_page, scratch_drawn = from_scratch
    cached = sorted(p.name for p in SweepDir(ahead).figure_cache_dir.glob("*.png"))
    assert len(submitted) == len(cached) >= 6  # heat-map, curves, gate regions of each of 2 configurations
    first = page(ahead)
    tables = len(counted)  # the tables' plots (figures of the cache too), not drawn ahead
    assert tables >= 3 and set(counted) <= {"saturation", "tradeoff", "heatmap"}
    assert first == scratch_page
    assert len(scratch_drawn) == len(cached) + tables  # the build from scratch drew them all ...
    scratch = shutil.copytree(built, tmp_path / "built")
    counted.clear()
    assert page(ahead) == page(scratch) and counted == []  # (the second builds draw nothing: their caches are full)
    now = sorted(p.name for p in SweepDir(ahead).figure_cache_dir.glob("*.png"))
    assert set(cached) <= set(now) and len(now) == len(cached) + tables


def test_the_report_of_the_directory_drawn_ahead_draws_nothing(drawn, counted):
    ahead, _, _ = drawn
    built = build(ahead)  # the tables and their plots first, as bench.pipeline builds them
    counted.clear()
    render(ahead, built)
    assert counted == []


def test_a_configuration_is_drawn_only_when_all_its_trials_have_records(sweeps):
    ahead, _ = sweeps
    folder = SweepDir(ahead)
    trials = trials_of(folder)
    first = trials[0].name
    same = sorted(i for i, t in trials.items() if t.name == first)
    assert len(same) == 2
    second = json.loads(folder.record_path(same[1]).read_text())
    folder.record_path(same[1]).unlink()  # the second seed still runs
    predraw = Predraw()
    predraw(folder, trials, json.loads(folder.record_path(same[0]).read_text()))
    assert predraw.submitted == set()  # its configuration is not finished
    folder.write_record(same[1], second)
    predraw(folder, trials, second)
    assert len(predraw.submitted) >= 3
    predraw.close()  # the worker stopped at once: what it draws is the other tests' (this one: what is handed over)


def test_a_record_changed_after_drawing_ahead_is_drawn_anew(drawn, counted):
    ahead, scratch, _ = drawn
    for root in (ahead, scratch):  # one run's history changes in both copies after the figures were drawn ahead
        build(root)  # (the tables' plots, which no history changes, drawn before)
        counted.clear()
        folder = SweepDir(root)
        rec = json.loads(folder.record_path(0).read_text())
        rec["history"][0]["train_loss"] += 1.0
        folder.write_record(0, rec)
    ahead_page = page(ahead)
    assert counted == ["curves"]  # only its configuration's per-epoch curves
    assert ahead_page == page(scratch)


def test_no_drawing_ahead_where_the_page_draws_only_some_configurations(sweeps, monkeypatch):
    ahead, _ = sweeps
    monkeypatch.setattr(predraw_mod, "DRILL_FIGURES", 1)  # 2 configurations: which one gets figures is known at the end
    assert draw_ahead(ahead).submitted == set()


def test_close_stops_the_worker_at_once_and_the_report_draws_the_rest(drawn_once, from_scratch, tmp_path):
    ahead = shutil.copytree(drawn_once[1], tmp_path / "ahead")  # a copy of what from_scratch built (the page shows
    # the sweep's times), nothing drawn ahead yet
    folder = SweepDir(ahead)
    trials = trials_of(folder)
    predraw = Predraw()
    for i in sorted(trials):
        predraw(folder, trials, json.loads(folder.record_path(i).read_text()))
    worker = predraw.worker
    predraw.close()
    assert worker is not None and not worker.is_alive()
    assert page(ahead) == from_scratch[1]  # the page built from scratch
    assert not list(folder.figure_cache_dir.glob(".*.tmp"))  # no write cut short is left
