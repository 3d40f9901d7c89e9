"""Provenance: every record a run writes carries its git commit (and whether the tree was dirty), versions,
a fingerprint of its data, the kernel backend, the device and its start time; runs.csv rows carry them."""
from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import torch

import moe.records.provenance as prov
import moe.training.loop
from bench.table.runs import PROVENANCE_COLUMNS, record_row
from moe.data import Dataset

CFG = {"dataset": "gm6", "n_train": 120, "n_test": 60, "epochs": 1, "experts": 2}


@pytest.fixture(scope="module")
def record():
    return moe.training.loop.run(CFG)


def test_a_record_carries_every_provenance_field(record):
    p = record["provenance"]
    assert set(prov.FIELDS) <= set(p)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=prov._ROOT).stdout.strip()
    assert p["git"] == head and re.fullmatch(r"[0-9a-f]{40}", p["git"]) and isinstance(p["git_dirty"], bool)
    assert p["versions"]["torch"] == torch.__version__ and "python" in p["versions"]
    assert re.fullmatch(r"[0-9a-f]{64}", p["data_sha256"])
    assert p["kernel_backend"] == "torch" and p["device"] == "cpu" and p["host"]
    started = datetime.fromisoformat(p["started_at"].replace("Z", "+00:00"))
    now = datetime.now(timezone.utc)
    assert now - timedelta(minutes=10) < started <= now


def test_fingerprint_follows_the_data_and_nothing_else(record):
    again = moe.training.loop.run({**CFG, "seed": 1})  # another model seed: the same data
    other = moe.training.loop.run({**CFG, "data_seed": 1})  # other data
    assert again["provenance"]["data_sha256"] == record["provenance"]["data_sha256"]
    assert other["provenance"]["data_sha256"] != record["provenance"]["data_sha256"]
    x = torch.zeros(4, 2)
    d = Dataset("t", x, torch.zeros(4, dtype=torch.long), x.clone(), torch.zeros(4, dtype=torch.long), ["a"])
    before = prov.data_fingerprint(d)
    d.x_test[0, 0] = 1e-7
    assert prov.data_fingerprint(d) != before and prov.data_fingerprint(None) is None
    assert prov.data_fingerprint(d.to_numpy()) == prov.data_fingerprint(d)  # arrays or tensors alike


def test_git_state_without_git(monkeypatch):
    def no_git(*a, **k):
        raise OSError("no git")
    monkeypatch.setattr(prov.subprocess, "run", no_git)
    assert prov.git_state() == {"git": None, "git_dirty": None}


def test_runs_csv_row_has_the_provenance_columns(record):
    row = record_row(record)
    assert all(c in row for c in PROVENANCE_COLUMNS)
    assert row["git_commit"] == record["provenance"]["git"] and row["data_sha256"] == record["provenance"]["data_sha256"]
    assert row["kernel_backend"] == "torch" and row["run_device"] == "cpu" and '"torch"' in row["versions"]
    old = {k: v for k, v in record.items() if k != "provenance"}  # a record written before provenance existed
    assert record_row(old)["git_commit"] is None


def test_error_records_carry_provenance(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(moe.training.loop, "run", boom)
    out = tmp_path / "r.json"
    with pytest.raises(RuntimeError):
        moe.training.loop.main(["--dataset", "gm6", "--out", str(out), "--quiet"])
    rec = json.loads(out.read_text())
    assert rec["status"] == "error" and set(prov.FIELDS) <= set(rec["provenance"])
    assert re.fullmatch(r"[0-9a-f]{40}", rec["provenance"]["git"]) and rec["provenance"]["data_sha256"] is None
