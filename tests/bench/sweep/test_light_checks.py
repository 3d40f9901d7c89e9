"""``python -m bench.sweep`` starts Ray early (``bench.sweep.early``) only for a command line that passes the checks
needing no heavy import (``early.passes_light_checks``); bad input they catch gets its one error line without a Ray
instance to start and wait for."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from bench.sweep import early

ROOT = Path(__file__).resolve().parents[3]
GOOD = {"description": "d", "version": 1, "dataset": "gm6", "grid": {"experts": [2]}}


def sweep_yaml(tmp_path: Path, data) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def resumable(tmp_path: Path) -> str:
    folder = tmp_path / "done"
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({"sweep": {}, "trials": []}))
    return str(folder)


@pytest.mark.parametrize("argv, passes", [
    ([], True),  # the default sweep, quick
    (["smoke", "--set", "epochs=2", "--add-seeds", "3,4"], True),
    (["no_such_sweep"], False),
    (["smoke", "--set", "epochs"], False),
    (["smoke", "--add-seeds", "two"], False),
    (["--resume", "{tmp}/nowhere"], False),
    (["--resume", "{resumable}"], True),
    (["--resume", "{resumable}", "--out", "{tmp}/new"], False),
    (["--resume", "{resumable}", "--set", "epochs=2"], False),
    (["{good}"], True),
    (["{good}", "--out", "{tmp}/new/deeper"], True),
    (["{good}", "--out", "{tmp}/empty"], True),
    (["{good}", "--out", "{tmp}/full"], False),
    (["{good}", "--out", "{tmp}/file"], False),
    (["{bad_yaml}"], False),
    (["{bad_shape}"], False),
    (["{tmp}/missing.yaml"], False),
])
def test_which_command_lines_pass_the_light_checks(tmp_path, argv, passes):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("the user's file")
    (tmp_path / "file").write_text("a file")
    names = {"tmp": str(tmp_path), "resumable": resumable(tmp_path), "good": sweep_yaml(tmp_path, GOOD)}
    (tmp_path / "bad").mkdir()
    (tmp_path / "shape").mkdir()
    names["bad_yaml"] = sweep_yaml(tmp_path / "bad", "grid: [unclosed\n")
    names["bad_shape"] = sweep_yaml(tmp_path / "shape", {**GOOD, "budget": [1, 2]})
    assert early.passes_light_checks([a.format(**names) for a in argv]) is passes


def test_a_folder_this_process_may_not_write_fails_them(tmp_path, monkeypatch):
    """(As root every folder is writable by mode; a read-only mount is not: ``os.access`` says which.)"""
    folder = resumable(tmp_path)
    good = sweep_yaml(tmp_path, GOOD)
    assert early.passes_light_checks(["--resume", folder]) and early.passes_light_checks([good, "--out", f"{tmp_path}/o"])
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert not early.passes_light_checks(["--resume", folder])
    assert not early.passes_light_checks([good, "--out", f"{tmp_path}/o"])


def test_a_sweep_directory_another_process_writes_fails_them(tmp_path):
    """A second ``--resume`` of a directory whose lock another process holds now: refused by the full checks (naming
    that process), so no Ray is started for it."""
    folder = resumable(tmp_path)
    assert early.passes_light_checks(["--resume", folder])
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from bench.sweep import lock; lock.acquire(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", folder], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not early.passes_light_checks(["--resume", folder])
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert early.passes_light_checks(["--resume", folder])  # let go: passes again


@pytest.mark.slow
def test_bad_input_the_light_checks_catch_starts_no_ray(tmp_path):
    """The one error line and exit status 2, and no Ray session was made (none in the command's RAY_TMPDIR)."""
    ray_tmp = tempfile.mkdtemp(prefix="rbl", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    try:
        for argv, says in ((["no_such_sweep"], "error: sweep: unknown sweep 'no_such_sweep'"),
                           (["smoke", "--set", "epochs", "--out", str(tmp_path / "out")], "error: --set 'epochs'")):
            proc = subprocess.run([sys.executable, "-m", "bench.sweep", *argv], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 2 and proc.stderr.startswith(says), proc.stderr[-2000:]
            assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
            assert not list(Path(ray_tmp).iterdir()), "a Ray instance was started for bad input"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_the_light_checks_and_the_command_find_a_sweep_file_the_same_way(tmp_path):
    """One lookup (``bench.sweep.file_shape.sweep_path``) for both: a path, a registered name, a name defined twice."""
    from bench.sweep import file_shape, spec

    assert file_shape.sweep_path("quick") == spec.resolve("quick") == file_shape.SWEEP_DIR / "quick.yaml"
    good = sweep_yaml(tmp_path, GOOD)
    assert file_shape.sweep_path(good) == spec.resolve(good) == Path(good).resolve()
    assert file_shape.sweep_path("no_such_sweep") is None
    (tmp_path / "twice.yml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "twice.yaml").write_text(yaml.safe_dump(GOOD))
    with pytest.raises(spec.SweepError, match="'twice' is defined twice: twice.yaml and twice.yml"):
        spec.resolve("twice", tmp_path)
    with pytest.raises(file_shape.ShapeError, match="defined twice"):
        file_shape.sweep_path("twice", tmp_path)
