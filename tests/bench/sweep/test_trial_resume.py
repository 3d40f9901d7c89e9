"""Trials that resume from their last checkpoint, through real Ray Tune on the session's shared local
instance: after a crash that Tune retries, and after ``--resume`` of a sweep whose trial died. Either way
the record says ``resumed_from_epoch`` and holds the numbers of the same run never interrupted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import pipeline
from bench.sweep import runner
from bench.sweep.layout import SweepDir
from bench.sweep.spec import SweepError
from moe.data import load_dataset
from moe.records.record import jsonable
from moe.training.loop import run

pytestmark = [pytest.mark.ray,
              pytest.mark.usefixtures("shared_figures")]  # the report's figures: drawn once per test run (conftest)

# a noisy top-k gate: the resumed trial must restore the global torch generator, not only the shuffles; one trial at
# a time (one trial worker per run, reused by its trials, but for the one a crash ends)
NOISY = {"budget": {"epochs": 4, "n_train": 240, "n_test": 120}, "settings": {"noisy_gate": True},
         "resources": {"cpu": 1, "max_concurrent": 1},
         "grid": {"router": ["topk[k=2]"], "experts": [3], "seed": [0, 1]}}


def records(out: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def uninterrupted(record: dict) -> dict:
    """The same run in this process, from its complete config, never stopped."""
    return run(record["config"], data=load_dataset("gm6"))


def assert_same_numbers(record: dict, reference: dict) -> None:
    strip = lambda r: [{k: v for k, v in h.items() if k != "epoch_s"} for h in r["history"]]  # noqa: E731
    assert strip(record) == json.loads(json.dumps(strip(reference)))
    assert record["test"] == jsonable(reference["test"])  # as the record was written: NaN -> null
    assert record["test_assignment"] == reference["test_assignment"]


def checkpoints(out: Path, index: int) -> list[Path]:
    return sorted(out.glob(f"ray*/trial_{index:04d}/checkpoint_*"))


def test_a_retried_trial_resumes_from_its_last_checkpoint(ray_local, sweep_file, tmp_path):
    out = tmp_path / "out"
    runs = pipeline.run_sweep(sweep_file(**NOISY), out=out, faults={0: "crash_after_epoch_2"}, max_failures=1, quiet=True)
    assert list(runs["status"]) == ["ok", "ok"] and list(runs["failures"]) == [1, 0]
    assert runs["resumed_from_epoch"].iloc[0] == 2 and runs["resumed_from_epoch"].isna().iloc[1]  # runs.csv says it
    crashed, clean = records(out)[0], records(out)[1]
    assert crashed["resumed_from_epoch"] == 2 and crashed["bench"]["resumed_by"] == "retry"
    assert clean["resumed_from_epoch"] is None and clean["bench"]["checkpoints"] == "on"
    assert [h["epoch"] for h in crashed["history"]] == [1, 2, 3, 4]
    assert_same_numbers(crashed, uninterrupted(crashed))
    assert crashed["timing"]["train_s"] >= sum(h["epoch_s"] for h in crashed["history"])
    assert not checkpoints(out, 0) and not checkpoints(out, 1)  # finished trials keep no checkpoint


def test_resume_of_a_sweep_continues_a_dead_trial_from_its_checkpoint(ray_local, sweep_file, tmp_path):
    out = tmp_path / "out"
    path = sweep_file(**NOISY)
    first = pipeline.run_sweep(path, out=out, faults={1: "crash_after_epoch_3"}, max_failures=0, quiet=True)
    assert list(first["status"]) == ["ok", "error"]
    assert len(checkpoints(out, 1)) == 1  # only the latest is kept, and an error trial keeps it
    error = json.loads((out / "records" / "0001.json").read_text())

    again = pipeline.run_sweep(resume=out, retry_errors=True, quiet=True)
    assert list(again["status"]) == ["ok", "ok"] and again.attrs["n_run"] == 1
    assert json.loads((out / "records" / "errors" / "0001.1.json").read_text()) == error  # the error record is kept
    resumed = records(out)[1]
    assert resumed["resumed_from_epoch"] == 3 and resumed["bench"]["resumed_by"] == "resume"
    assert_same_numbers(resumed, uninterrupted(resumed))
    assert not checkpoints(out, 1)


# the language model on the KJV (a tiny one: the text, not the model, is what loads slowly); a noisy top-2 gate
TEXT = {"dataset": "kjv", "budget": {"epochs": 3, "n_train": 48, "n_test": 8},
        "settings": {"noisy_gate": True, "lm_width": 16, "lm_heads": 2, "context": 16, "experts": 4,
                     "expert_hidden": 16, "batch_size": 8},
        "grid": {"router": ["topk[k=2]"], "seed": [0]}}


def test_a_retried_language_model_trial_resumes_from_its_last_checkpoint(ray_local, sweep_file, tmp_path):
    out = tmp_path / "out"
    runs = pipeline.run_sweep(sweep_file(**TEXT), out=out, faults={0: "crash_after_epoch_2"}, max_failures=1, quiet=True)
    assert list(runs["status"]) == ["ok"] and list(runs["failures"]) == [1]
    crashed = records(out)[0]
    assert crashed["resumed_from_epoch"] == 2 and crashed["bench"]["resumed_by"] == "retry"
    assert [h["epoch"] for h in crashed["history"]] == [1, 2, 3]
    reference = json.loads(json.dumps(jsonable(run(crashed["config"]))))  # never stopped, as a record is written
    strip = lambda r: [{k: v for k, v in h.items() if k != "epoch_s"} for h in r["history"]]  # noqa: E731
    assert strip(crashed) == strip(reference)
    for key in ("validation", "test", "token_scores", "router_saturation", "causal"):
        assert crashed[key] == reference[key], key
    assert not checkpoints(out, 0)


def test_retry_errors_needs_resume_and_keeps_every_error_record(tmp_path):
    with pytest.raises(SweepError, match="--retry-errors goes with --resume"):
        pipeline.run_sweep("quick", out=tmp_path / "x", retry_errors=True)
    records_dir = tmp_path / "records"
    (records_dir / "errors").mkdir(parents=True)
    (records_dir / "errors" / "0003.1.json").write_text('{"status": "error", "error": "first"}')
    for index, status in ((2, "ok"), (3, "error"), (5, "diverged")):
        (records_dir / f"{index:04d}.json").write_text(json.dumps({"status": status, "bench": {"index": index, "name": "x"}}))
    assert SweepDir(tmp_path).set_aside_errors() == [3]
    assert sorted(p.name for p in records_dir.glob("*.json")) == ["0002.json", "0005.json"]
    assert json.loads((records_dir / "errors" / "0003.2.json").read_text())["status"] == "error"  # the first one stays
    assert json.loads((records_dir / "errors" / "0003.1.json").read_text())["error"] == "first"


def test_without_shared_storage_a_trial_reports_without_checkpoints(monkeypatch):
    """A local storage path on a multi-node cluster: Ray cannot store a worker node's checkpoint there."""
    from ray import tune

    from bench.sweep.trial import EpochReporter

    reported = []

    def report(metrics, checkpoint=None):
        if checkpoint is not None:
            raise RuntimeError("Unable to set up cluster storage with the following settings: ...")
        reported.append(metrics)

    monkeypatch.setattr(tune, "report", report)
    reporter = EpochReporter()
    for epoch in (1, 2):
        reporter.keep(b"state")
        reporter.report({"epoch": epoch, "train_loss": 0.5, "phase": "joint"})
    assert reported == [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.5}]
    assert reporter.checkpoints.startswith("off: the storage path is not shared")
