"""Sweeps through real Ray Tune on the session's shared local instance: a tiny sweep with a trial that
raises and one that diverges, resume after an interrupted run, ASHA, and a refused resource request."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import pipeline
from bench.sweep import cli, runner
from bench.sweep.cluster import ResourceError
from bench.sweep.spec import SweepError
from tests.conftest import ray_processes, wait_gone

pytestmark = [pytest.mark.ray,
              pytest.mark.usefixtures("shared_figures")]  # the report's figures: drawn once per test run (conftest)


def killed_and_gone(proc: subprocess.Popen, ray_tmp: str) -> list[tuple[int, str]]:
    """After a driver's SIGKILL (or a failure before it): the driver killed if still alive, then what of its Ray
    instance is still alive after 20 s (conftest's ``wait_gone``: the sweep's reaper should have ended it all); those
    are killed here, never left behind, and the instance's folder removed."""
    if proc.poll() is None:
        proc.kill()
    left = wait_gone(ray_tmp)
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", ray_tmp])
    return left


def records(out: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def test_tiny_sweep_with_an_error_and_a_divergence(ray_local, sweep_file, tmp_path, capsys):
    out = tmp_path / "out"
    runs = pipeline.run_sweep(sweep_file(), out=out, faults={1: "raise", 3: "diverge"})
    printed = capsys.readouterr().out

    # one tidy row per trial, in trial order, with its status
    assert list(runs["index"]) == [0, 1, 2, 3]
    assert list(runs["status"]) == ["ok", "error", "ok", "diverged"]
    assert list(runs["name"]) == ["softmax[experts=2]"] * 2 + ["topk[k=2,experts=2]"] * 2
    err = runs.iloc[1]
    assert err["error"] == "InjectedFault: injected fault in trial 1 (softmax[experts=2])"
    assert err["failures"] == 2  # tried, retried once (--max-failures 1), then kept as an error row
    div = runs.iloc[3]
    assert div["epochs_run"] == 1 and div["accuracy"] == div["accuracy"]  # stopped at epoch 1, still scored
    ok = runs[runs["status"] == "ok"]
    assert (ok["epochs_run"] == 2).all() and ok["accuracy"].between(0, 1).all() and ok["nmi"].notna().all()
    assert (ok["threads"] == 1).all()  # torch threads = the trial's CPU share
    assert ok["trial_s"].gt(0).all() and ok["node_id"].notna().all()

    # every file of the results directory, and the same runs table on disk
    for f in ("sweep.json", "runs.csv", "table.md", "table.tex", "pareto.csv", "tradeoff.png",
              "heatmaps/softmax.png", "heatmaps/topk.png", "ray/tuner.pkl"):
        assert (out / f).exists(), f
    on_disk = pd.read_csv(out / "runs.csv")
    assert list(on_disk["status"]) == list(runs["status"]) and "cheating_index" in on_disk and "seed" in on_disk
    md = (out / "table.md").read_text()
    assert "| `softmax[experts=2]` | 1/2 (1 error) |" in md and "| `topk[k=2,experts=2]` | 1/2 (1 diverged) |" in md
    assert records(out)[0]["test_assignment"] and len(records(out)[0]["test_assignment"]) == 120

    # quiet progress: one line per finished trial with an ETA, one retry line, no Ray chatter
    lines = [ln for ln in printed.splitlines() if ln.startswith("[")]
    assert len(lines) == 4 and all("ETA" in ln for ln in lines) and lines[-1].startswith("[4/4]")
    assert sum("retry" in ln for ln in printed.splitlines()) == 1
    assert "Trial status" not in printed and "╭" not in printed

    # the CLI's closing report: the table, the overhead ratio, exit 0
    assert cli.report(runs) == 0
    closing = capsys.readouterr().out
    assert "overhead ratio" in closing and "1 error" in closing and "2 ok" in closing


def test_resume_after_an_interrupted_sweep(ray_local, sweep_file, tmp_path, capsys):
    out = tmp_path / "out"
    # 4 trials, one at a time (one trial worker per run, reused by its trials): the Ctrl-C comes once the first 2
    # have finished, while the third runs
    path = sweep_file(grid={"router": ["softmax"], "experts": [2, 3], "seed": [0, 1]}, resources={"cpu": 1, "max_concurrent": 1})
    first = pipeline.run_sweep(path, out=out, _interrupt_after=2)  # a Ctrl-C once 2 trials have finished
    assert first.attrs["interrupted"]
    assert cli.report(first) == 130
    assert "--resume" in capsys.readouterr().out
    before = records(out)
    assert 2 <= len(before) < 4 and (out / "table.md").exists()  # partial tables are written

    again = pipeline.run_sweep(resume=out)  # the name is taken from the directory
    after = records(out)
    assert sorted(after) == list(range(4)) and list(again["index"]) == list(range(4))
    assert again["status"].eq("ok").all() and again["index"].is_unique
    for i, rec in before.items():  # finished trials were not run again
        assert after[i]["bench"]["trial_id"] == rec["bench"]["trial_id"]
        assert after[i]["bench"]["started_at"] == rec["bench"]["started_at"]
    assert (out / "ray").is_dir() and (out / "ray-resume-1").is_dir()
    assert again.attrs["n_run"] == 4 - len(before)

    # nothing left to do: no Ray work, same table
    done = pipeline.run_sweep(path, resume=out)
    assert done.attrs["n_run"] == 0 and len(done) == 4
    with pytest.raises(SweepError, match="holds sweep 'tiny', not 'smoke'"):
        pipeline.run_sweep("smoke", resume=out)
    with pytest.raises(SweepError, match="already holds a sweep"):
        pipeline.run_sweep(path, out=out)


def test_asha_stops_weak_trials_early(ray_local, sweep_file, tmp_path):
    out = tmp_path / "out"
    # one trial at a time, in grid order: the good rate sets the rung before the hopeless ones reach it
    # (with parallel trials, whether a weak trial meets a rung before any strong one is a race)
    path = sweep_file(budget={"epochs": 4, "n_train": 240, "n_test": 120}, resources={"cpu": 1, "max_concurrent": 1},
                      grid={"router": ["softmax"], "experts": [2], "lr": [0.05, 1e-5, 2e-5, 0.02], "seed": [0]})
    runs = pipeline.run_sweep(path, out=out, scheduler="asha", quiet=True)
    assert len(runs) == 4 and set(runs["status"]) <= {"ok", "stopped"}
    stopped = runs[runs["status"] == "stopped"]
    assert len(stopped) >= 1 and 0.05 not in set(stopped["lr"])  # a hopeless learning rate goes, the best stays
    assert (stopped["accuracy"].notna()).all()

    # a stopped trial is scored like an ok one, from the model of its last finished epoch (its checkpoint)
    for col in ("nmi", "purity", "router_only_accuracy", "loss", "busiest_share"):  # (cheating_index: NaN at chance accuracy)
        assert stopped[col].notna().all(), col
    assert stopped["allocation"].notna().all() and (stopped["epochs_run"] < 4).all()
    from moe.data import load_dataset
    from moe.records.record import jsonable
    from moe.training.loop import run

    for index in stopped["index"]:
        rec = records(out)[index]
        k = rec["bench"]["scored_from_epoch"]
        assert k == rec["bench"]["epochs_run"] == len(rec["history"]) and "not_scored" not in rec["bench"]
        cut = run(rec["config"], data=load_dataset("gm6"), on_epoch=lambda m, k=k: m["epoch"] == k)  # the same run, cut there
        assert rec["test"] == jsonable(cut["test"]) and rec["test_assignment"] == cut["test_assignment"]  # bitwise on the CPU
    assert not list(out.glob("ray*/trial_*/checkpoint_*"))  # read, then deleted


def test_a_request_larger_than_the_cluster_is_refused(ray_local, sweep_file, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ResourceError, match=r"asks for 64 CPU\(s\) but the largest node of the cluster has 2"):
        pipeline.run_sweep(sweep_file(), out=tmp_path / "out", **{"resources.cpu": 64})
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "out" / "ray").exists()


def test_resume_after_the_driver_was_killed(ray_local, sweep_file, tmp_path, ray_helpers):
    """SIGKILL the driver of a sweep (its own local Ray, private RAY_TMPDIR) once 2 trials have records,
    then resume on the session's instance: the 2 finished trials are kept, the rest run once. Nothing the killed
    driver started outlives it by 20 s: Ray's processes (retitled, or still starting), its figure workers
    (bench.sweep.cluster's reaper)."""
    env_extra, _ = ray_helpers
    out = tmp_path / "out"
    # 4 trials, one at a time (one trial worker per run, reused by its trials): the kill comes once the first 2 have
    # records, while the third runs
    path = sweep_file(budget={"epochs": 3, "n_train": None, "n_test": 120}, resources={"cpu": 1, "max_concurrent": 1},
                      grid={"router": ["softmax"], "experts": [2, 3], "seed": [0, 1]})
    ray_tmp = tempfile.mkdtemp(prefix="rbk", dir="/tmp")
    env = {**os.environ, **env_extra, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    env.pop("MOE_FIGURE_WORKERS", None)  # a worker drawing ahead, as a user's sweep has (tests/conftest.py)
    log = tmp_path / "driver.log"  # the killed driver's own output, shown if the test fails
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", path, "--out", str(out), "--stack-seeds", "off"], cwd=Path(runner.__file__).parents[2],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # generous: a loaded machine starts Ray slowly
        while len(list((out / "records").glob("*.json"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        left = killed_and_gone(proc, ray_tmp)
    assert not left, f"processes of the killed driver's Ray survived: {left}"
    before = records(out)
    assert 2 <= len(before) < 4 and not (out / "runs.csv").exists(), f"{len(before)} records; driver output:\n{log.read_text()}"

    runs = pipeline.run_sweep(path, resume=out, quiet=True)
    after = records(out)
    assert sorted(after) == list(range(4)) and list(runs["index"]) == list(range(4)) and runs["status"].eq("ok").all()
    for i, rec in before.items():
        assert after[i]["bench"]["started_at"] == rec["bench"]["started_at"]
    assert runs.attrs["n_run"] == 4 - len(before)


CHILD_DRIVER = r"""
import os, subprocess, sys, time
import ray
from bench.sweep import cluster

assert cluster.connect(None, verbose=False)

@ray.remote(num_cpus=0)
def start_child():  # what a trial may start and leave running (no longer its child: Ray does not end it)
    return int(subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True).stdout)

print(ray.get(start_child.remote()), flush=True)
time.sleep(600)
"""


def test_a_killed_drivers_local_instance_ends_with_everything_it_started(tmp_path, ray_helpers):
    """SIGKILL a driver that started its own local instance (bench.sweep.cluster.connect) once a Ray worker has
    started a child of its own: within 20 s nothing of that instance is left, neither Ray's processes (workers,
    agents) nor the child, which nothing of Ray's would ever end (its reaper, cluster.reap_when_gone, does)."""
    env_extra, _ = ray_helpers
    ray_tmp = tempfile.mkdtemp(prefix="rbr", dir="/tmp")
    env = {**os.environ, **env_extra, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "driver.log"
    proc = subprocess.Popen([sys.executable, "-c", CHILD_DRIVER], cwd=Path(runner.__file__).parents[2], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # a loaded machine starts Ray slowly
        while not log.read_text().strip() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        printed = log.read_text()
        assert proc.poll() is None and printed.strip(), f"the driver ended or printed nothing:\n{printed}"
        child = int(printed.split()[0])  # the pid of the worker's child: one of the instance's processes
        commands = [cmd for _, cmd in ray_processes(ray_tmp)]
        assert child in {pid for pid, _ in ray_processes(ray_tmp)}, printed
        assert [c for c in commands if "gcs_server" in c] and [c for c in commands if "raylet" in c], commands
        # neither the autoscaler's monitor nor (a run that is not verbose) the log monitor (bench.sweep.head_node)
        assert not [c for c in commands if "monitor.py" in c], commands
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        left = killed_and_gone(proc, ray_tmp)
    assert not left, f"processes of the killed driver's Ray survived: {left}"
