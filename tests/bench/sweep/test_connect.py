"""bench.sweep.cluster.connect: what a fresh local Ray instance is started with (ray.init replaced: no Ray starts)."""
from __future__ import annotations

import os

import pytest
import ray

from bench.sweep import cluster


@pytest.fixture
def init_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((kw, os.environ.get(cluster.PRESTART_VAR))))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for var in (cluster.PRESTART_VAR, cluster.GCS_WAIT_VAR):  # restored after the test: connect sets them
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)
    return calls


def test_a_local_instance_prestarts_no_idle_workers(init_calls):
    assert cluster.connect(None, verbose=False) is True
    (kwargs, prestart), = init_calls
    assert kwargs["address"] == "local" and kwargs["include_dashboard"] is False
    assert prestart == "0"  # in the environment Ray's raylet inherits when ray.init starts it


def test_a_users_own_prestart_setting_is_kept(init_calls, monkeypatch):
    monkeypatch.setenv(cluster.PRESTART_VAR, "1")
    cluster.connect(None, verbose=False)
    assert init_calls[0][1] == "1"
