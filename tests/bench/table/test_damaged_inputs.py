"""bench.table and bench.report on damaged or foreign inputs: each bad record is skipped with one warning line
naming the file and what is wrong (a record without the sweep's ``bench`` block is named foreign), the tables
and the report are built from the rest; an unreadable runs.csv or sweep.json is one ``error:`` line, exit 2.
Never a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.report.cli import main as report_main
from bench.table.cli import main as table_main
from tests.bench.sweep_dirs import make_sweep_dir

pytestmark = [pytest.mark.slow,  # trains the 4 runs of a tiny sweep, then builds tables and reports
              pytest.mark.usefixtures("shared_figures")]  # their figures: drawn once per test run (conftest)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The tiny sweep's records and sweep.json. Each figure a damaged copy's report draws comes from the store of
    this test run (``shared_figures``): the first report draws them in this process, the others read them."""
    return make_sweep_dir(tmp_path_factory.mktemp("sweep") / "tiny")


def damaged_copy(sweep: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(sweep, folder)
    change(folder)
    return folder


def no_traceback(captured) -> None:
    assert "Traceback" not in captured.err + captured.out


def set_record(folder: Path, index: int, edit) -> None:
    path = folder / "records" / f"{index:04d}.json"
    rec = json.loads(path.read_text())
    edit(rec)
    path.write_text(json.dumps(rec))


def foreign(folder: Path) -> None:
    """A record of python -m moe.train (no bench block) copied into records/."""
    rec = json.loads((folder / "records" / "0000.json").read_text())
    del rec["bench"]
    (folder / "records" / "0004.json").write_text(json.dumps(rec))


@pytest.mark.parametrize("change, needle", [
    (foreign, "a foreign record: it has no 'bench' block"),
    (lambda f: set_record(f, 3, lambda r: r["bench"].update(name=5)), "bench.name: expected text"),
    (lambda f: set_record(f, 3, lambda r: r["test"].update(accuracy="high")), "test.accuracy: expected a number"),
    (lambda f: set_record(f, 3, lambda r: r.update(validation=[1])), "validation: expected a JSON object"),
    (lambda f: set_record(f, 3, lambda r: r.update(allocation=[[1, "x"]])), "allocation: expected a class x expert"),
    (lambda f: set_record(f, 3, lambda r: r.update(test_assignment=3)), "test_assignment: expected a JSON array"),
    (lambda f: set_record(f, 3, lambda r: r.update(routing_dynamics=[])), "routing_dynamics: expected a JSON object"),
    (lambda f: (f / "records" / "0003.json").write_text("[1, 2"), "records/0003.json"),
])
@pytest.mark.parametrize("main", [table_main, report_main])
def test_each_bad_record_is_one_warning_and_the_rest_is_built(sweep, tmp_path, capsys, change, needle, main):
    folder = damaged_copy(sweep, tmp_path, change)
    assert main([str(folder)]) == 0
    captured = capsys.readouterr()
    no_traceback(captured)
    warnings = [ln for ln in captured.err.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) >= 1 and all(needle in w or "records/0003.json" in w or "records/0004.json" in w
                                      for w in warnings), captured.err
    assert any(needle in w for w in warnings), captured.err
    if main is table_main:  # the rows of the good records are all there
        import pandas as pd

        runs = pd.read_csv(folder / "runs.csv")
        assert sorted(runs["index"]) == ([0, 1, 2, 3] if change is foreign else [0, 1, 2])


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xfe\x00garbage", "runs.csv"),
    (b"", "runs.csv"),
    (b"a,b\n1,2\n", "runs.csv"),  # no name or status column
    (b'index,name,status\n0,"x\n', "runs.csv"),
])
@pytest.mark.parametrize("main", [table_main, report_main])
def test_an_unreadable_runs_csv_is_one_error_line(tmp_path, capsys, content, needle, main):
    (tmp_path / "runs.csv").write_bytes(content)
    assert main([str(tmp_path)]) == 2
    captured = capsys.readouterr()
    no_traceback(captured)
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], captured.err


@pytest.mark.parametrize("content", ["[1, 2", "[]", '{"sweep": 3, "trials": []}', '{"sweep": {"name": 5}}'])
@pytest.mark.parametrize("main", [table_main, report_main])
def test_a_damaged_sweep_json_does_not_stop_the_tables(sweep, tmp_path, capsys, content, main):
    folder = damaged_copy(sweep, tmp_path, lambda f: (f / "sweep.json").write_text(content))
    assert main([str(folder)]) == 0
    no_traceback(capsys.readouterr())
