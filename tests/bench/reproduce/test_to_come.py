"""REPRODUCTION.md's generated 'Runs still to come' (``bench.reproduce.to_come``): per sweep, its file's full grid
against the runs its directory has finished; per claim, the missing runs its filters could read."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.reproduce import claims, cli, runner, to_come
from bench.sweep import spec
from bench.sweep.layout import SweepDir
from bench.table.runs import runs_frame
from moe.records.files import atomic_write_bytes

_DRAWN: dict[str, list[tuple[str, str, bytes]]] = {}  # what drawn_once keeps: sweep, runs, records -> its figures


@pytest.fixture
def drawn_once(monkeypatch):
    """For these tests about REPRODUCTION.md's text and verdicts, not its figures: a sweep's figures
    (``bench.reproduce.figures.PLOTS``, as the runner calls them) drawn once in this module for the same runs table
    and records, and written again (the same names and bytes: drawing is deterministic) for the next report that
    draws them. What draws them is tested by test_reproduction_report, which draws for real."""
    plots = dict(runner.PLOTS)

    def kept(name: str):
        def draw(runs, records, folder: Path):
            key = json.dumps([name, runs.to_csv(index=False), records], sort_keys=True, default=repr)
            if key not in _DRAWN:
                _DRAWN[key] = [(caption, path.name, path.read_bytes()) for caption, path in plots[name](runs, records, folder)]
            return [(caption, atomic_write_bytes(Path(folder) / file, png)) for caption, file, png in _DRAWN[key]]
        return draw

    monkeypatch.setattr(runner, "PLOTS", {name: kept(name) for name in plots})


def balancing_dir(root, seeds=(0, 1, 2), failed=()):
    """A balancing directory of E = 10 (the seed budget's grid) whose runs.csv has an ok row per trial but ``failed``."""
    plan = {**runner.budget_overrides("seed", "balancing"), "seed": list(seeds)}
    sweep = spec.load("balancing", plan)
    trials = spec.validate(sweep)
    folder = SweepDir(root / "balancing")
    folder.create(sweep, trials)
    records = [{"status": "error" if t.index in failed else "ok", "config": t.config, "test": {"accuracy": 0.9},
                "bench": {"index": t.index, "name": t.name, "trial_s": 1.0}} for t in trials]
    runs_frame(records).to_csv(folder.runs_csv, index=False)
    return folder, plan, trials


def test_seed_ranges():
    assert to_come.seeds_text([0, 1, 2, 3, 4]) == "0-4" and to_come.seeds_text([3, 0, 5, 6, 1]) == "0-1, 3, 5-6"
    assert to_come.seeds_text([7]) == "7"


def test_a_partial_directory_lists_what_its_full_grid_lacks(tmp_path):
    folder, plan, trials = balancing_dir(tmp_path, failed=(4,))
    item = to_come.sweep_to_come("balancing", folder.root, plan, claims.for_sweep("balancing"))
    # full grid: 6 weights x E 5, 10, 20 x seeds 0-4 = 90; finished: 17 of the 18 E = 10 runs (one ended in error)
    assert (item.target, item.total, item.done, item.extra, len(item.missing)) == ("the full grid", 90, 17, 0, 73)
    again = trials[4]
    assert any(t.config == again.config for t in item.missing)  # the failed run is still to come
    text = "\n".join(to_come.section([item]))
    assert "`balancing`: the full grid has 90 runs, 17 finished here; 73 to come: " in text
    assert ("experts 5, 20 x importance_loss 0.0, 0.01, 0.03, 0.1, 0.3, 1.0 (12 configurations) x seeds 0-4 (60 runs)"
            in text)
    assert again.config["seed"] == 1 and "(5 configurations) x seeds 3-4 (10 runs)" in text
    assert f"`{again.name}` x seeds 1, 3-4 (3 runs)" in text  # the failed run, with its configuration's seeds 3 and 4
    assert "`balancing.cheating_grows_with_balancing` waits for: " in text  # it reads every weight and E


def test_a_claim_waits_only_for_the_runs_its_config_filters_read(tmp_path):
    """The competence family of expert_count (explicit linear experts, not matched) waits for none of the implicit or
    matched runs; a filter on a score (competence) is left open."""
    item = to_come.sweep_to_come("expert_count", tmp_path / "none", runner.budget_overrides("seed", "expert_count"),
                                 claims.for_sweep("expert_count"))
    assert (item.total, item.done, len(item.missing)) == (170, 0, 170)
    family = item.waits["expert_count.accuracy_grows_with_experts"]
    assert len(family) == 45 and {(t.config["expert"], t.config.get("match_router")) for t in family} == {("linear", None)}
    assert len(item.waits["expert_count.accuracy_interpretability_tradeoff"]) == 170


def test_a_directory_of_other_settings_is_set_against_its_budget(tmp_path):
    plan = runner.budget_overrides("small", "pretrained_experts")  # fewer epochs: not the file's settings
    item = to_come.sweep_to_come("pretrained_experts", tmp_path / "none", plan, claims.for_sweep("pretrained_experts"))
    assert item.target == "the budget" and item.total == len(spec.load("pretrained_experts", plan).trials()) == 18
    assert "other settings" in item.note
    waits = item.waits["pretrained_experts.gate_follows_split"]
    assert {t.config["regime"] for t in waits} == {"pretrain_frozen_gate"} and {t.config["refit_init"] for t in waits} == {"same"}


def test_the_report_ends_with_the_runs_still_to_come(tmp_path, monkeypatch, drawn_once):
    monkeypatch.setattr(runner._Session, "ensure", lambda self: (_ for _ in ()).throw(AssertionError("Ray started")))
    folder, plan, _ = balancing_dir(tmp_path / "out", seeds=(0, 1, 2, 3, 4))
    cli.main(["balancing", "--report-only", "--out", str(tmp_path / "out")], budget_table={"balancing": plan})
    text = (tmp_path / "out" / "REPRODUCTION.md").read_text()
    tail = text[text.index("## Runs still to come"):]
    assert "`balancing`: the full grid has 90 runs, 30 finished here; 60 to come: experts 5, 20" in tail
    assert "x seeds 0-4 (60 runs)." in tail


def test_partial_judges_the_finished_runs_of_a_directory_with_runs_to_come(tmp_path, monkeypatch, capsys, drawn_once):
    """--report-only refuses a directory whose trials have not all finished (NOT RUN); with --partial it judges the
    finished ones, says so in the sweep's section, and lists the rest as still to come. Also for a budget beyond the
    directory's grid."""
    monkeypatch.setattr(runner._Session, "ensure", lambda self: (_ for _ in ()).throw(AssertionError("Ray started")))
    out = tmp_path / "out"
    folder, plan, trials = balancing_dir(out, seeds=(0, 1, 2, 3, 4))
    kept = trials[:18]  # seeds 3 and 4 of every weight not finished: runs.csv holds 18 of the 30 trials
    runs = runs_frame([{"status": "ok", "config": t.config, "test": {"accuracy": 0.9},
                        "bench": {"index": t.index, "name": t.name, "trial_s": 1.0}} for t in trials])
    runs[runs["seed"] <= 2].to_csv(folder.runs_csv, index=False)
    assert len(runs[runs["seed"] <= 2]) == 18 and len(kept) == 18
    args = ["balancing", "--report-only", "--out", str(out)]
    cli.main(args, budget_table={"balancing": plan})
    text = (out / "REPRODUCTION.md").read_text()
    assert "### `balancing.cheating_grows_with_balancing`: NOT RUN" in text and "(--partial judges the finished ones)" in text
    cli.main(args + ["--partial"], budget_table={"balancing": plan})
    text = (out / "REPRODUCTION.md").read_text()
    assert "NOT RUN" not in text.split("## Runs still to come")[0]
    assert "**Partial**: 18 of the directory's 30 trials have finished; the verdicts below read" in text
    assert "| `balancing.cheating_grows_with_balancing` | **INCONCLUSIVE** (partial: the finished runs) |" in text
    assert "18 runs (18 ok)" in text and "experts 10 x importance_loss 0.0, 0.01, 0.03, 0.1, 0.3, 1.0 (6 configurations) x seeds 3-4 (12 runs)" in text
    bigger = {**plan, "experts": [5, 10]}  # a budget beyond the directory: judged on what is there, the rest to come
    cli.main(args + ["--partial"], budget_table={"balancing": bigger})
    text = (out / "REPRODUCTION.md").read_text()
    assert "**Partial**: the budget asks for experts 5 beyond the directory's runs (30 run(s) to come); 18 of the" in text
    assert cli.main(["balancing", "--partial", "--out", str(out)]) == 2
    assert "--partial goes with --report-only" in capsys.readouterr().err


def _lr_asymmetry_dir(tmp_path, monkeypatch):
    """An lr_asymmetry sweep directory at the seed budget with 3 seeds and no runs yet (Ray must not start):
    (the --out folder, the budget's overrides, the sweep directory, its trials)."""
    monkeypatch.setattr(runner._Session, "ensure", lambda self: (_ for _ in ()).throw(AssertionError("Ray started")))
    out = tmp_path / "out"
    plan = {**runner.budget_overrides("seed", "lr_asymmetry"), "seed": [0, 1, 2]}
    sweep = spec.load("lr_asymmetry", plan)
    trials = spec.validate(sweep)
    folder = SweepDir(out / "lr_asymmetry")
    folder.create(sweep, trials)
    return out, plan, folder, trials


def test_partial_reads_the_largest_planned_value_not_the_largest_finished(tmp_path, monkeypatch, drawn_once):
    """A claim at the largest lr ratio judged with --partial before the ratio-100 runs finished reads none of the
    ratio-30 runs (the largest finished): its condition has no runs yet, and the ratio-100 runs are still to come."""
    out, plan, folder, trials = _lr_asymmetry_dir(tmp_path, monkeypatch)
    records = [{"status": "ok", "config": t.config, "test": {"accuracy": 0.9}, "allocation": [[30, 10], [5, 35]],
                "bench": {"index": t.index, "name": t.name, "trial_s": 1.0}} for t in trials]
    runs = runs_frame(records)
    runs[runs["lr_ratio"] < 100].to_csv(folder.runs_csv, index=False)
    args = ["lr_asymmetry", "--report-only", "--partial", "--out", str(out)]
    cli.main(args, budget_table={"lr_asymmetry": plan})
    verdicts = {v["claim"]: v for v in json.loads((out / "reproduction.json").read_text())["claims"]}
    fast = verdicts["lr_asymmetry.fast_expert_wins"]
    assert fast["conditions"][0]["configurations"] == [] and fast["verdict"] == "INCONCLUSIVE"
    text = (out / "REPRODUCTION.md").read_text()
    assert "**Partial**: 12 of the directory's 15 trials have finished" in text
    assert "`lr_asymmetry.fast_expert_wins` waits for: `softmax[lr_ratio=100]` x seeds 0-2 (3 runs)." in text
    # the same runs all finished: the largest ratio is read
    runs.to_csv(folder.runs_csv, index=False)
    cli.main(args, budget_table={"lr_asymmetry": plan})
    verdicts = {v["claim"]: v for v in json.loads((out / "reproduction.json").read_text())["claims"]}
    assert verdicts["lr_asymmetry.fast_expert_wins"]["conditions"][0]["configurations"] == ["softmax[lr_ratio=100]"]


def test_the_largest_ratio_stays_the_planned_one_when_its_runs_ended_in_error(tmp_path, monkeypatch, drawn_once):
    """A finished directory whose ratio-100 runs all ended in error: fast_expert_wins reads no configuration (it is
    not judged on the ratio-30 runs under the label 'at the largest lr ratio')."""
    out, plan, folder, trials = _lr_asymmetry_dir(tmp_path, monkeypatch)
    runs_frame([{"status": "error" if t.config["lr_ratio"] == 100 else "ok", "config": t.config,
                 "test": {"accuracy": 0.9}, "allocation": [[30, 10], [5, 35]],
                 "bench": {"index": t.index, "name": t.name, "trial_s": 1.0}} for t in trials]).to_csv(folder.runs_csv, index=False)
    cli.main(["lr_asymmetry", "--report-only", "--out", str(out)], budget_table={"lr_asymmetry": plan})
    verdicts = {v["claim"]: v for v in json.loads((out / "reproduction.json").read_text())["claims"]}
    assert verdicts["lr_asymmetry.fast_expert_wins"]["conditions"][0]["configurations"] == []
    assert verdicts["lr_asymmetry.share_grows_with_ratio"]["conditions"][0]["n"] == 12  # the trend reads every ok run
