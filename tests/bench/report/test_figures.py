"""report.html's figures: kept by content (a rebuild with no new record draws nothing; a changed record redraws
its own figures only), the same bytes whether drawn in worker processes or here, and figures for at most
``DRILL_FIGURES`` configurations, picked by validation accuracy."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.table import drawing as drawing_mod
from bench.report.figures import Figures, figure_key
from bench.report.sweep import drawn_configurations, render
from bench.sweep.layout import SweepDir
from bench.table.tables import build
from tests.bench.sweep_dirs import make_sweep_dir


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_sweep_dir(tmp_path_factory.mktemp("figs") / "s")


def page(sweep) -> str:
    """report.html's text, from tables built without their own plots (what is counted here is the page's figures)."""
    return render(sweep, build(sweep, plots=False))


def test_rebuild_draws_nothing_new_and_a_changed_record_redraws_its_own(sweep, counted):
    cache = SweepDir(sweep).figure_cache_dir
    first = page(sweep)
    n_first = len(counted)
    assert n_first >= 4 and len(list(cache.glob("*.png"))) == n_first  # heat-map, curves, gate regions per configuration
    assert page(sweep) == first and len(counted) == n_first  # nothing drawn the second time, same page
    # change one record's allocation: its configuration's heat-map is drawn again, nothing else
    sd = SweepDir(sweep)
    first_config = [i for i in range(4) if json.loads(sd.record_path(i).read_text())["bench"]["name"]
                    == json.loads(sd.record_path(0).read_text())["bench"]["name"]]
    assert len(first_config) == 2
    for i in first_config:  # both seeds: whichever is its best run, the heat-map shows a new allocation
        rec = json.loads(sd.record_path(i).read_text())
        rec["allocation"][0][0] += 7
        sd.write_record(i, rec)
    counted.clear()
    third = page(sweep)
    assert third != first and counted == ["heatmap"]
    assert len(list(cache.glob("*.png"))) == n_first  # the old heat-map went from the cache


@pytest.mark.slow  # spawned worker processes, each importing matplotlib: ~5-15 s on 2 loaded cores
@pytest.mark.parametrize("here", [False, True], ids=["workers-only", "shared-with-this-process"])
def test_parallel_draws_the_same_bytes_as_serial(sweep, monkeypatch, tmp_path, here):
    rec = json.loads(SweepDir(sweep).record_path(1).read_text())
    jobs = [("heatmap", (rec["allocation"], [f"c{i}" for i in range(len(rec["allocation"]))], f"t{j}")) for j in range(4)]
    jobs.append(("curves", ([("seed 1", rec["history"])], "curves")))
    serial, parallel = Figures(None, workers=1), Figures(tmp_path / "cache", workers=2)
    monkeypatch.setattr(drawing_mod, "PER_WORKER", 1)
    monkeypatch.setattr(drawing_mod, "DRAW_HERE", here)  # off: every figure comes from the worker process
    for kind, args in jobs:
        serial.add(kind, args, kind)
        parallel.add(kind, args, kind)
    assert parallel.pngs() == serial.pngs() and parallel.drawn == 5
    assert sorted(p.stem for p in (tmp_path / "cache").glob("*.png")) == sorted(k for *_, k in parallel.jobs)


def test_figure_key_follows_content():
    a = figure_key("heatmap", ([[1, 2]], ["a"], "t"), b"code")
    assert a == figure_key("heatmap", ([[1, 2]], ["a"], "t"), b"code")
    assert a != figure_key("heatmap", ([[1, 3]], ["a"], "t"), b"code")  # data
    assert a != figure_key("heatmap", ([[1, 2]], ["a"], "t"), b"other")  # drawing code
    with pytest.raises(ValueError, match="heatmap"):
        Figures(None).add("pie", (), "x")


def test_drawn_configurations_picks_by_validation_accuracy():
    runs = pd.DataFrame({"name": list("aabbccdd"), "status": ["ok"] * 7 + ["error"],
                         "val_accuracy": [0.1, 0.2, 0.9, 0.8, 0.5, 0.5, 0.7, 0.99],
                         "accuracy": [1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]})
    names = list("abcd")
    assert drawn_configurations(runs, names, limit=4) == set(names)
    # b 0.85, d 0.7 (its error run does not count), c 0.5, a 0.15; test accuracy plays no part
    assert drawn_configurations(runs, names, limit=2) == {"b", "d"}
    assert drawn_configurations(runs.drop(columns="val_accuracy"), names, limit=2) == {"a", "b"}


@pytest.fixture(scope="module")
def worker_imports():
    """What a figure worker process runs, in one fresh interpreter (one start for the two tests below): the page's
    drawing (moe.pictures.drawers), then the tables' (bench.table.pictures); after each, whether its PNG came out and
    which of torch and pandas were loaded."""
    import subprocess
    import sys
    from pathlib import Path

    show = "print(png[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'torch' in sys.modules, 'pandas' in sys.modules)"
    code = ("import sys\n"
            "import moe.pictures.drawers as d; png = d.draw_job(('heatmap', ([[1, 2], [3, 4]], ['a', 'b'], 't')))\n"
            f"{show}\n"
            "import bench.table.pictures as p; png = p.draw('saturation', ({'topk[k=2]': ([1, 2], [0.5, 1.0], 2)}, 't', 0.9))\n"
            f"{show}\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(drawing_mod.__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()]


def test_a_worker_process_imports_no_torch(worker_imports):
    """What a figure worker runs (moe.pictures.drawers) draws without torch: a worker starts in a fraction of the time."""
    assert worker_imports[0][:2] == ["True", "False"]


def test_a_figure_worker_draws_the_tables_plots_without_torch_or_pandas(worker_imports):
    """What a figure worker process imports (bench.table.pictures) draws the tables' plots too, without torch or pandas
    (loaded after the page's drawing, in the same process: neither is loaded by either)."""
    assert worker_imports[1] == ["True", "False", "False"]


def test_the_tables_plots_from_plain_data_equal_the_figures_drawn_from_the_tables(sweep, tmp_path, kept_figures):
    """tradeoff.png and saturation.png drawn as jobs (bench.table.pictures, in whichever process) are the bytes of
    their figures drawn here from the tables (bench.table.tradeoff.tradeoff_plot, bench.table.saturation). (The jobs
    drawn here are kept in the run's store too, for the tests below that take their figures from it.)"""
    from bench.table.pareto import pareto
    from bench.table.saturation import saturation_curves, saturation_plot
    from bench.table.tradeoff import tradeoff_plot

    built = build(sweep)
    summ = built["summary"]
    assert tradeoff_plot(summ, pareto(summ), tmp_path / "t.png", title="tiny").read_bytes() == (sweep / "tradeoff.png").read_bytes()
    records = SweepDir(sweep).read_records()
    assert saturation_curves(records)
    assert saturation_plot(records, tmp_path / "s.png", "tiny").read_bytes() == (sweep / "saturation.png").read_bytes()


@pytest.mark.slow  # a spawned worker process importing matplotlib
def test_a_figure_that_fails_in_a_worker_fails_the_build_and_stops_the_workers(monkeypatch):
    from bench.table.drawing import FigurePool

    monkeypatch.setattr(drawing_mod, "PER_WORKER", 1)
    monkeypatch.setattr(drawing_mod, "DRAW_HERE", False)  # every figure from the worker
    pool = FigurePool(None, workers=2)
    pool.add_job("heatmap", ([[1, 2], [3, 4]], ["a", "b"], "fine"))
    pool.add_job("heatmap", ([[1, 2], [3, 4]], ["only one name"], "bad"))  # 2 rows, 1 class name: ValueError
    procs = list(pool._procs)
    assert len(procs) == 1
    with pytest.raises(ValueError, match="class_names"):
        pool.finish()
    assert not any(p.is_alive() for p in procs)


def test_a_first_page_of_many_runs_starts_a_worker_ahead_and_a_rebuild_does_not(tmp_path, monkeypatch, shared_figures):
    """(Whether a worker is started ahead, not what draws the figures: those come from the run's store, drawn here,
    so that no figure worker process imports matplotlib for this test.)"""
    from bench.report.figures import Figures as PageFigures

    folder = make_sweep_dir(tmp_path / "s")  # 4 records
    calls = []
    monkeypatch.setattr(PageFigures, "warm_up", lambda self: calls.append(self.cache_dir))
    monkeypatch.setattr(drawing_mod, "PER_WORKER", 3)  # 4 records: 'many' here
    first = render(folder)
    assert calls == [SweepDir(folder).figure_cache_dir]  # no cache yet: a worker started before the records are read
    assert render(folder) == first and len(calls) == 1  # its cache is there: none ahead


def test_a_directory_of_a_runs_csv_alone_gets_no_figure_cache(sweep, tmp_path, shared_figures):
    """A published directory (runs.csv, no records) keeps only what it had and what the tables write: no .cache. (Which
    files, not their drawing: the tables' plots come from the run's store.)"""
    import shutil

    folder = tmp_path / "published"
    folder.mkdir()
    build(sweep, plots=False)
    shutil.copy(sweep / "runs.csv", folder / "runs.csv")
    render(folder)
    assert (folder / "tradeoff.png").is_file() and not (folder / ".cache").exists()
