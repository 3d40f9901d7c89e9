"""Where a sweep writes and what a resume reads (issue #12): ``--out`` checked before any work (nothing of
another directory overwritten or adopted), damaged records set aside and their trials rerun, a damaged
sweep.json a clear error, bench.table skipping bad records. No Ray: the runner's Tune run is replaced by
a stand-in that records which trials it was given."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import bench.table.cli
from bench import pipeline
from bench.sweep import cli, runner
from bench.sweep.layout import SweepDir

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)


def stored(i: int, status: str = "ok", accuracy: float = 0.5) -> dict:
    """A sound record of trial i of the TINY sweep (2 configurations x 2 seeds)."""
    name = "softmax[experts=2]" if i < 2 else "topk[k=2,experts=2]"
    return {"schema": 1, "status": status, "error": "boom" if status == "error" else None,
            "config": {"router": name.split("[")[0], "experts": 2, "seed": i % 2}, "history": [{"epoch": 1}],
            "test": {"accuracy": accuracy} if status != "error" else {}, "allocation": None, "timing": {},
            "versions": {}, "bench": {"index": i, "name": name, "trial_s": 1.0}}


@pytest.fixture
def fake_tune(monkeypatch):
    """Stands in for the Tune run: writes an ok record for each trial it is given; ``calls`` lists their indices."""
    calls: list[list[int]] = []

    def run_trials(sweep, trials, todo, folder, options, *, n_done, datasets=None):
        calls.append(sorted(t.index for t in todo))
        for t in todo:
            folder.write_record(t.index, stored(t.index, accuracy=0.9))
        return {"n_run": len(todo), "wall_s": 1.0, "trial_s": float(len(todo)), "slots": 1, "overhead": 1.0}

    monkeypatch.setattr(runner, "_tune_trials", run_trials)
    return calls


@pytest.fixture
def sweep_dir(sweep_file, tmp_path):
    """A TINY sweep directory as a run leaves it: sweep.json and a sound record for each of its 4 trials."""
    sweep, trials = runner.prepare(sweep_file())
    folder = SweepDir(tmp_path / "out")
    folder.create(sweep, trials)
    for i in range(4):
        folder.write_record(i, stored(i))
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


# ---- --out -----------------------------------------------------------------------------------------

def test_out_into_a_directory_that_is_not_a_sweep_is_refused_and_nothing_there_changes(
        sweep_file, tmp_path, capsys, fake_tune):
    out = tmp_path / "mine"
    (out / "records").mkdir(parents=True)
    (out / "records" / "0001.json").write_text(json.dumps(stored(1, accuracy=0.123)))  # a stray record
    (out / "runs.csv").write_text("my,own\n1,2\n")
    (out / "table.md").write_text("# my notes\n")
    before = snapshot(out)
    line = one_error(capsys, [sweep_file(), "--out", str(out)])
    assert "non-empty directory that holds no sweep" in line and "--resume DIR" in line and "new or empty" in line
    assert snapshot(out) == before and not fake_tune  # nothing overwritten, nothing adopted, nothing run


def test_out_into_a_directory_with_a_foreign_sweep_json_is_refused(sweep_file, tmp_path, capsys, fake_tune):
    out = tmp_path / "other"
    out.mkdir()
    (out / "sweep.json").write_text('{"something": "else"}')
    assert "sweep.json is damaged" in one_error(capsys, [sweep_file(), "--out", str(out)])
    assert (out / "sweep.json").read_text() == '{"something": "else"}' and not fake_tune


@pytest.mark.slow  # runs sweep trials in-process
def test_out_into_an_empty_or_new_directory_runs(sweep_file, tmp_path, fake_tune, capsys):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert cli.main([sweep_file(), "--out", str(out)]) == 0
        assert SweepDir(out).is_sweep() and sorted(SweepDir(out).finished_indices()) == [0, 1, 2, 3]
    assert fake_tune == [[0, 1, 2, 3]] * 2


def test_out_under_a_file_or_being_a_file_is_one_line(sweep_file, tmp_path, capsys, fake_tune):
    f = tmp_path / "a-file"
    f.write_text("x")
    assert f"{f} is a file, not a directory" in one_error(capsys, [sweep_file(), "--out", str(f / "sub" / "out")])
    assert "a file, not a directory" in one_error(capsys, [sweep_file(), "--out", str(f)])
    assert f.read_text() == "x" and not fake_tune


def unwritable(tmp_path: Path) -> Path:
    """A folder nobody here may write into: a read-only directory, or /sys for root (who ignores modes)."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        return ro
    try:
        (Path("/sys") / "relb-probe").mkdir()
    except OSError:
        return Path("/sys")
    (Path("/sys") / "relb-probe").rmdir()
    pytest.skip("no unwritable folder on this machine")


def test_out_that_cannot_be_written_is_one_line(sweep_file, tmp_path, capsys, fake_tune):
    folder = unwritable(tmp_path)
    line = one_error(capsys, [sweep_file(), "--out", str(folder / "relb-never" / "out")])
    assert f"cannot write in {folder}" in line and not fake_tune
    assert not (folder / "relb-never").exists()


# ---- --resume: damaged records ---------------------------------------------------------------------

@pytest.mark.slow  # runs sweep trials in-process
def test_a_record_cut_short_is_set_aside_and_its_trial_rerun(sweep_dir, fake_tune, capsys):
    cut = json.dumps(stored(1))[:40].encode()
    sweep_dir.record_path(1).write_bytes(cut)  # what a crash in the middle of a (non-atomic) write leaves
    assert 1 not in sweep_dir.finished_indices()
    runs = pipeline.run_sweep(resume=sweep_dir.root)
    assert fake_tune == [[1]] and list(runs["status"]) == ["ok"] * 4
    kept = sweep_dir.damaged_dir / "0001.1.json"
    assert kept.read_bytes() == cut  # kept as it was, under a new name
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "0001.json is damaged (not valid JSON" in warnings[0] and str(kept) in warnings[0]


@pytest.mark.parametrize("content,problem", [
    ("[1]", "not a JSON object (a JSON list)"),
    ('{"status": "fine"}', "status 'fine' is not one of ok, diverged, error, stopped"),
    ('{"status": "ok", "test": [1]}', "test: expected a JSON object, got list"),
    ('{"status": "ok", "bench": {"index": 3}}', "bench.index 3 is not the trial of its file name (2)"),
    ('{"status": "ok", "status": "error"}', "duplicate key 'status'"),
    ("", "not valid JSON"),
])
@pytest.mark.slow  # runs sweep trials in-process
def test_a_record_of_the_wrong_shape_is_set_aside_in_resume(sweep_dir, fake_tune, capsys, content, problem):
    sweep_dir.record_path(2).write_text(content)
    pipeline.run_sweep(resume=sweep_dir.root)
    assert fake_tune == [[2]]
    assert (sweep_dir.damaged_dir / "0002.1.json").read_text() == content
    assert problem in capsys.readouterr().err
    assert json.loads(sweep_dir.record_path(2).read_text())["test"]["accuracy"] == 0.9  # rerun


@pytest.mark.slow  # runs sweep trials in-process
def test_a_wrong_shape_record_is_set_aside_with_retry_errors_too(sweep_dir, fake_tune, capsys):
    sweep_dir.record_path(2).write_text("[1]")
    sweep_dir.write_record(3, stored(3, "error"))
    pipeline.run_sweep(resume=sweep_dir.root, retry_errors=True)
    assert fake_tune == [[2, 3]]
    assert (sweep_dir.damaged_dir / "0002.1.json").read_text() == "[1]"
    assert json.loads((sweep_dir.errors_dir / "0003.1.json").read_text())["status"] == "error"
    # set aside twice: the first one stays
    sweep_dir.record_path(2).write_text("[2]")
    pipeline.run_sweep(resume=sweep_dir.root)
    assert (sweep_dir.damaged_dir / "0002.1.json").read_text() == "[1]"
    assert (sweep_dir.damaged_dir / "0002.2.json").read_text() == "[2]"


def test_bench_table_skips_and_reports_bad_records(sweep_dir, capsys):
    sweep_dir.record_path(1).write_text("[1]")
    sweep_dir.record_path(3).write_text('{"status": "ok", "conf')
    assert bench.table.cli.main([str(sweep_dir.root), "--no-plots"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: skipping ") for w in warnings)
    assert "0001.json: not a JSON object" in warnings[0] and "0003.json: not valid JSON" in warnings[1]
    assert "2 runs" in captured.out and "Traceback" not in captured.err
    assert sweep_dir.record_path(1).read_text() == "[1]"  # bench.table reads; it moves nothing


# ---- --resume: a damaged sweep.json ----------------------------------------------------------------

@pytest.mark.parametrize("content", [
    '{"sweep": {"name": "tiny", "grid"',  # cut short
    "[1]",
    '{"sweep": {"name": "tiny", "grid": {}}, "trials": 5}',
    '{"sweep": {"name": "tiny", "grid": {}}, "trials": [{"index": 0, "name": "a", "config": {}, "extra": 1}]}',
    '{"sweep": {"name": "tiny", "grid": {}}, "trials": [{"index": 1, "name": "a", "config": {}, "fault": null}]}',
    '{"sweep": {"name": "tiny", "grid": {}}, "trials": [{"index": 0, "name": "a", "fault": null}]}',
    '{"sweep": {"grid": {}}, "trials": []}',
    '{"sweep": {"name": "tiny", "name": "x", "grid": {}}, "trials": []}',
    "\x00\x01binary",
])
def test_a_damaged_sweep_json_is_one_line_naming_it(sweep_dir, fake_tune, capsys, content):
    sweep_dir.meta_path.write_text(content)
    line = one_error(capsys, ["--resume", str(sweep_dir.root)])
    assert f"{sweep_dir.meta_path} is damaged" in line and not fake_tune
    assert one_error(capsys, ["--resume", str(sweep_dir.root), "--retry-errors"]) == line
    assert bench.table.cli.main([str(sweep_dir.root), "--no-plots"]) == 0  # the tables need no sweep.json
    assert sweep_dir.sweep_meta() == {}


def test_a_sweep_json_with_an_invalid_sweep_is_one_line_naming_it(sweep_dir, fake_tune, capsys):
    state = json.loads(sweep_dir.meta_path.read_text())
    state["sweep"]["resources"] = [1]
    sweep_dir.meta_path.write_text(json.dumps(state))
    line = one_error(capsys, ["--resume", str(sweep_dir.root)])
    assert str(sweep_dir.meta_path) in line and "resources: must be a mapping" in line and not fake_tune


def test_a_report_page_that_fails_to_build_costs_nothing_written(sweep_file, tmp_path, fake_tune, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no page today")

    monkeypatch.setattr(pipeline, "write_sweep_report", broken)
    out = tmp_path / "out"
    assert cli.main([sweep_file(), "--out", str(out)]) == 0  # the sweep itself succeeded
    assert sorted(SweepDir(out).finished_indices()) == [0, 1, 2, 3] and (out / "runs.csv").is_file()
    err = capsys.readouterr().err
    assert "warning: report.html not written (RuntimeError: no page today)" in err
    assert f"python -m bench.report {out}" in err and "Traceback" not in err
