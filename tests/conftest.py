"""Shared test helpers. Tests never touch the network: MNIST-family files are tiny IDX files written here.

Ray: ONE local instance per test process (``ray_local``; each pytest-xdist worker that needs it starts its own), shut
down at the end. It lives in its own temporary directory (RAY_TMPDIR), so it never touches another Ray on this
machine (no shared ``ray_current_cluster`` file), and the teardown checks that no process of that directory survives
(``ray_processes``: by command line, working directory or an open file there; a cluster a test starts itself is
found by its environment too). Token authentication stays on (RAY_AUTH_MODE=token for every process, children
included: ray.init sets it).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.fake_mnist import make_fake_mnist

# Bytecode cached in __pycache__ (git ignores it) even where PYTHONDONTWRITEBYTECODE is set, as ``run.py test`` does
# (``run.py``'s test_env): a plain ``pytest`` run then neither compiles the project's modules nor rewrites the test
# modules' asserts again next time (pytest writes its rewritten modules under this same flag). Each pytest-xdist
# worker imports this file before any test module: collecting the fast tier, ~10 s of CPU per worker without, ~6.5 s
# with. Only this process's flag: the environment of the commands a test starts stays as it was.
sys.dont_write_bytecode = False
os.environ.setdefault("MOE_OFFLINE", "1")  # never try a download from a test
os.environ.setdefault("MPLBACKEND", "Agg")
# Figures drawn by the process that builds them, in every test and every command a test starts: both cores are busy
# with tests, so a figure worker process (bench.table.drawing) only adds its ~0.5-1 s of imports. The tests about the
# workers give their pools a number of processes; those of the drawing ahead of a sweep take the variable away.
os.environ.setdefault("MOE_FIGURE_WORKERS", "0")


FAST_SKIPS = ("slow", "ray", "interp")  # what the edit-loop tier leaves out


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help="the edit-loop tier (under a minute): leaves out tests marked " + ", ".join(FAST_SKIPS))


# The order of the test files (below): the longest first. Seconds of the longest files, all their tests together (the
# whole suite on 2 workers of a quiet 2-core machine, 8 December 2026, later in the day; only their order matters); any
# other file: its tests' costs by marker.
FILE_SECONDS = {
    "tests/test_real_disks.py": 69, "tests/bench/sweep/test_sweep_ray.py": 45, "tests/bench/sweep/test_signals.py": 29,
    "tests/bench/sweep/test_trial_resume.py": 28, "tests/kernels/test_kernels_interpreter.py": 25,
    "tests/bench/sweep/test_two_writers_ray.py": 24, "tests/bench/speed/test_targets.py": 23,
    "tests/bench/sweep/test_cluster.py": 21, "tests/bench/sweep/test_resume_same_run.py": 21,
    "tests/bench/reproduce/test_end_to_end.py": 15, "tests/test_extension_points.py": 14,
    "tests/bench/sweep/test_sweep_file_errors.py": 10, "tests/bench/report/test_predraw.py": 10,
    "tests/bench/sweep/test_add_seeds.py": 9, "tests/bench/sweep/test_grow_axes.py": 9,
    "tests/bench/report/test_figures.py": 8, "tests/bench/sweep/test_damaged_ray.py": 8, "tests/moe/test_optim.py": 7,
}
COST = {"ray": 20.0, "slow": 1.0}
COST_DEFAULT = 0.05  # most tests: a few hundredths of a second


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order given below (its default puts the
        config.option.loadscopereorder = False  # files with most tests first, the few long Ray tests last)


def item_cost(item) -> float:
    return max([COST_DEFAULT, *(c for m, c in COST.items() if item.get_closest_marker(m))])


def costliest_files_first(items: list) -> list:
    """The items, each test file's kept together in its own order, the files by their seconds (``FILE_SECONDS``, else
    their tests' summed :func:`item_cost`), largest first (ties: as collected). pytest-xdist (``--dist loadscope``)
    hands out whole files in this order: the long files start at once and the short ones fill the gaps, instead of a
    worker left alone with a long file at the end."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def cost(name: str, group: list) -> float:
        return FILE_SECONDS.get(name) or sum(item_cost(i) for i in group)

    order = [files[name] for name in sorted(files, key=lambda name: -cost(name, files[name]))]
    return [item for group in order for item in group]


WHOLE_FILE_MARK = re.compile(rb"^pytestmark = pytest\.mark\.(%s)\b" % "|".join(FAST_SKIPS).encode(), re.MULTILINE)


def pytest_ignore_collect(collection_path: Path, config):
    """With ``--fast``, a test file marked whole for a tier it leaves out (a line ``pytestmark = pytest.mark.slow``)
    is not imported at all: every pytest-xdist worker would import it (Ray, hypothesis, ...) only to deselect all its
    tests. (Its tests are then not counted as deselected.) None otherwise: pytest decides as before."""
    if config.getoption("--fast") and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        try:
            if WHOLE_FILE_MARK.search(collection_path.read_bytes()):
                return True
        except OSError:
            pass
    return None


def pytest_collection_modifyitems(config, items):
    if config.getoption("--fast"):
        kept, dropped = [], []
        for item in items:
            (dropped if any(item.get_closest_marker(m) for m in FAST_SKIPS) else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    items[:] = costliest_files_first(items)


@pytest.fixture
def fake_mnist_root(tmp_path: Path) -> Path:
    """A data root holding tiny MNIST and FashionMNIST files in torchvision's layout."""
    make_fake_mnist(tmp_path, "MNIST", seed=1)
    make_fake_mnist(tmp_path, "FashionMNIST", seed=2)
    return tmp_path


# ---- what one test run makes once, for all its pytest-xdist workers ----

def run_shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder ``name`` shared by every worker of this test run (the run's base temporary folder: pytest-xdist gives
    each worker a folder inside it; a run without workers has its own), made when missing. What goes in is written
    atomically (``moe.records.files.atomic_write_bytes``), so workers that make the same thing at once each write whole
    files."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def figure_store(tmp_path_factory) -> Path:
    return run_shared_dir(tmp_path_factory, "figures")


def stored_figure(figure_store: Path, kind: str, args: tuple) -> Path:
    """Where the run's figure store keeps the PNG of a job (``bench.table.drawing.figure_key`` without the code's
    stamp: the drawing code cannot change within a run). A test that draws a job for real may put its PNG there too
    (``tests/bench/report/conftest.py``'s ``counted``): the same bytes a test with ``shared_figures`` would draw."""
    from bench.table import drawing
    return figure_store / f"{drawing.figure_key(kind, args, b'')}.png"


@pytest.fixture
def shared_figures(monkeypatch, figure_store):
    """A test about something other than drawing (a sweep's messages, resume, locks) that builds report.html and the
    tables' plots takes each figure drawn in this process (``bench.table.drawing.draw``) from one store per test run,
    keyed by its job (the drawer and its arguments: the drawing code cannot change within a run); a figure not drawn
    yet in this run is drawn as before and kept, in this process (no figure worker process is started: each would
    import matplotlib to draw what the store holds). The same bytes either way (figures are deterministic); what
    draws them, in workers or here, is tested by the figure, report and table tests about drawing, which do not use
    this. (A module's fixture does the same with :func:`figures_from_store`.)"""
    figures_from_store(monkeypatch, figure_store)


def figures_from_store(monkeypatch, figure_store: Path) -> None:
    """``shared_figures`` on a ``pytest.MonkeyPatch`` of one's own: for a fixture of wider scope (a sweep directory
    made once per test file) whose report's figures are not its subject either."""
    from bench.table import drawing
    from moe.records.files import atomic_write_bytes

    original = drawing.draw

    def draw(kind: str, args: tuple) -> bytes:
        path = stored_figure(figure_store, kind, args)
        try:
            return path.read_bytes()
        except OSError:
            png = original(kind, args)
            atomic_write_bytes(path, png)
            return png

    monkeypatch.setattr(drawing, "draw", draw)
    monkeypatch.setattr(drawing, "available_cores", lambda: 1)  # drawn here, through the store: no figure worker


# ---- Ray: one local instance per test session ----

QUIET = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}
# For the processes of a cluster a test starts itself: every one of them gets the same mode. (In this
# process ray.init(address="local") turns token authentication on by itself and passes it to its
# children; setting the variable here after Ray's import would leave this process's cached mode stale.)
# A fresh GCS server can take over Ray's default 30 s to come up on a loaded 2-core machine.
CLUSTER_ENV = {**QUIET, "RAY_AUTH_MODE": "token", "RAY_gcs_server_port_wait_time_s": "120"}


def ray_processes(folder: str, environment: bool = True) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes of the Ray instance whose RAY_TMPDIR is ``folder``: by command line
    (the raylet, the GCS server, ...), by a working directory or an open file inside the folder (its logs: Ray
    retitles its workers and agents, ``ray::IDLE``, so the folder is no longer in their command line), and, with
    ``environment``, by ``RAY_TMPDIR=folder`` in the environment, which every process of the instance inherits
    (retitling can blank a process's environment in /proc: hence the other two). Without ``environment`` for the
    session's own instance (``ray_local``): this process has that RAY_TMPDIR, so every child it starts would match.
    Zombies are gone (their files read empty); this process is left out."""
    entry, inside = f"RAY_TMPDIR={folder}".encode(), folder.rstrip("/") + "/"
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((ln for ln in (proc / "status").read_text().splitlines() if ln.startswith("State:")), "")
            env = (proc / "environ").read_bytes().split(b"\0") if environment else []
            links = [proc / "cwd", *(proc / "fd").iterdir()]
        except OSError:
            continue
        if "zombie" in state:
            continue
        files = []
        for link in links:
            try:
                files.append(os.readlink(link) + "/")
            except OSError:
                pass
        if folder in cmd or entry in env or any(f.startswith(inside) for f in files):
            out.append((int(proc.name), cmd[:160]))
    return out


def wait_gone(folder: str, timeout: float = 20.0, environment: bool = True) -> list[tuple[int, str]]:
    """:func:`ray_processes` of ``folder`` once none is left, or what is still left after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := ray_processes(folder, environment)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="session")
def ray_helpers():
    """(environment for quiet token-authenticated Ray processes, wait_gone) for tests that start their own cluster
    (found by RAY_TMPDIR in the environment too: ``ray_processes``)."""
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
    saved = {k: os.environ.get(k) for k in [*CLUSTER_ENV, "RAY_TMPDIR", "RAY_prestart_worker_first_driver"]}
    os.environ.update({k: v for k, v in CLUSTER_ENV.items() if k != "RAY_AUTH_MODE"})  # ray.init sets the mode
    os.environ["RAY_TMPDIR"] = ray_tmpdir
    import ray
    from bench.sweep.cluster import PRESTART, PRESTART_VAR
    from bench.sweep.head_node import without_monitors

    os.environ.setdefault(PRESTART_VAR, PRESTART)  # as a sweep's own local instance: no idle workers, no monitors
    with without_monitors(log_monitor=False):
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, _temp_dir=ray_tmpdir)
    yield ray
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    left = wait_gone(ray_tmpdir, environment=False)  # this process's own children carry its RAY_TMPDIR
    assert not left, f"Ray processes of the test session survived ray.shutdown(): {left}"
