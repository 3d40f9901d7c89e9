"""Growing a sweep by more seeds (``--resume DIR --add-seeds S,S``): the finished trials keep their indices and
records, one trial per configuration and new seed is appended, sweep.json lists the seeds of its trials and notes
the growth. The Tune run is the stand-in of test_out_and_resume, but for the one test through real Ray that checks a
grown sweep's new runs against the same seeds run from the start."""
from __future__ import annotations

import json

import pytest

from bench import pipeline
from bench.report.sweep import write_sweep_report
from bench.sweep import cli, runner
from bench.sweep.spec import Trial, grown_by_seeds
from tests.bench.sweep.test_out_and_resume import fake_tune, one_error, snapshot, sweep_dir  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)


def test_grown_by_seeds_appends_only_the_missing_seeds_in_configuration_order():
    trials = [Trial(0, "a", {"router": "softmax", "seed": 0}), Trial(1, "a", {"router": "softmax", "seed": 1}),
              Trial(2, "b", {"router": "topk", "seed": 0}), Trial(3, "b", {"router": "topk", "seed": 1})]
    grown = grown_by_seeds(trials, [1, 2, 3])
    assert grown[:4] == trials  # the trials there keep their indices
    assert [(t.index, t.name, t.config["seed"]) for t in grown[4:]] == [(4, "a", 2), (5, "a", 3), (6, "b", 2), (7, "b", 3)]
    assert grown[4].config == {"router": "softmax", "seed": 2} and grown[6].config == {"router": "topk", "seed": 2}
    assert grown_by_seeds(trials, [0, 1]) == trials  # nothing new: nothing added


def test_grown_by_seeds_reads_a_trial_without_a_seed_as_the_default_seed():
    trials = [Trial(0, "a", {"router": "softmax"})]
    assert [t.config.get("seed") for t in grown_by_seeds(trials, [0, 1])] == [None, 1]


def test_add_seeds_runs_only_the_new_trials_and_keeps_every_record(sweep_dir, fake_tune, capsys):
    before = snapshot(sweep_dir.root / "records")
    assert cli.main(["--resume", str(sweep_dir.root), "--add-seeds", "1,2,3"]) == 0
    assert fake_tune == [[4, 5, 6, 7]]  # seed 1 was there: seeds 2 and 3 of both configurations run
    after = snapshot(sweep_dir.root / "records")
    assert {k: v for k, v in after.items() if k in before} == before  # the finished records untouched
    meta = json.loads(sweep_dir.meta_path.read_text())
    assert [(t["index"], t["config"]["seed"]) for t in meta["trials"]][4:] == [(4, 2), (5, 3), (6, 2), (7, 3)]
    assert meta["sweep"]["grid"][0]["seed"] == [0, 1, 2, 3]
    assert meta["grown"][0]["seeds"] == [1, 2, 3] and meta["grown"][0]["trials"] == 4
    assert "seed(s) 1, 2, 3 added (4 trials)" in write_sweep_report(sweep_dir.root).read_text()
    assert "4 trial(s) added for seed(s) [1, 2, 3]; the 4 kept" in capsys.readouterr().out
    assert cli.main(["--resume", str(sweep_dir.root), "--add-seeds", "2"]) == 0  # again: nothing new to run
    assert fake_tune == [[4, 5, 6, 7]] and len(json.loads(sweep_dir.meta_path.read_text())["grown"]) == 1


@pytest.mark.parametrize("argv, needle", [
    (["--add-seeds", "2"], "--add-seeds goes with --resume DIR"),
    (["--resume", "DIR", "--add-seeds", "two"], "--add-seeds 'two': give seeds as non-negative integers"),
    (["--resume", "DIR", "--add-seeds", "-1"], "--add-seeds '-1': give seeds as non-negative integers"),
])
def test_bad_add_seeds_is_one_line_and_nothing_changes(sweep_dir, fake_tune, capsys, argv, needle):
    before = snapshot(sweep_dir.root)
    line = one_error(capsys, [str(sweep_dir.root) if a == "DIR" else a for a in argv])
    assert needle in line and fake_tune == [] and snapshot(sweep_dir.root) == before


def test_add_seeds_refused_after_a_change_writes_nothing(sweep_dir, fake_tune, capsys, monkeypatch):
    from bench.sweep import resume
    real = resume.versions  # where --resume reads the code's version
    monkeypatch.setattr(resume, "versions", lambda: {**real(), "git": "0000000"})
    before = snapshot(sweep_dir.root)
    line = one_error(capsys, ["--resume", str(sweep_dir.root), "--add-seeds", "2"])
    assert "the code differs" in line and snapshot(sweep_dir.root) == before and fake_tune == []


def records_by_configuration(out):
    """A sweep directory's records as {(configuration name, seed): (test scores, test assignment, validation)}:
    what a sweep grown afterwards must equal, whatever index each trial took."""
    recs = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    return {(r["bench"]["name"], r["config"]["seed"]): (r["test"], r["test_assignment"], r["validation"])
            for r in recs}


def trained_by_configuration(path: str, overrides: dict) -> dict:
    """:func:`records_by_configuration` of the sweep ``path`` with ``overrides`` run from the start with its seeds
    apart (--stack-seeds off), each trial trained here as its trial trains (``moe.training.loop.run`` of its
    config, as bench.sweep.trial calls it; test_resume_same_run and test_trial_resume hold a Ray trial's record to
    the same): not a second Ray sweep."""
    from moe.data import load_dataset
    from moe.records.record import jsonable
    from moe.training.loop import run

    data, out = load_dataset("gm6"), {}
    for t in runner.prepare(path, overrides)[1]:
        r = json.loads(json.dumps(jsonable(run(t.config, data=data))))  # as the record is written: NaN -> null
        out[(t.name, t.config["seed"])] = (r["test"], r["test_assignment"], r["validation"])
    return out


@pytest.mark.slow
@pytest.mark.ray
def test_a_grown_sweep_equals_the_sweep_run_with_all_its_seeds(ray_local, sweep_file, tmp_path):
    path = sweep_file(budget={"epochs": 2, "n_train": 240, "n_test": 120},
                      resources={"cpu": 1, "max_concurrent": 1},  # one trial worker per run, reused by its trials
                      grid={"router": ["softmax"], "experts": [2, 3], "seed": [0]})
    pipeline.run_sweep(path, out=tmp_path / "grown", stack_seeds="off", quiet=True)
    pipeline.run_sweep(resume=tmp_path / "grown", add_seeds=[1], quiet=True)

    grown, whole = records_by_configuration(tmp_path / "grown"), trained_by_configuration(path, {"seed": [0, 1]})
    assert len(grown) == 4 and grown == whole  # same seed, same numbers, whatever the trial's index
