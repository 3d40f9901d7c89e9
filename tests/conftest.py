"""Shared test helpers. Tests never touch the network: MNIST-family files are tiny IDX files written here.

Ray: ONE local instance per test process (``ray_local``; each pytest-xdist worker that needs it starts its own), shut
down at the end. It lives in its own temporary directory (RAY_TMPDIR), so it never touches another Ray on this
machine (no shared ``ray_current_cluster`` file), and the teardown checks that no process whose command line names
that directory survives. Token authentication stays on (RAY_AUTH_MODE=token for every process, children
included: ray.init sets it).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.fake_mnist import make_fake_mnist

os.environ.setdefault("MOE_OFFLINE", "1")  # never try a download from a test
os.environ.setdefault("MPLBACKEND", "Agg")


FAST_SKIPS = ("slow", "ray", "interp")  # what the edit-loop tier leaves out


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help="the edit-loop tier (under a minute): leaves out tests marked " + ", ".join(FAST_SKIPS))


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--fast"):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if any(item.get_closest_marker(m) for m in FAST_SKIPS) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def fake_mnist_root(tmp_path: Path) -> Path:
    """A data root holding tiny MNIST and FashionMNIST files in torchvision's layout."""
    make_fake_mnist(tmp_path, "MNIST", seed=1)
    make_fake_mnist(tmp_path, "FashionMNIST", seed=2)
    return tmp_path


# ---- Ray: one local instance per test session ----

QUIET = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}
# For the processes of a cluster a test starts itself: every one of them gets the same mode. (In this
# process ray.init(address="local") turns token authentication on by itself and passes it to its
# children; setting the variable here after Ray's import would leave this process's cached mode stale.)
# A fresh GCS server can take over Ray's default 30 s to come up on a loaded 2-core machine.
CLUSTER_ENV = {**QUIET, "RAY_AUTH_MODE": "token", "RAY_gcs_server_port_wait_time_s": "120"}


def ray_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains ``marker``."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((ln for ln in (proc / "status").read_text().splitlines() if ln.startswith("State:")), "")
        except OSError:
            continue
        if marker in cmd and "zombie" not in state:
            out.append((int(proc.name), cmd[:160]))
    return out


def wait_gone(marker: str, timeout: float = 20.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while (left := ray_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="session")
def ray_helpers():
    """(environment for quiet token-authenticated Ray processes, wait_gone) for tests that start their own cluster."""
    return CLUSTER_ENV, wait_gone


@pytest.fixture(scope="session")
def ray_tmpdir():
    """A short private directory for Ray's sockets and sessions (unix socket paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="rbt", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local(ray_tmpdir):
    """``ray.init(address="local")`` once for the whole session (2 CPUs); shut down and checked at the end."""
    saved = {k: os.environ.get(k) for k in [*CLUSTER_ENV, "RAY_TMPDIR"]}
    os.environ.update({k: v for k, v in CLUSTER_ENV.items() if k != "RAY_AUTH_MODE"})  # ray.init sets the mode
    os.environ["RAY_TMPDIR"] = ray_tmpdir
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, _temp_dir=ray_tmpdir)
    yield ray
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    left = wait_gone(ray_tmpdir)
    assert not left, f"Ray processes of the test session survived ray.shutdown(): {left}"
