"""Two real sweeps at once, end to end: two drivers (subprocesses, each with its own local Ray) started together
into the same --out, and two --resume of one directory started together. One is refused with one line naming
the other's PID (exit 2, before it starts Ray); the other finishes, and the directory holds its sweep intact:
its sweep.json, one record per trial, the same numbers a lone run gives."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.sweep import runner

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(runner.__file__).parents[2]
GRID = {"budget": {"epochs": 2, "n_train": 240, "n_test": 120},  # 3 trials: one to rerun between two kept
        "grid": {"router": ["softmax"], "experts": [2, 3, 4], "seed": [0]}}


def together(argvs: list[list[str]], tmp_path: Path, ray_helpers) -> list[dict]:
    """Start the commands at once (each with its own Ray temporary directory); their pid, exit status and output."""
    env_extra, wait_gone = ray_helpers
    procs, ray_tmps = [], []
    try:
        for i, argv in enumerate(argvs):
            ray_tmps.append(tempfile.mkdtemp(prefix=f"rtw{i}", dir="/tmp"))
            env = {**os.environ, **env_extra, "RAY_TMPDIR": ray_tmps[-1]}
            env.pop("RAY_ADDRESS", None)
            log = (tmp_path / f"driver{i}.log").open("w+")
            procs.append((subprocess.Popen([sys.executable, "-m", "bench.sweep", *argv], cwd=ROOT, env=env,
                                           stdout=log, stderr=subprocess.PIPE, text=True), log))
        done = []
        for proc, log in procs:
            _, err = proc.communicate(timeout=600)
            log.seek(0)
            done.append({"pid": proc.pid, "rc": proc.returncode, "out": log.read(), "err": err})
        return done
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
        for d in ray_tmps:
            for pid, _ in wait_gone(d, timeout=5):
                os.kill(pid, signal.SIGKILL)
            subprocess.run(["rm", "-rf", d])


def records(out: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def numbers(rec: dict) -> tuple:
    return [{k: v for k, v in h.items() if k != "epoch_s"} for h in rec["history"]], rec["test"], rec["validation"]


def winner_and_refused(results: list[dict], flag: str, out: Path) -> tuple[dict, dict]:
    """The one that finished and the one refused, with its one line naming the winner's PID."""
    assert sorted(r["rc"] for r in results) == [0, 2], results
    won, lost = sorted(results, key=lambda r: r["rc"])
    lines = [ln for ln in lost["err"].splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in lost["err"] + lost["out"], lost
    assert lines[0].startswith(f"error: {flag} {out}: another process writes there now (PID {won['pid']}); "), lines[0]
    assert "Traceback" not in won["err"] + won["out"] and "runs: 3 ok" in won["out"], won
    return won, lost


def test_two_sweeps_into_one_out_and_two_resumes_of_one_directory(sweep_file, tmp_path, ray_helpers):
    out = tmp_path / "out"
    a, b = sweep_file("a", **GRID), sweep_file("b", **{**GRID, "grid": {**GRID["grid"], "router": ["topk[k=2]"]}})
    # two different sweeps (a: softmax, b: topk) into one --out, started together
    won, _ = winner_and_refused(together([[a, "--out", str(out), "--stack-seeds", "off"],
                                          [b, "--out", str(out), "--stack-seeds", "off"]], tmp_path, ray_helpers),
                                "--out", out)
    name = json.loads((out / "sweep.json").read_text())["sweep"]["name"]
    first = records(out)
    assert sorted(first) == [0, 1, 2] and {r["config"]["router"] for r in first.values()} == {
        "softmax" if name == "a" else "topk"}  # one sweep's records only: nothing of the refused one
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("ray")) == ["ray"]  # one Tune experiment
    # two --resume of one directory whose trial 1 lost its record, started together
    (out / "records" / "0001.json").unlink()
    winner_and_refused(together([["--resume", str(out)], ["--resume", str(out)]], tmp_path, ray_helpers),
                       "--resume", out)
    again = records(out)
    assert sorted(again) == [0, 1, 2]
    assert again[0] == first[0] and again[2] == first[2]  # the records kept are untouched
    assert numbers(again[1]) == numbers(first[1])  # the trial trained once more, to the same numbers
    assert len([p for p in out.iterdir() if p.name.startswith("ray")]) == 2  # one more experiment, not two
