"""The tables read each record once (``bench.table.record_cache``): a rebuild reads no record that did not change,
re-reads a changed or new one (and, for the seed stability, the other runs of its configuration), and what it
builds equals a build from the records alone; a damaged record is reported by every build and never kept; a
cache of other code, or one that does not parse, is ignored."""
from __future__ import annotations

import copy
import json
import shutil

import pandas as pd
import pytest

from bench.sweep.layout import SweepDir
from bench.table import record_cache
from bench.table.record_cache import RecordTable
from bench.table.runs import runs_frame
from bench.table.tables import build
from tests.bench.sweep_dirs import TINY, make_sweep_dir

TABLES = ("runs.csv", "results_long.csv", "table.md", "table.tex", "pareto.csv")


@pytest.fixture
def sweep(tmp_path):
    return make_sweep_dir(tmp_path / "s", {**TINY, "grid": {**TINY["grid"], "seed": [0, 1, 2]}})  # 2 x 3 runs


def tables(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in TABLES}


def from_scratch(folder, tmp_path):
    """The tables of a copy of ``folder`` without its cache, and its runs built from the records alone."""
    copy_dir = tmp_path / "scratch"
    shutil.rmtree(copy_dir, ignore_errors=True)
    shutil.copytree(folder, copy_dir, ignore=shutil.ignore_patterns(".cache"))
    build(copy_dir, plots=False)
    return tables(copy_dir), runs_frame(SweepDir(copy_dir).read_records())


def test_a_rebuild_reads_only_the_records_that_changed(sweep, tmp_path):
    folder = SweepDir(sweep)
    first = build(sweep, plots=False)
    assert folder.record_cache_path.is_file()
    assert RecordTable(folder).read == 0  # nothing changed: no record parsed
    again = build(sweep, plots=False)
    pd.testing.assert_frame_equal(again["runs"], first["runs"], check_exact=True)

    # one record changes (a score and its test assignments), one is new (another seed of its configuration)
    i0 = int(first["runs"].dropna(subset=["stability_nmi"])["index"].iloc[0])  # a configuration with stability
    rec = json.loads(folder.record_path(i0).read_text())
    rec["test"]["accuracy"] = 0.123456789
    rec["test_assignment"] = [(a + 1) % 3 for a in rec["test_assignment"]]
    folder.write_record(i0, rec)
    new = copy.deepcopy(rec)
    new["bench"] = {**new["bench"], "index": 6}
    new["test_assignment"] = list(reversed(new["test_assignment"]))
    folder.write_record(6, new)
    table = RecordTable(folder)
    assert table.read == 2  # the changed record and the new one
    runs = table.runs()
    same_config = [i for i, e in table.entries.items() if e["row"]["name"] == rec["bench"]["name"]]
    assert len(same_config) == 4 and table.read == 2 + 2  # the stability of record 0's configuration: its other runs

    built = build(sweep, plots=False)
    want_tables, want_runs = from_scratch(sweep, tmp_path)
    pd.testing.assert_frame_equal(built["runs"], want_runs, check_exact=True)
    pd.testing.assert_frame_equal(runs, want_runs, check_exact=True)
    assert tables(sweep) == want_tables
    by_index = built["runs"].set_index("index")
    assert by_index.loc[i0, "accuracy"] == 0.123456789
    assert by_index.loc[[i for i in same_config], "stability_nmi"].notna().all()
    assert not by_index.loc[i0, "stability_nmi"] == first["runs"].set_index("index").loc[i0, "stability_nmi"]

    # a record removed: dropped, the rest still read from the cache
    folder.record_path(6).unlink()
    table = RecordTable(folder)
    assert 6 not in table.entries and table.read == 0
    table.runs()
    assert table.read == 3  # the stability of the changed configuration (one run fewer): its 3 runs
    build(sweep, plots=False)
    assert tables(sweep) == from_scratch(sweep, tmp_path)[0]


def test_a_damaged_record_is_reported_by_every_build_and_never_kept(sweep, capsys):
    folder = SweepDir(sweep)
    folder.record_path(3).write_text('{"status": "ok", "conf')  # a write cut short
    for _ in range(2):
        runs = build(sweep, plots=False)["runs"]
        assert 3 not in set(runs["index"]) and len(runs) == 5
        assert "warning: skipping" in capsys.readouterr().err
    assert "0003.json" not in json.loads(folder.record_cache_path.read_text())["records"]


def test_a_cache_of_other_code_or_that_does_not_parse_is_ignored(sweep, monkeypatch):
    folder = SweepDir(sweep)
    build(sweep, plots=False)
    monkeypatch.setattr(record_cache, "_code_stamp", lambda: "other code")
    assert RecordTable(folder).read == 6
    monkeypatch.undo()
    folder.record_cache_path.write_text("{not json")
    assert RecordTable(folder).read == 6
    folder.record_cache_path.write_text("[]")
    assert RecordTable(folder).read == 6


def test_a_record_rewritten_with_the_same_size_is_read_again(sweep):
    """The identity is size, modification time and inode: a record replaced (atomically, a new file) by one of the
    same size is a new record even where the clock did not move."""
    folder = SweepDir(sweep)
    build(sweep, plots=False)
    rec = json.loads(folder.record_path(1).read_text())
    text = folder.record_path(1).read_text()
    old = json.dumps(rec["test"]["accuracy"])
    changed = text.replace(old, old[:-1] + ("1" if old[-1] != "1" else "2"), 1)
    assert len(changed) == len(text) and changed != text
    tmp = folder.record_path(1).with_suffix(".tmp")
    tmp.write_text(changed)
    tmp.replace(folder.record_path(1))
    table = RecordTable(folder)
    assert table.read >= 1
    assert table.entries[1]["row"]["accuracy"] == json.loads(changed)["test"]["accuracy"]
