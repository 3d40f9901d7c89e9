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


def test_compare_with_a_tolerance(tmp_path, capsys):
    a = {"x": {"test": {"accuracy": 0.5, "loss": 2.0}}, "y": {"test": {"accuracy": 0.5, "loss": 2.0}}}
    b = {"x": {"test": {"accuracy": 0.5 + 2e-7, "loss": 2.0}}, "y": {"test": {"accuracy": 0.5, "loss": 2.0 + 1e-3}}}
    assert sr.compare(a, b, tolerance=1e-6) == [("y", ".test.loss", abs(2.001 - 2.0) / 2.001)]  # relative above 1
    assert [n for n, _, _ in sr.compare(a, b)] == ["x", "y"]  # bitwise: both differ
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(a))
    second.write_text(json.dumps({**b, "y": a["y"]}))
    assert sr.main(["compare", str(first), str(second), "--tolerance", "1e-6"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 configurations have records within 1e-06 (all)" in out and "largest difference: 2e-07 at .test.accuracy of x" in out
    assert sr.main(["compare", str(first), str(second), "--tolerance", "-1"]) == 2
    assert "--tolerance must be a finite number >= 0" in capsys.readouterr().err
