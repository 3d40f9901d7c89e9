"""moe.report on a damaged or hand-edited record: every field of a real record replaced by a value of the wrong
type or shape gives either a report or one ``error:`` line with exit status 2, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from moe.pictures import run_report

WRONG = [1, "x", [[1, "x"]], [[1], [1, 2]], {"a": [1]}, [{"epoch": "x", "expert_share": [[1], [1, 2]]}]]

pytestmark = pytest.mark.slow  # draws a picture for each value it accepts


@pytest.fixture(scope="module")
def real_record():
    from moe.training.loop import run  # a real record holds every field moe.report draws (views, ablation, dynamics)

    return json.loads(json.dumps(run({"dataset": "gm6", "experts": 3, "epochs": 2, "n_train": 240, "n_test": 120},
                                     progress=False), default=float))


@pytest.fixture(scope="module", autouse=True)
def heatmaps_drawn_once():
    """Each heat-map (allocation, ablation) drawn once per distinct input in this module: most damaged records keep
    the real record's allocation, ablation, class names and title, so their heat-maps are the real record's, the same
    bytes (figures are deterministic), written from what the first drawing gave. A heat-map whose inputs a damaged
    field changes (``dataset``, ``config``: the names or the title) is drawn as before, errors included; so is each
    picture of ``history`` and ``views``, where the damage is."""
    from moe.pictures import run_report
    from moe.records.files import atomic_write_bytes

    def once(draw):
        drawn: dict[str, bytes] = {}

        def heatmap(matrix, class_names, path, title=None):
            key = json.dumps([matrix, class_names, title])
            if key not in drawn:
                draw(matrix, class_names, path, title=title)
                drawn[key] = Path(path).read_bytes()
            return atomic_write_bytes(path, drawn[key])
        return heatmap

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_report, "allocation_heatmap", once(run_report.allocation_heatmap))
        mp.setattr(run_report, "ablation_heatmap", once(run_report.ablation_heatmap))
        yield


class Drawn:
    """The PNG of a figure drawn before from the same inputs (``curves_drawn_once``)."""

    def __init__(self, png: bytes):
        self.png = png


@pytest.fixture(scope="module", autouse=True)
def curves_drawn_once():
    """The per-epoch curves likewise: drawn once per distinct history and title (what ``curves_figure`` is given;
    most damaged records keep the real record's), then written from those bytes; a history or title a damage changes
    is drawn as before, errors included. The gate regions, where the views' damage is, are always drawn."""
    from moe.pictures import run_report, view_plots
    from moe.records.files import atomic_write_bytes

    drawn: dict[str, bytes] = {}
    curves_figure, save_png = view_plots.curves_figure, run_report.save_png

    def curves(runs, title=None):
        key = json.dumps([runs, title])
        if key in drawn:
            return Drawn(drawn[key])
        fig = curves_figure(runs, title)
        fig.drawn_once_key = key  # kept with the figure until it is saved
        return fig

    def save(fig, path):
        if isinstance(fig, Drawn):
            return atomic_write_bytes(path, fig.png)
        written = save_png(fig, path)
        if (key := getattr(fig, "drawn_once_key", None)) is not None:
            drawn[key] = Path(written).read_bytes()
        return written

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(view_plots, "curves_figure", curves)
        mp.setattr(run_report, "save_png", save)
        yield


def outcome(tmp_path, capsys, record) -> int:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    code = run_report.main([str(path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    if code == 2:
        lines = captured.err.splitlines()
        assert len(lines) == 1 and "error: " in lines[0] and "not a run record" in lines[0], captured.err
    else:
        assert code == 0 and not captured.err
    return code


def test_the_real_record_is_reported(tmp_path, capsys, real_record):
    assert {"history", "views", "ablation", "routing_dynamics"} <= real_record.keys()
    assert outcome(tmp_path, capsys, real_record) == 0
    assert (tmp_path / "out" / "run.ablation.png").exists() and (tmp_path / "out" / "run.curves.png").exists()


@pytest.mark.parametrize("field", ["history", "views", "ablation", "routing_dynamics", "timing", "versions", "status",
                                   "error", "allocation", "test", "dataset", "config"])
def test_a_field_of_the_wrong_type_or_shape_is_one_line(tmp_path, capsys, real_record, field):
    refused = 0
    for value in WRONG:
        refused += outcome(tmp_path, capsys, {**real_record, field: value}) == 2
    assert refused  # each field has some wrong value that is refused (not silently drawn)


@pytest.mark.parametrize("view", ["gate_regions"])
def test_a_view_of_the_wrong_shape_is_one_line(tmp_path, capsys, real_record, view):
    assert view in real_record["views"]
    for key in real_record["views"][view]:
        for value in WRONG:
            views = {**real_record["views"], view: {**real_record["views"][view], key: value}}
            outcome(tmp_path, capsys, {**real_record, "views": views})


@pytest.mark.parametrize("text", ["[" * 100_000, '{"schema": 1' + "1" * 5000 + "}"])
def test_json_beyond_the_parser_limits_is_one_line(tmp_path, capsys, text):
    path = tmp_path / "run.json"
    path.write_text(text)
    assert run_report.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not JSON" in err
