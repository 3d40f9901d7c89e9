"""Ray started first by ``python -m bench.sweep`` (``bench.sweep.early``): which command lines start it, that the run
takes the instance started for it (and ends one started for another request), that an instance no trial used ends
with the command. (That the commands that run no trial import neither Ray nor pandas nor matplotlib:
test_trial_imports, in the one interpreter that checks the trial module's imports.)"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.sweep import early

ROOT = Path(early.__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, wanted", [
    ([], (None, False)),
    (["quick", "--set", "epochs=2", "--out", "x"], (None, False)),
    (["--resume", "results/quick-1"], (None, False)),
    (["smoke", "--address", "10.0.0.1:6379", "-v"], ("10.0.0.1:6379", True)),
    (["--addr=10.0.0.1:6379", "--verb"], ("10.0.0.1:6379", True)),  # abbreviations, as argparse reads them
    (["--list"], None), (["quick", "--dry-run"], None), (["--dry"], None), (["-h"], None), (["--help"], None),
    (["--address"], None),  # a bad command line: its own parser says so, and no Ray starts for it
])
def test_the_ray_a_command_line_asks_for(argv, wanted):
    assert early.ray_request(argv) == wanted


class FakeStarting:
    """``cluster.Starting`` without Ray: what was started and what was ended."""

    made: list[FakeStarting] = []

    def __init__(self, address, verbose):
        self.request, self.ended = (address, verbose), False
        FakeStarting.made.append(self)

    def shut_down_later(self):
        self.ended = True


@pytest.fixture
def fake_starting(monkeypatch):
    monkeypatch.setattr(early, "Starting", FakeStarting)
    monkeypatch.setattr(early, "ray_environment", lambda verbose: None)  # (this process's environment stays)
    FakeStarting.made = []
    yield FakeStarting.made
    early.end_unused()


def test_the_run_takes_the_instance_started_for_it(fake_starting):
    early.start_early(None, False)
    assert early.starting(None, False) is fake_starting[0] and not fake_starting[0].ended
    assert early.starting(None, False) is fake_starting[1]  # taken once: a later call starts its own


def test_an_instance_started_for_another_request_is_ended_first(fake_starting):
    early.start_early(None, False)
    taken = early.starting("10.0.0.1:6379", False)  # (the command's own parser read another address)
    assert fake_starting[0].ended and taken is fake_starting[1] and taken.request == ("10.0.0.1:6379", False)


def test_an_instance_no_trial_used_ends(fake_starting):
    early.start_early(None, True)
    early.end_unused()
    assert fake_starting[0].ended
    assert early.starting(None, True) is fake_starting[1]


@pytest.mark.ray
def test_bad_input_of_a_run_ends_the_ray_started_for_it(tmp_path, ray_helpers):
    """A run's command line with a --set value only the full checks refuse (the light ones pass it: see
    test_light_checks): Ray started first, then the one error line and exit status 2, and none of that instance's
    processes left once the command has exited (it waited for them)."""
    env_extra, wait_gone = ray_helpers
    ray_tmp = tempfile.mkdtemp(prefix="rbe", dir="/tmp")
    env = {**os.environ, **env_extra, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.sweep", "smoke", "--set", "epochs=-3", "--out",
                               str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.strip().startswith("error: smoke: epochs: must be >= 1"), proc.stderr[-2000:]
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
        assert any(Path(ray_tmp).rglob("session_*")), "no Ray started early for the run's command line"
        left = wait_gone(ray_tmp, timeout=2.0)  # (a process killed just now may still show for a moment)
        assert not left, f"processes of the early instance outlived the command: {left}"
    finally:
        for pid, _ in wait_gone(ray_tmp, timeout=0):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
