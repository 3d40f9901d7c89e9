"""Sweep files of the wrong shape, the trial cap, and output closed early (issue #12): each a single
``error:`` line with exit status 2 (or a quiet exit 0 for a closed pipe), no traceback, no Ray (no Tune)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.sweep import cli, runner, file_shape, spec
from bench.sweep.spec import SweepError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def no_tune(monkeypatch):
    """Fails the test if the sweep reaches its Tune run (the runner's one entry to Ray)."""
    def tune_called(*args, **kwargs):
        pytest.fail("the sweep reached Ray Tune; a bad input must be refused before")

    monkeypatch.setattr(runner, "_tune_trials", tune_called)


def one_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one ``error:`` line and no traceback."""
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


GRID_OK = "dataset: gm6\nbudget: {epochs: 1, n_train: 60, n_test: 30}\n"


def test_a_duplicate_grid_axis_is_refused_naming_key_and_lines(tmp_path, capsys, no_tune):
    path = write(tmp_path, GRID_OK + "grid:\n  experts: [2, 4]\n  experts: [8]\n")
    for argv in ([path, "--dry-run"], [path]):
        line = one_error(capsys, argv)
        assert "duplicate key 'experts' on line 5 (first on line 4)" in line


@pytest.mark.parametrize("section,expected", [
    ('grid: "experts"', "grid: must be a mapping of config field -> list of values (or a list of such mappings), got a string"),
    ("grid: [{experts: [2]}, 5]", "grid[1]: must be a mapping of config field -> list of values, got an integer"),
    ("grid: {experts: [2]}\nbudget: [1, 2]", "budget: must be a mapping, got a list"),
    ("grid: {experts: [2]}\nresources: [1]", "resources: must be a mapping, got a list"),
    ("grid: {experts: [2]}\nsettings: 3", "settings: must be a mapping, got an integer"),
    ("grid: {experts: [2]}\nbudgets: {small: 4}", "budgets.small: must be a mapping of --set overrides, got an integer"),
    ("grid: {experts: [2]}\ndescription: [a]", "description: must be a string, got a list"),
    ("grid: {experts: [2]}\nversion: one", "version: must be an integer >= 0, got 'one'"),
    ("grid: {experts: {a: 1}}", "grid.experts: must be a list of values, got a mapping"),
    ("grid: []", "grid: an empty list"),
])
def test_a_section_of_the_wrong_type_is_one_line_naming_it(tmp_path, capsys, no_tune, section, expected):
    path = write(tmp_path, "dataset: gm6\n" + section + "\n")
    assert expected in one_error(capsys, [path, "--dry-run"])
    assert expected in one_error(capsys, [path])


@pytest.mark.parametrize("content,expected", [
    (bytes(range(256)) * 4, "a binary file, not a YAML sweep file"),
    (b"grid: {experts: [2]}\ndescription: caf\xe9\n", "not UTF-8 text (byte 0xe9 on line 2)"),
    (b"grid: {experts: [2\n", "not valid YAML"),
    (b"grid: {seed: [2020-13-45]}\n", "not valid YAML"),
])
def test_a_binary_or_unreadable_file_is_one_line(tmp_path, capsys, no_tune, content, expected):
    line = one_error(capsys, [write(tmp_path, content), "--dry-run"])
    assert expected in line and "bad.yaml" in line


@pytest.mark.slow  # counts a grid at the cap
def test_a_grid_over_the_cap_is_refused_at_once_with_count_and_cap(tmp_path, capsys, no_tune):
    axes = {k: list(range(1, 11)) for k in ("experts", "seed", "batch_size", "lr_ratio", "top_k", "epochs")}
    path = write(tmp_path, yaml.safe_dump({"dataset": "gm6", "grid": axes}))
    started = time.perf_counter()
    line = one_error(capsys, [path, "--dry-run"])
    assert "1,000,000 trials" in line and f"cap of {file_shape.MAX_TRIALS:,}" in line
    one_error(capsys, [path])
    assert time.perf_counter() - started < 5, "the count comes before any expansion"
    # the same through --set (a budget or an override can grow a small grid past the cap)
    small = write(tmp_path, yaml.safe_dump({"dataset": "gm6", "grid": {"experts": [2]}}), "small.yaml")
    line = one_error(capsys, [small, "--dry-run", "--set", f"grid.seed={list(range(file_shape.MAX_TRIALS + 1))}"])
    assert f"{file_shape.MAX_TRIALS + 1:,} trials" in line
    # a sweep object built by hand is not expanded either
    with pytest.raises(SweepError, match="more than the cap"):
        spec.Sweep(name="x", path=None, grid=[axes]).trials()


def test_a_grid_at_the_cap_still_loads():
    sweep = spec.from_mapping({"grid": {"seed": list(range(file_shape.MAX_TRIALS // 100)), "experts": list(range(1, 101))}}, name="cap")
    assert spec.count_trials(sweep) == file_shape.MAX_TRIALS


def test_dry_run_of_a_bad_sweep_prints_no_trial_before_its_error(tmp_path, capsys, no_tune):
    path = write(tmp_path, GRID_OK + "grid: {router: [nope], experts: [2]}\n")
    one_error(capsys, [path, "--dry-run"])  # (one_error checks stdout for tracebacks)
    assert cli.main([path, "--dry-run"]) == 2 and "nope" not in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["-m", "bench.sweep", "quick", "--dry-run"],
    ["-m", "bench.sweep", "--list"],
    ["-m", "bench.reproduce", "--list"],
    ["-m", "bench.table", "{table_dir}", "--no-plots"],
])
@pytest.mark.slow  # a subprocess per command
def test_output_closed_early_ends_quietly_with_0(tmp_path, args):
    """``... | head -1`` whose reader is gone before the first line: no BrokenPipeError traceback, exit 0."""
    (tmp_path / "runs.csv").write_text("index,name,status,seed,accuracy\n0,a,ok,0,0.5\n1,a,ok,1,0.7\n")
    argv = [a.format(table_dir=tmp_path) for a in args]
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away: the command's first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_a_value_listed_twice_in_an_axis_is_one_line(tmp_path, capsys, no_tune):
    path = write(tmp_path, GRID_OK + "grid: {router: [softmax, hash], seed: [0, 1, 0]}\n")
    assert "grid.seed: the value 0 is listed more than once" in one_error(capsys, [path, "--dry-run"])
    small = write(tmp_path, GRID_OK + "grid: {experts: [2]}\n", "small.yaml")
    assert "grid.seed: the value 3 is listed more than once" in one_error(capsys, [small, "--set", "grid.seed=[3, 3]"])


def test_odd_keys_are_refused_on_one_line(tmp_path, capsys, no_tune):
    path = write(tmp_path, GRID_OK + "grid: {experts: [2]}\nbudgets: {small: {3: 1}}\n")
    assert "budgets.small: --set 3: a key is text" in one_error(capsys, [path, "--dry-run"])
    line = one_error(capsys, [write(tmp_path, GRID_OK + "grid: {experts: [2]}\n", "ok.yaml"), "--set", "a\x85b=1"])
    assert "--set a\\x85b: unknown key" in line  # a line break inside the echoed key is shown escaped
