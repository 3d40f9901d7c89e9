"""One writer per sweep directory, and --resume means the same run: a second writer (a sweep into the same --out,
two --resume of one directory) is refused with one line naming the first's PID; the lock of a dead process is
taken over; how the trials ran (--stack-seeds, --scheduler, --max-failures, --order) is saved in sweep.json and restored by --resume.
No Ray: the Tune run is replaced by the stand-in of test_out_and_resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.sweep import cli, lock, runner
from bench.sweep.layout import SweepDir
from bench.sweep.spec import SweepError
from tests.bench.sweep.test_out_and_resume import fake_tune, one_error, stored  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder():
    """Start a process that holds the writer lock of a directory (as a running sweep does); yields its Popen."""
    procs = []

    def start(folder: Path) -> subprocess.Popen:
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder / lock.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def made_sweep(sweep_file, root: Path, options=None) -> SweepDir:
    sweep, trials = runner.prepare(sweep_file())
    folder = SweepDir(root)
    folder.create(sweep, trials, options)
    folder.unlock()  # as the end of the run that made it does
    return folder


def test_a_second_resume_is_refused_naming_the_first_writer(sweep_file, tmp_path, capsys, holder, fake_tune):
    folder = made_sweep(sweep_file, tmp_path / "out")
    proc = holder(folder.root)
    line = one_error(capsys, ["--resume", str(folder.root)])
    assert f"another process writes there now (PID {proc.pid})" in line and line.startswith(f"error: --resume {folder.root}")
    assert fake_tune == [] and not folder.record_files()  # nothing trained, nothing written


def test_a_second_sweep_into_the_same_out_is_refused_naming_the_first(sweep_file, tmp_path, capsys, holder, fake_tune):
    out = tmp_path / "out"
    proc = holder(out)  # the first sweep has made the directory and holds it, before its sweep.json exists
    line = one_error(capsys, [sweep_file(), "--out", str(out)])
    assert f"(PID {proc.pid})" in line and fake_tune == []
    assert sorted(p.name for p in out.iterdir()) == [lock.LOCK_FILE]  # nothing of the first's was touched


def test_a_sweep_that_appears_between_the_check_and_the_creation_is_not_overwritten(sweep_file, tmp_path, fake_tune):
    first = made_sweep(sweep_file, tmp_path / "out")
    before = first.meta_path.read_bytes()
    sweep, trials = runner.prepare(sweep_file())
    with pytest.raises(SweepError, match="another sweep started there meanwhile"):
        SweepDir(first.root).create(sweep, trials)  # (its check_new_out passed before the first made the directory)
    assert first.meta_path.read_bytes() == before


def test_the_lock_of_a_dead_process_is_taken_over(sweep_file, tmp_path, capsys, holder, fake_tune):
    folder = made_sweep(sweep_file, tmp_path / "out")
    proc = holder(folder.root)
    proc.kill()
    proc.wait()
    assert lock.holder(folder.root) == str(proc.pid)  # the file still names the dead process
    assert cli.main(["--resume", str(folder.root)]) == 0
    assert fake_tune == [[0, 1, 2, 3]] and not lock.held(folder.root)  # let go at the end of the run
    assert lock.holder(folder.root) == "unknown"


def test_a_lock_is_held_for_the_whole_run_and_let_go_after(sweep_file, tmp_path, monkeypatch):
    seen = []

    def tune(sweep, trials, todo, folder, options, *, n_done, datasets=None):
        seen.append(lock.holder(folder.root))  # while the trials run
        for t in todo:
            folder.write_record(t.index, stored(t.index))
        return {"n_run": len(todo), "wall_s": 1.0, "trial_s": 1.0, "slots": 1, "overhead": 1.0}

    monkeypatch.setattr(runner, "_tune_trials", tune)
    out = tmp_path / "out"
    assert cli.main([sweep_file(), "--out", str(out)]) == 0
    assert seen == [str(os.getpid())] and lock.holder(out) == "unknown"


def test_how_the_trials_ran_is_saved_and_restored_by_resume(sweep_file, tmp_path, capsys, monkeypatch):
    given = []

    def tune(sweep, trials, todo, folder, options, *, n_done, datasets=None):
        given.append((options.stack_seeds, options.scheduler))
        return {"n_run": 0, "wall_s": 1.0, "trial_s": 1.0, "slots": 1, "overhead": 1.0}

    monkeypatch.setattr(runner, "_tune_trials", tune)
    out = tmp_path / "out"
    cli.main([sweep_file(), "--out", str(out), "--stack-seeds", "off"])  # interrupted: no record written
    assert json.loads((out / "sweep.json").read_text())["options"] == {"stack_seeds": "off", "scheduler": "fifo",
                                                                        "max_failures": 1, "order": "longest"}
    capsys.readouterr()
    cli.main(["--resume", str(out)])  # the command line's default would be auto: the saved off is restored
    assert given == [("off", None), ("off", None)]
    line = one_error(capsys, ["--resume", str(out), "--stack-seeds", "auto"])
    assert "ran with --stack-seeds off, not auto" in line and len(given) == 2
    cli.main(["--resume", str(out), "--stack-seeds", "off"])  # the same, said again: accepted
    assert len(given) == 3
    # a directory written before the options were saved: off (per trial, from each trial's checkpoint)
    state = json.loads((out / "sweep.json").read_text())
    del state["options"]
    (out / "sweep.json").write_text(json.dumps(state))
    cli.main(["--resume", str(out)])
    assert given[-1] == ("off", None)


def test_max_failures_and_order_are_saved_and_restored_by_resume(sweep_file, tmp_path, capsys, monkeypatch):
    given = []

    def tune(sweep, trials, todo, folder, options, *, n_done, datasets=None):
        given.append((options.max_failures, options.order))  # what reaches Ray Tune's FailureConfig, the start order
        return {"n_run": 0, "wall_s": 1.0, "trial_s": 1.0, "slots": 1, "overhead": 1.0}

    monkeypatch.setattr(runner, "_tune_trials", tune)
    saved = lambda: json.loads((out / "sweep.json").read_text())["options"]  # noqa: E731
    out = tmp_path / "out"
    cli.main([sweep_file(), "--out", str(out), "--max-failures", "3", "--order", "cheapest"])  # interrupted
    assert saved()["max_failures"] == 3 and saved()["order"] == "cheapest" and given == [(3, "cheapest")]
    cli.main(["--resume", str(out)])  # left out: those it ran with, not the command line's defaults 1 and longest
    assert given[-1] == (3, "cheapest")
    cli.main(["--resume", str(out), "--max-failures", "0"])  # another: used, and kept for the next resume
    assert given[-1] == (0, "cheapest") and saved()["max_failures"] == 0
    cli.main(["--resume", str(out), "--order", "longest"])
    assert given[-1] == (0, "longest") and saved()["order"] == "longest"
    cli.main(["--resume", str(out)])
    assert given[-1] == (0, "longest") and len(given) == 5
    capsys.readouterr()
    line = one_error(capsys, ["--resume", str(out), "--max-failures", "-1"])
    assert "--max-failures: must be an integer >= 0, got -1" in line and len(given) == 5 and saved()["max_failures"] == 0
    # a directory written before the options were saved: the defaults, 1 and longest
    state = json.loads((out / "sweep.json").read_text())
    del state["options"]
    (out / "sweep.json").write_text(json.dumps(state))
    cli.main(["--resume", str(out)])
    assert given[-1] == (1, "longest")
    # a new sweep without the flags: the defaults, saved
    cli.main([sweep_file(), "--out", str(tmp_path / "b")])
    assert given[-1] == (1, "longest")
    assert json.loads((tmp_path / "b" / "sweep.json").read_text())["options"] == {
        "stack_seeds": "auto", "scheduler": "fifo", "max_failures": 1, "order": "longest"}


def test_a_second_reproduction_into_the_same_directory_is_refused(tmp_path, holder, monkeypatch):
    from bench.reproduce import runner as reproduce_runner
    from bench.reproduce.runner import ReproduceError

    monkeypatch.setattr(reproduce_runner, "run_sweep", lambda *a, **k: pytest.fail("a sweep started"))
    out = tmp_path / "repro"
    proc = holder(out)
    with pytest.raises(ReproduceError, match=rf"another process writes there now \(PID {proc.pid}\)"):
        reproduce_runner.reproduce("lr_asymmetry", budget={"lr_asymmetry": {"epochs": 1}}, out=out, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == [lock.LOCK_FILE]
