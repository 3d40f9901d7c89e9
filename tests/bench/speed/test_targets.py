"""The one command that measures every speed target (``bench.speed.targets``): its arguments, its summary's
verdicts, the record comparison of two sweep directories, and a run of two steps at tiny sizes."""
from __future__ import annotations

import json

import pytest

from bench.speed import targets
from tests.bench.sweep_dirs import make_sweep_dir


@pytest.mark.parametrize("argv, says", [
    (["--sizes", "30"], "multiple of 20"),
    (["--only", "tables"], "invalid choice"),
    (["--reference", "no-such-dir"], "no sweep records"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, says, capsys):
    with pytest.raises(SystemExit) as info:
        targets.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m bench.speed.targets: error:") and says in err[-1], err


def scale_result(seconds_1000: float, mb_1000: float, residual: float) -> dict:
    rows = [{"runs": n, "wall_s": s, "peak_mb": mb, "load": 0.5}
            for n, s, mb in ((100, 2.0, 500.0), (1000, seconds_1000, mb_1000), (10000, 150.0, 900.0))]
    return {"rows": rows, "line": {"per_1000_s": 15.0, "fixed_s": 1.0, "max_rel_residual": residual}}


def test_the_summary_judges_each_target_and_none_for_a_narrowed_command():
    results = {"scale": scale_result(19.0, 2100.0, 0.05),
               "sweep": {"wall_s": 36.0, "tuner_s": 20.0, "runs": "60 ok", "load": 0.3, "differ": []},
               "fast": {"wall_s": 29.0, "summary": "1 passed", "load": 0.2},
               "full": {"wall_s": 200.0, "summary": "1 passed", "load": 0.2}}
    rows = {what: (target, met) for what, _, target, met in
            targets.summary_rows(results, {"sweep": False, "tests": False})}
    assert rows["1,000 runs: tables + report.html"] == ("< 20 s", "yes")
    assert rows["1,000 runs: peak memory"] == ("< 2048 MB", "NO")
    assert rows["10,000 runs: tables + report.html"] == ("< 180 s", "yes")
    assert rows["100 runs: tables + report.html"] == ("-", "-")
    assert rows["slope through the sizes"][1] == "yes"
    assert rows["python3 run.py sweep, end to end"] == ("< 35 s", "NO")
    assert rows["the sweep's records against --reference"] == ("equal", "yes")
    assert rows["python3 run.py test --fast"] == ("< 30 s", "yes")
    assert rows["python3 run.py test"] == ("< 180 s", "NO")
    # a line bent by the sizes is not linear; a narrowed command has no target
    results["scale"] = scale_result(10.0, 100.0, 0.4)
    rows = {what: (target, met) for what, _, target, met in
            targets.summary_rows(results, {"sweep": True, "tests": True})}
    assert rows["slope through the sizes"][1] == "NO"
    assert rows["python3 run.py sweep, end to end"] == ("-", "-")
    assert rows["python3 run.py test --fast"] == ("-", "-") and rows["python3 run.py test"] == ("-", "-")


def test_records_of_two_sweep_directories_are_compared_without_when_and_where(tmp_path):
    def elsewhere(rec):  # another machine, another time: the same training
        rec["timing"] = {"train_s": 99.0}
        rec["bench"].update(trial_s=7.0, node_id="another", pid=4321, trial_id="x_00001", started_at=1.0, ended_at=2.0)
        for h in rec["history"]:
            h["epoch_s"] = 3.0

    a = targets.sweep_records(make_sweep_dir(tmp_path / "a"))
    assert len(a) == 4
    assert targets.differing(a, targets.sweep_records(make_sweep_dir(tmp_path / "b", edit=elsewhere))) == []

    def retrained(rec):
        rec["test"]["accuracy"] += 1e-6 if rec["seed"] == 1 else 0.0

    differ = targets.differing(a, targets.sweep_records(make_sweep_dir(tmp_path / "c", edit=retrained)))
    assert len(differ) == 2 and all("seed 1" in d and "accuracy" in d for d in differ), differ


@pytest.mark.slow  # trains the scale benchmark's 4 base runs, builds two reports and runs pytest in fresh processes
def test_two_steps_at_tiny_sizes_write_their_figures(tmp_path, capsys):
    out = tmp_path / "t.json"
    # one test in one process (-n 0): no pytest-xdist workers, each importing the project, for a single test
    code = targets.main(["--only", "scale", "fast", "--sizes", "40", "20", "--out", str(out),
                         "--pytest-args", "tests/bench/speed/test_scale.py::test_fit_recovers_a_line -n 0"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    data = json.loads(out.read_text())
    assert [r["runs"] for r in data["results"]["scale"]["rows"]] == [20, 40]
    assert all(r["wall_s"] > 0 and r["peak_mb"] > 50 and 0 < r["cpu_s"] for r in data["results"]["scale"]["rows"])
    assert "1 passed" in data["results"]["fast"]["summary"] and set(data["results"]) == {"scale", "fast"}
    whats = {row["what"]: row for row in data["summary"]}
    assert whats["python3 run.py test --fast"]["target"] == "-"  # narrowed to one test: no target
    assert whats["20 runs: tables + report.html"]["target"] == "-"
    assert "summary" in printed and "slope through the sizes" in printed
