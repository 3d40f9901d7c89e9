"""bench.speed.same_records: the records of two code versions compared leaf by leaf; the same code writes equal
records (same seed, same numbers on the CPU); a difference is reported with where it is and its size."""
from __future__ import annotations

import json
import math

from bench.speed import same_records as sr


def test_compare_finds_each_kind_of_difference():
    a = {"x": {"test": {"accuracy": 0.5, "nmi": math.nan}, "history": [{"loss": 1.0}], "status": "ok"}}
    assert sr.compare(a, json.loads(json.dumps(a))) == []  # NaN equals NaN here
    b = {"x": {"test": {"accuracy": 0.5 + 1e-9, "nmi": math.nan}, "history": [{"loss": 1.0}], "status": "ok"}}
    (name, where, size), = sr.compare(a, b)
    assert name == "x" and where == ".test.accuracy" and math.isclose(size, 1e-9, rel_tol=1e-6)
    c = {"x": {"test": {"accuracy": 0.5, "nmi": math.nan}, "history": [{"loss": 1.0}, {"loss": 0.9}], "status": "ok"}}
    assert sr.compare(a, c) == [("x", ".history", math.inf)]  # one more epoch
    d = {"x": {"test": {"accuracy": 0.5}, "history": [{"loss": 1.0}], "status": "diverged"}}
    assert sr.compare(a, d)[0][2] == math.inf  # a missing score and a changed status
    assert sr.compare(a, {"y": a["x"]}) == [("x", "(only in one file)", math.inf), ("y", "(only in one file)", math.inf)]


def test_the_same_code_writes_equal_records_and_the_cli_says_so(tmp_path, capsys):
    only = '"experts": 1,'  # the one-expert gm6 configuration: a second of training
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert sr.main(["write", str(first), "--only", only]) == 0 and sr.main(["write", str(second), "--only", only]) == 0
    records = json.loads(first.read_text())
    assert len(records) == 1 and next(iter(records.values()))["status"] == "ok"
    assert "timing" not in next(iter(records.values()))
    assert sr.main(["compare", str(first), str(second)]) == 0
    assert "1 of 1 configurations have equal records (all)" in capsys.readouterr().out
    changed = json.loads(second.read_text())
    next(iter(changed.values()))["test"]["accuracy"] += 0.01
    second.write_text(json.dumps(changed))
    assert sr.main(["compare", str(first), str(second)]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "largest at .test.accuracy (0.01)" in out and "0 of 1 configurations" in out
    assert sr.main(["write", str(first), "--only", "no such thing"]) == 2
    assert sr.main(["compare", str(first), str(tmp_path / "missing.json")]) == 2
