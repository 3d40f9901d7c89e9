"""bench.sweep.cluster.connect: what a fresh local Ray instance is started with (ray.init replaced: no Ray starts),
and the reaper that ends its processes once the process that started it is gone (run by hand on a pipe)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from bench.sweep import cluster


@pytest.fixture
def init_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((kw, os.environ.get(cluster.PRESTART_VAR),
                                                                os.environ.get(cluster.OWNER_VAR))))
    monkeypatch.setattr(cluster, "reap_when_gone", lambda: "1-token")  # no reaper process from a test
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for var in (cluster.PRESTART_VAR, cluster.GCS_WAIT_VAR):  # restored after the test: connect sets them
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)
    return calls


def test_a_local_instance_prestarts_no_idle_workers(init_calls):
    assert cluster.connect(None, verbose=False) is True
    (kwargs, prestart, _), = init_calls
    assert kwargs["address"] == "local" and kwargs["include_dashboard"] is False
    assert prestart == "0"  # in the environment Ray's raylet inherits when ray.init starts it


@pytest.mark.parametrize("verbose", [False, True])
def test_a_local_instance_starts_no_autoscaler_monitor_and_a_log_monitor_only_when_verbose(init_calls, monkeypatch,
                                                                                           verbose):
    from ray._private.parameter import RayParams

    seen = []

    def init(**kw):  # the parameters ray.init would build for its head node, during the call and after it
        seen.append(RayParams(include_dashboard=kw.get("include_dashboard")))

    monkeypatch.setattr(ray, "init", init)
    original = RayParams.__init__
    cluster.connect(None, verbose=verbose)
    (params,) = seen
    assert params.no_monitor is True
    assert params.include_log_monitor is (None if verbose else False)  # None: Ray's default, started
    assert RayParams.__init__ is original and RayParams().no_monitor is False  # after the call: Ray's own again

    monkeypatch.setattr(cluster, "unreachable", lambda address: None)
    cluster.connect("127.0.0.1:6379", verbose=False)  # a cluster it attaches to: its head node is not started here
    assert seen[-1].no_monitor is False and seen[-1].include_log_monitor is None


def test_a_users_own_prestart_setting_is_kept(init_calls, monkeypatch):
    monkeypatch.setenv(cluster.PRESTART_VAR, "1")
    cluster.connect(None, verbose=False)
    assert init_calls[0][1] == "1"


def test_a_local_instance_inherits_the_reapers_token_and_the_driver_drops_it(init_calls, monkeypatch):
    cluster.connect(None, verbose=False)
    assert init_calls[-1][2] == "1-token"  # in the environment every process of the instance inherits
    assert cluster.OWNER_VAR not in os.environ  # not in what this process starts later
    monkeypatch.setattr(cluster, "unreachable", lambda address: None)
    cluster.connect("127.0.0.1:6379", verbose=False)  # a cluster it attaches to is not its to end
    assert init_calls[-1][2] is None

    def refused(**kw):
        raise ConnectionError("refused")

    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(cluster.ResourceError):
        cluster.connect(None, verbose=False)
    assert cluster.OWNER_VAR not in os.environ

    monkeypatch.setenv(cluster.OWNER_VAR, "1-token")  # python -m bench.sweep: all it starts carries it, and keeps it
    with pytest.raises(cluster.ResourceError):
        cluster.connect(None, verbose=False)
    assert os.environ[cluster.OWNER_VAR] == "1-token"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reaper reads /proc")
def test_the_reaper_kills_what_carries_its_token_or_lives_in_its_folders_once_the_pipe_closes(tmp_path):
    token = f"{cluster.OWNER_VAR}=42-test{os.getpid()}"
    session, elsewhere = tmp_path / "session_1", tmp_path / "session_10"  # (a prefix of the other's name)
    session.mkdir(), elsewhere.mkdir()
    read, write = os.pipe()
    reaper = subprocess.Popen([sys.executable, "-I", "-S", "-c", cluster.REAPER, str(read), token, "20"], pass_fds=(read,))
    os.close(read)
    name, value = token.split("=")
    ours = subprocess.Popen(["sleep", "60"], env={**os.environ, name: value}, start_new_session=True)
    in_folder = subprocess.Popen(["sleep", "60"], cwd=session)  # as a retitled Ray process: no token, its logs there
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, name: value + "0"}, cwd=elsewhere)  # not ours
    os.write(write, f"{session}\n".encode())  # as connect does once ray.init has made the session folder
    try:
        time.sleep(0.5)
        assert alive(ours.pid) and alive(in_folder.pid) and reaper.poll() is None  # nothing while the pipe is open
        os.close(write)  # as when the process holding it ends, however
        reaper.wait(timeout=20)  # it ends once it has seen nothing to kill a few times
        assert ours.wait(timeout=1) == -signal.SIGKILL and in_folder.wait(timeout=1) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for p in (ours, in_folder, other, reaper):
            if p.poll() is None:
                p.kill()
                p.wait()
