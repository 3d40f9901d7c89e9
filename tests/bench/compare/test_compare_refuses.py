"""bench.compare refuses, with one line naming what differs, two sweeps whose scores are not comparable (another
dataset, data fingerprint, budget or sweep version) unless --force; the differences are listed either way."""
from __future__ import annotations

import pytest

from bench.compare.cli import main
from tests.bench.sweep_dirs import TINY, make_sweep_dir

pytestmark = pytest.mark.slow  # trains two sweep directories


@pytest.fixture(scope="module")
def unlike(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlike")
    a = make_sweep_dir(root / "a")
    b = make_sweep_dir(root / "b", data={**TINY, "version": 2, "budget": {**TINY["budget"], "epochs": 2}})
    return a, b


def test_sweeps_of_another_budget_or_version_are_refused_unless_forced(unlike, tmp_path, capsys):
    a, b = unlike
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: A and B differ") and "epochs: A 3, B 2" in err[0]
    assert "sweep version: A 1, B 2" in err[0] and "--force" in err[0] and not (tmp_path / "out").exists()
    assert main([str(a), str(b), "--out", str(tmp_path / "out"), "--force"]) == 0
    assert "epochs" in (tmp_path / "out" / "compare.md").read_text()  # the warning that names them stays


def test_the_same_sweep_twice_is_compared_without_force(unlike, tmp_path, capsys):
    a, _ = unlike
    assert main([str(a), str(a), "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("content", ["[1, 2", "[]", '{"sweep": 3}'])
def test_a_damaged_sweep_json_or_runs_csv_is_no_traceback(unlike, tmp_path, capsys, content):
    import shutil

    a, _ = unlike
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    (copy / "sweep.json").write_text(content)
    assert main([str(a), str(copy), "--out", str(tmp_path / "out")]) == 2  # its version is unknown now: named
    assert "sweep version: A 1, B None" in capsys.readouterr().err
    assert main([str(a), str(copy), "--out", str(tmp_path / "out"), "--force"]) == 0
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "runs.csv").write_bytes(b"\xff\xfe garbage")
    assert main([str(a), str(tmp_path / "csv")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
