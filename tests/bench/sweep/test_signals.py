"""Every way a sweep can stop ends in one message that says what is safe and how to continue, never a traceback:
Ctrl-C before the directory exists or before any trial finished, SIGTERM of the driver (as Ctrl-C), a full or
read-only disk, a lost cluster. The first tests stand in for the Tune run; the last ones signal a real driver
(a subprocess with its own local Ray) and are in the slow tier."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench import pipeline
from bench.sweep import cli, lock, runner
from bench.sweep.layout import SweepDir
from tests.bench.sweep.test_out_and_resume import stored

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)

ROOT = Path(runner.__file__).parents[2]


TUNE_TEXT = "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\nValueError: the head node is gone\n"


def wrapped(err: OSError) -> Exception:
    """``err`` as Ray Tune passes it on: the context of a TuneError whose text is a traceback."""
    try:
        raise err
    except OSError:
        try:
            raise RuntimeError(TUNE_TEXT)
        except RuntimeError as outer:
            return outer


def stop_message(capsys, argv, code) -> str:
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    (line,) = [ln for ln in captured.err.splitlines() if ln.strip()]
    return line


@pytest.mark.parametrize("raised, code, needle", [
    (OSError(errno.ENOSPC, "No space left on device", "records/0002.json"), 3, "stopped: cannot write (records/0002.json): No space"),
    (OSError(errno.EROFS, "Read-only file system"), 3, "stopped: cannot write: Read-only file system"),
    (RuntimeError("the head node is gone"), 3, "stopped: RuntimeError: the head node is gone"),
    # Ray Tune wraps an error of the driver's callbacks (a record written to a full disk) in a TuneError whose text
    # is a traceback: the disk is named, and no traceback text is echoed
    (wrapped(OSError(errno.ENOSPC, "No space left on device", "records/0002.json")), 3,
     "stopped: cannot write (records/0002.json): No space"),
    (RuntimeError(TUNE_TEXT), 3, "stopped: RuntimeError: ValueError: the head node is gone. Every"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_a_stop_while_trials_run_says_what_is_safe_and_how_to_continue(sweep_file, tmp_path, capsys, monkeypatch,
                                                                    raised, code, needle):
    def tune(sweep, trials, todo, folder, options, *, n_done, datasets=None):
        folder.write_record(0, stored(0))
        raise raised

    monkeypatch.setattr(runner, "_tune_trials", tune)
    out = tmp_path / "out"
    line = stop_message(capsys, [sweep_file(), "--out", str(out)], code)
    assert line.startswith(needle) and f"is safe" in line and line.endswith(f"--resume {out}")
    assert not lock.held(out) and SweepDir(out).finished_indices() == {0}
    monkeypatch.setattr(runner, "_tune_trials", lambda sweep, trials, todo, folder, options, **kw: (
        [folder.write_record(t.index, stored(t.index)) for t in todo],
        {"n_run": len(todo), "wall_s": 1.0, "trial_s": 1.0, "slots": 1, "overhead": 1.0})[1])
    assert cli.main(["--resume", str(out)]) == 0  # and the way out works
    assert SweepDir(out).finished_indices() == {0, 1, 2, 3}


def test_ctrl_c_before_the_directory_is_made_says_nothing_was_written(sweep_file, tmp_path, capsys, monkeypatch):
    def interrupted(trials):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "load_datasets", interrupted)
    monkeypatch.setattr(lock, "_LAST", [])
    line = stop_message(capsys, [sweep_file(), "--out", str(tmp_path / "out")], 130)
    assert "nothing was written; run the same command again" in line and not (tmp_path / "out").exists()


def test_a_disk_that_fails_before_the_directory_is_made_names_the_fix(sweep_file, tmp_path, capsys, monkeypatch):
    def read_only_home(trials):  # as Ray's start meets a read-only HOME
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "home" / ".ray"))

    monkeypatch.setattr(runner, "load_datasets", read_only_home)
    monkeypatch.setattr(lock, "_LAST", [])
    line = stop_message(capsys, [sweep_file(), "--out", str(tmp_path / "out")], 3)
    assert line == (f"stopped: cannot write ({tmp_path / 'home' / '.ray'}): Read-only file system, before the sweep "
                    "directory was made: nothing was written; free space or fix the permissions, then run the same "
                    "command again") and not (tmp_path / "out").exists()


def test_a_stop_before_any_trial_finished_builds_no_table_and_no_traceback(sweep_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "_tune_trials", lambda *a, **k: {"interrupted": True, "missing": [0, 1, 2, 3], "n_run": 0,
                                                                 "wall_s": 1.0, "trial_s": 0.0, "slots": 1, "overhead": 1.0})
    out = tmp_path / "out"
    assert cli.main([sweep_file(), "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out and f"--resume {out}" in captured.out
    assert "no trial finished" in captured.out


# ---- a real driver, signalled --------------------------------------------------------------------------------

def start_driver(path: str, out: Path, tmp_path: Path, ray_helpers) -> tuple[subprocess.Popen, Path, str]:
    env_extra, _ = ray_helpers
    ray_tmp = tempfile.mkdtemp(prefix="rsg", dir="/tmp")
    env = {**os.environ, **env_extra, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "driver.log"
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", path, "--out", str(out), "--stack-seeds", "off"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return proc, log, ray_tmp


def wait_for(condition, proc, timeout=300.0) -> None:
    deadline = time.monotonic() + timeout  # generous: a loaded machine starts Ray slowly
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)


def cleanup(proc, ray_tmp, ray_helpers) -> None:
    if proc.poll() is None:
        proc.kill()
    for pid, _ in ray_helpers[1](ray_tmp):
        os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", ray_tmp])


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("signum, when", [(signal.SIGTERM, "after_a_record"), (signal.SIGINT, "before_any_record")])
def test_a_signalled_driver_exits_130_with_one_message_and_resume_finishes(ray_local, sweep_file, tmp_path,
                                                                          ray_helpers, signum, when):
    out = tmp_path / "out"
    # 4 trials, one at a time (one trial worker per run, reused by its trials): 3 still to run at the first record
    path = sweep_file(budget={"epochs": 3, "n_train": None, "n_test": 120}, resources={"cpu": 1, "max_concurrent": 1},
                      grid={"router": ["softmax"], "experts": [2, 3], "seed": [0, 1]})
    proc, log, ray_tmp = start_driver(path, out, tmp_path, ray_helpers)
    try:
        if when == "after_a_record":
            wait_for(lambda: any((out / "records").glob("*.json")), proc)
        else:
            wait_for(lambda: "to run" in log.read_text(), proc)
        proc.send_signal(signum)
        code = proc.wait(timeout=120)
    finally:
        cleanup(proc, ray_tmp, ray_helpers)
    text = log.read_text()
    assert code == 130, text
    assert "Traceback" not in text and f"--resume {out}" in text, text
    assert lock.holder(out) in ("unknown", str(proc.pid))  # let go (or left to a dead process: taken over below)
    runs = pipeline.run_sweep(resume=out, quiet=True)
    assert sorted(runs["index"]) == list(range(4)) and runs["status"].eq("ok").all()


@pytest.mark.parametrize("raised", [
    "cluster",  # ResourceError: a dead address, a request the cluster cannot hold (checked once connected)
    "ray",  # anything else before a trial starts: Ray that cannot start (a read-only HOME), ...
])
def test_a_failed_start_leaves_nothing_and_the_same_command_runs(sweep_file, tmp_path, capsys, monkeypatch, raised):
    from bench.sweep.cluster import ResourceError

    def fail(*args, **kwargs):
        raise ResourceError("cannot reach a Ray cluster at '127.0.0.1:1'") if raised == "cluster" else PermissionError(
            13, "Permission denied", "ray-session")

    monkeypatch.setattr(runner, "_tune_trials", fail)
    out = tmp_path / "out"
    argv = [sweep_file(), "--out", str(out)]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert code == (2 if raised == "cluster" else 3) and not out.exists()
    if raised == "ray":
        assert "nothing was written; free space or fix the permissions, then run the same command again" in captured.err
    monkeypatch.setattr(runner, "_tune_trials", lambda sweep, trials, todo, folder, options, **kw: (
        [folder.write_record(t.index, stored(t.index)) for t in todo],
        {"n_run": len(todo), "wall_s": 1.0, "trial_s": 1.0, "slots": 1, "overhead": 1.0})[1])
    assert cli.main(argv) == 0 and SweepDir(out).finished_indices() == {0, 1, 2, 3}


def test_a_resume_the_cluster_cannot_hold_suggests_only_what_resume_accepts(sweep_file, tmp_path, capsys, monkeypatch):
    from bench.sweep.cluster import resolve_resources

    out = tmp_path / "out"
    monkeypatch.setattr(runner, "_tune_trials", lambda *a, **k: {"interrupted": True, "missing": [0, 1, 2, 3], "n_run": 0,
                                                                 "wall_s": 1.0, "trial_s": 0.0, "slots": 1, "overhead": 1.0})
    assert cli.main([sweep_file(), "--out", str(out)]) == 130
    for request in ({"cpu": 64}, {"cpu": 1, "gpu": 1}, {"cpu": 0.01}):
        def too_small(*args, request=request, **kwargs):
            resolve_resources({"gpu": "auto", **request}, [{"CPU": 2.0}], 100)

        monkeypatch.setattr(runner, "_tune_trials", too_small)
        capsys.readouterr()
        assert cli.main(["--resume", str(out)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert "--set" not in line and "--resume keeps the sweep's own resources" in line, line
    assert (out / "sweep.json").is_file()  # a resumed directory is never removed
