"""Through real Ray Tune (issue #12): a trial whose evaluation meets NaN is kept as a diverged row (not an
error, not retried), and records damaged after the run are set aside by --resume and their trials rerun."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import pipeline
from bench.sweep import runner

pytestmark = [pytest.mark.ray,
              pytest.mark.usefixtures("shared_figures")]  # the report's figures: drawn once per test run (conftest)


def records(out: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def test_divergence_in_evaluation_and_damaged_records_on_resume(ray_local, sweep_file, tmp_path, capsys):
    out = tmp_path / "out"
    # one trial at a time: one trial worker per run, reused by its trials (what is tested here is not concurrency)
    path = sweep_file(resources={"cpu": 1, "max_concurrent": 1})
    runs = pipeline.run_sweep(path, out=out, faults={1: "diverge_in_eval"}, quiet=True)
    assert list(runs["status"]) == ["ok", "diverged", "ok", "ok"]
    diverged = records(out)[1]
    assert diverged["bench"]["failures"] == 0  # a divergence is a result, not a failure to retry
    assert diverged["status"] == "diverged" and "error" in diverged
    before = records(out)

    cut = (out / "records" / "0000.json").read_bytes()[:50]
    (out / "records" / "0000.json").write_bytes(cut)  # what a crash mid-write leaves
    (out / "records" / "0002.json").write_text("[1]")  # valid JSON, not a record
    capsys.readouterr()
    again = pipeline.run_sweep(resume=out, quiet=True)
    assert list(again["status"]) == ["ok", "diverged", "ok", "ok"] and again.attrs["n_run"] == 2
    after = records(out)
    for i in (1, 3):  # untouched trials were not run again
        assert after[i]["bench"]["trial_id"] == before[i]["bench"]["trial_id"]
    for i in (0, 2):
        assert after[i]["status"] == "ok" and after[i]["bench"]["started_at"] > before[i]["bench"]["started_at"]
    assert (out / "records" / "damaged" / "0000.1.json").read_bytes() == cut
    assert (out / "records" / "damaged" / "0002.1.json").read_text() == "[1]"
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:") and "damaged" in ln]
    assert len(warnings) == 2
