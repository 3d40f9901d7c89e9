"""run.py's set-up: it reinstalls only when what pip installs changed, and says first time only the first time.

The tests point run.py at a temporary .venv (a fake interpreter file and stamp) and record the pip call instead of
running it: the shared environment is never touched.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
REAL_RUN = subprocess.run  # the fixture below records run.py's calls instead (in the same subprocess module)


@pytest.fixture
def run_py(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("run_py_under_test", ROOT / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    venv = root / ".venv"
    monkeypatch.setattr(mod, "ROOT", root)
    monkeypatch.setattr(mod, "VENV", venv)
    monkeypatch.setattr(mod, "STAMP", venv / ".moe-interp-bench-installed")
    calls, kwargs = [], []
    monkeypatch.setattr(mod.subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or kwargs.append(kw) or subprocess.CompletedProcess(cmd, 0))

    def fake_create(self, path):  # a venv without running venv's ensurepip
        (Path(path) / "bin").mkdir(parents=True)
        (Path(path) / "bin" / "python").write_text("")
    monkeypatch.setattr(mod.venv.EnvBuilder, "create", fake_create)
    mod.calls, mod.kwargs = calls, kwargs
    return mod


def test_install_key_ignores_comments_and_layout_but_not_pins(run_py):
    key = run_py.install_key(PYPROJECT.encode())
    commented = PYPROJECT.replace("[project]", "# a new comment\n[project]\n# another one", 1)
    assert run_py.install_key(commented.encode()) == key
    assert run_py.install_key(PYPROJECT.replace('"pyyaml==6.0.3"', '"pyyaml==6.0.2"').encode()) != key
    assert run_py.install_key(PYPROJECT.replace('"pytest==9.2.0"', '"pytest==9.1.0"').encode()) != key
    assert run_py.install_key(PYPROJECT.replace('version = "', 'version = "9', 1).encode()) != key


def test_first_install_then_nothing_then_reinstall_on_a_changed_pin(run_py, capsys):
    run_py.setup()
    assert len(run_py.calls) == 1 and "-e" in run_py.calls[0]
    assert "first time only" in capsys.readouterr().out
    run_py.setup()  # unchanged: no pip call, nothing printed
    assert len(run_py.calls) == 1 and capsys.readouterr().out == ""
    pyproject = run_py.ROOT / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace("[project]", "# only a comment\n[project]", 1))
    run_py.setup()
    assert len(run_py.calls) == 1 and capsys.readouterr().out == ""
    pyproject.write_text(PYPROJECT.replace('"tqdm==4.70.1"', '"tqdm==4.70.0"'))
    run_py.setup()
    out = capsys.readouterr().out
    assert len(run_py.calls) == 2 and "first time" not in out and "changed" in out


def test_an_older_stamp_of_the_same_file_is_taken_over_without_reinstalling(run_py):
    run_py.setup()
    run_py.STAMP.write_text(hashlib.sha256(PYPROJECT.encode()).hexdigest() + "\n")  # what the byte-hash set-up wrote
    run_py.setup()
    assert len(run_py.calls) == 1
    assert run_py.STAMP.read_text().strip() == run_py.install_key(PYPROJECT.encode())


def test_a_failed_install_leaves_no_stamp(run_py, monkeypatch):
    def fail(cmd, **kw):
        raise subprocess.CalledProcessError(1, cmd)
    monkeypatch.setattr(run_py.subprocess, "run", fail)
    assert run_py.main(["test"]) == 1
    assert not run_py.STAMP.exists()


def test_the_suite_runs_on_one_worker_per_core_unless_told_otherwise(run_py):
    assert run_py.test_args(["--fast", "-q"], n_cores=2) == ["-n", "2", "--dist", "loadscope", "--fast", "-q"]
    assert run_py.test_args([], n_cores=64)[:2] == ["-n", str(run_py.MAX_TEST_WORKERS)]
    assert run_py.test_args(["--fast"], n_cores=1) == ["--fast"]  # one core: one process, no worker to start
    for chosen in (["-n", "0"], ["-n4"], ["--numprocesses=3"], ["--dist", "load"], ["-p", "no:xdist"]):
        assert run_py.test_args(["tests/moe", *chosen], n_cores=4) == ["tests/moe", *chosen]


def test_main_passes_the_workers_to_pytest_and_nothing_to_the_sweep(run_py, monkeypatch):
    monkeypatch.setattr(run_py, "cores", lambda: 2)
    assert run_py.main(["test", "--fast"]) == 0
    assert run_py.calls[-1][1:] == ["-m", "pytest", "-n", "2", "--dist", "loadscope", "--fast"]
    assert run_py.main(["sweep", "--list"]) == 0
    assert run_py.calls[-1][1:] == ["-m", "bench.sweep", "--list"]


def test_the_tests_run_with_bytecode_cached_even_where_the_environment_says_not_to(run_py, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("MOE_SOMETHING", "kept")
    assert run_py.main(["test", "--fast"]) == 0
    env = run_py.kwargs[-1]["env"]
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["MOE_SOMETHING"] == "kept"
    assert run_py.main(["sweep", "--list"]) == 0
    assert run_py.kwargs[-1].get("env") is None  # the sweep: the environment as it is
    # what that environment does: an imported module's bytecode is written (pytest writes its rewritten test modules
    # under the same flag, sys.dont_write_bytecode), where the variable alone writes none
    (tmp_path / "some_module.py").write_text("X = 1\n")
    for env, written in ((dict(os.environ), False), (run_py.test_env(), True)):
        REAL_RUN([sys.executable, "-c", "import some_module"], cwd=tmp_path, env=env, check=True)
        assert bool(list((tmp_path / "__pycache__").glob("some_module.*.pyc"))) is written


def test_the_longest_test_files_come_first_each_file_kept_together_in_its_order(monkeypatch):
    from types import SimpleNamespace

    from tests import conftest

    def item(nodeid, *marks):
        return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: name if name in marks else None)

    monkeypatch.setattr(conftest, "FILE_SECONDS", {"tests/d.py": 30})
    items = [item("tests/a.py::t1"), item("tests/a.py::t2"),  # 2 quick tests
             item("tests/b.py::t1", "slow"), item("tests/b.py::t2"),  # slow: 1 s
             item("tests/c.py::t1", "ray", "slow"), item("tests/c.py::t2", "slow"),  # ray: 20 s
             item("tests/d.py::t1"), item("tests/e.py::t1")]  # d: measured at 30 s; e: as quick as a
    ordered = [i.nodeid for i in conftest.costliest_files_first(items)]
    assert ordered == ["tests/d.py::t1", "tests/c.py::t1", "tests/c.py::t2", "tests/b.py::t1", "tests/b.py::t2",
                       "tests/a.py::t1", "tests/a.py::t2", "tests/e.py::t1"]
