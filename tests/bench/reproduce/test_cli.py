"""The command line: unknown claim names and budgets give one clear line with the valid choices (exit 2),
before any work; --list shows every claim with its threshold."""
from __future__ import annotations

import json
import pytest

from bench.reproduce import claims
from bench.reproduce import cli
from bench.reproduce import engine
from bench.reproduce import runner
from bench.reproduce.results import ReproduceError


def test_unknown_claim_name_lists_the_valid_choices(capsys, tmp_path):
    assert cli.main(["lr_asymetry", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown claim 'lr_asymetry' (did you mean 'lr_asymmetry'?); valid choices: all, ")
    assert "cheating.black_box_router_cheats" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing was started


def test_bad_budget_lists_the_valid_choices(capsys, tmp_path):
    assert cli.main(["all", "--budget", "huge", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err == "error: --budget 'huge': unknown budget; valid choices: paper, small, seed\n"
    assert not (tmp_path / "x").exists()


def test_list_shows_every_claim_with_its_threshold(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for claim in claims.CLAIMS:
        assert claim.name in out
        for cond in claim.conditions:
            assert engine.describe_condition(cond) in out


def test_names_select_claims():
    assert runner.select_claims("all") == list(claims.CLAIMS)
    assert [c.name for c in runner.select_claims("cheating")] == [c.name for c in claims.for_sweep("cheating")]
    assert [c.name for c in runner.select_claims("remedies.linear_router")] == ["remedies.linear_router"]
    with pytest.raises(ReproduceError, match="did you mean 'cheating'"):
        runner.select_claims("cheatin")


def work(sweep, count_trials) -> int:
    """Trials x training samples x epochs, each budget field counting 1 where the budget leaves it to the config."""
    return count_trials(sweep) * (sweep.budget.get("n_train") or 1) * (sweep.budget.get("epochs") or 1)


@pytest.mark.slow  # expands every sweep file under every budget
def test_budgets_cover_every_sweep_and_only_shrink_it():
    from bench.sweep.spec import count_trials, load, validate

    assert set(runner.SWEEPS) == set(claims.sweeps())
    for name in runner.SWEEPS:
        assert runner.budget_overrides("paper", name) == {}
        small = load(name, runner.budget_overrides("small", name))
        paper = load(name)
        validate(small)
        validate(paper)
        # smaller work: fewer trials, or as many on less data (the text sweep's small budget keeps its grid)
        assert work(small, count_trials) < work(paper, count_trials), name
        assert count_trials(small) <= count_trials(paper), name
        for field in ("epochs", "n_train"):
            assert (small.budget.get(field) or 0) <= (paper.budget.get(field) or 0), (name, field)
    with pytest.raises(ReproduceError, match="valid choices: paper, small, seed"):
        runner.budget_overrides("tiny", "cheating")


def test_ctrl_c_says_how_to_continue(capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "reproduce", interrupted)
    assert cli.main(["cheating", "--budget", "small", "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert f"continue with: python -m bench.reproduce cheating --budget small --out {tmp_path / 'o'}" in err


def test_a_full_disk_is_one_line_saying_how_to_continue(capsys, monkeypatch, tmp_path):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "o" / "REPRODUCTION.md"))

    monkeypatch.setattr(cli, "reproduce", full)
    assert cli.main(["cheating", "--budget", "small", "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"stopped: cannot write ({tmp_path / 'o' / 'REPRODUCTION.md'}): No space left on device. ")
    assert err.strip().endswith(f"then continue with: python -m bench.reproduce cheating --budget small --out {tmp_path / 'o'}")


def test_report_only_trains_nothing_and_says_how_far_each_sweep_got(capsys, tmp_path, monkeypatch):
    """--report-only: a sweep not started is 'not run yet', a sweep with unfinished trials says how many have
    finished; neither trains (no Ray is started), and the report and its JSON are still written."""
    from bench.sweep import spec
    from bench.sweep.layout import SweepDir

    def no_ray(*a, **k):
        raise AssertionError("--report-only started Ray")
    monkeypatch.setattr(runner._Session, "ensure", no_ray)
    out = tmp_path / "out"
    plan = runner.budget_overrides("small", "lr_asymmetry")
    sweep = spec.load("lr_asymmetry", plan)
    SweepDir(out / "lr_asymmetry").create(sweep, spec.validate(sweep))  # started, no trial finished
    assert cli.main(["lr_asymmetry", "--report-only", "--out", str(out)]) == 1
    text = (out / "REPRODUCTION.md").read_text()
    n = len(spec.validate(sweep))
    assert f"--report-only: 0 of {n} trials have finished; the same command without --report-only continues it" in text
    assert "### `lr_asymmetry.fast_expert_wins`: NOT RUN" in text
    assert cli.main(["fmnist_mnist_joint", "--report-only", "--out", str(tmp_path / "other")]) == 1
    assert "--report-only: not run yet" in (tmp_path / "other" / "REPRODUCTION.md").read_text()
    assert not (tmp_path / "other" / "fmnist_mnist_joint").exists()


@pytest.mark.slow  # trains 4 tiny gm6 runs in-process
def test_report_only_judges_a_finished_sweep_from_its_runs_without_rebuilding_it(tmp_path, monkeypatch):
    import moe.training.loop
    from bench.sweep import spec
    from bench.sweep.layout import SweepDir

    monkeypatch.setattr(runner._Session, "ensure", lambda self: (_ for _ in ()).throw(AssertionError("Ray started")))
    plan = {"epochs": 1, "n_train": 240, "n_test": 120, "lr_ratio": [1, 3, 100], "seed": [0, 1]}
    out = tmp_path / "out"
    sweep = spec.load("lr_asymmetry", plan)
    folder = SweepDir(out / "lr_asymmetry")
    folder.create(sweep, sweep.trials())
    for t in sweep.trials():  # every trial finished, as bench.sweep writes its record
        folder.write_record(t.index, {**moe.training.loop.run(t.config), "bench": {"index": t.index, "name": t.name, "trial_s": 1.0}})
    assert cli.main(["lr_asymmetry", "--report-only", "--out", str(out)], budget_table={"lr_asymmetry": plan}) == 0
    text = (out / "REPRODUCTION.md").read_text()
    assert "### `lr_asymmetry.fast_expert_wins`: NOT RUN" not in text and "6 runs (6 ok)" in text
    assert "total CPU time 0:06" in text  # 6 trials of 1 s
    assert not (folder.root / "table.md").exists()  # the sweep's own tables were not rebuilt
    assert "wall time not recorded" in text  # no call that trained it kept a time
    # the calls that trained the sweeps one at a time kept their times in reproduction.json; a later call keeps them
    data = json.loads((out / "reproduction.json").read_text())
    data["sweeps"]["lr_asymmetry"].update(wall_s=83.0, slots=2)
    data["sweeps"]["cheating"] = {"wall_s": 100.0, "trial_s": 190.0, "slots": 2}
    (out / "reproduction.json").write_text(json.dumps(data))
    assert cli.main(["lr_asymmetry", "--report-only", "--out", str(out)], budget_table={"lr_asymmetry": plan}) == 0
    assert "6 runs (6 ok); wall time 1:23 (sum of trial times 0:06 on 2 slots)" in (out / "REPRODUCTION.md").read_text()
    kept = json.loads((out / "reproduction.json").read_text())["sweeps"]
    assert kept["cheating"]["wall_s"] == 100.0 and kept["lr_asymmetry"]["wall_s"] == 83.0


def made(tmp_path, overrides):
    """A started lr_asymmetry directory whose sweep.json holds ``overrides``."""
    from bench.sweep import spec
    from bench.sweep.layout import SweepDir

    sweep = spec.load("lr_asymmetry", overrides)
    SweepDir(tmp_path / "lr_asymmetry").create(sweep, spec.validate(sweep))
    return tmp_path / "lr_asymmetry"


def test_report_only_reads_a_directory_whose_data_root_is_a_placeholder(tmp_path):
    """A published directory names no path of the machine that ran it: --report-only (nothing trained) does not compare
    the data root; continuing to train does, since the trials' configs name it."""
    plan = {"epochs": 1, "n_train": 240, "seed": [0, 1]}
    folder = made(tmp_path, {**plan, "data_root": "DATA_ROOT"})
    assert runner.check_continuable("lr_asymmetry", folder, {**plan, "data_root": "/data/here"}, report_only=True) is None
    with pytest.raises(ReproduceError, match="holds a sweep run with other settings"):
        runner.check_continuable("lr_asymmetry", folder, {**plan, "data_root": "/data/here"})
    with pytest.raises(ReproduceError, match="holds a sweep run with other settings"):  # anything else still counts
        runner.check_continuable("lr_asymmetry", folder, {**plan, "epochs": 2, "data_root": "/x"}, report_only=True)


def test_a_budget_with_more_seeds_grows_the_directory_and_report_only_waits_for_them(tmp_path, monkeypatch):
    plan = {"epochs": 1, "n_train": 240, "seed": [0, 1]}
    folder = made(tmp_path, plan)
    target = runner.check_continuable("lr_asymmetry", folder, {**plan, "seed": [0, 1, 2, 3]})
    assert [block["seed"] for block in target] == [[0, 1, 2, 3]]
    assert runner.check_continuable("lr_asymmetry", folder, plan) is None
    assert runner.check_continuable("lr_asymmetry", folder, {**plan, "seed": [1, 0]}) is None  # the same seeds
    with pytest.raises(ReproduceError, match=r"other settings \(the budget drops 5 run\(s\) the directory holds \(softmax\[lr_ratio=1\] seed 1"):  # a seed list that drops one is no growth
        runner.check_continuable("lr_asymmetry", folder, {**plan, "seed": [0, 2]})
    with pytest.raises(ReproduceError, match="other settings"):  # more seeds and another setting: refused
        runner.check_continuable("lr_asymmetry", folder, {**plan, "seed": [0, 1, 2], "epochs": 2})
    with pytest.raises(ReproduceError, match=r"--report-only: the budget asks for seed 2 beyond the directory's runs "
                                             r"\(5 run\(s\) to come\)"):
        runner.check_continuable("lr_asymmetry", folder, {**plan, "seed": [0, 1, 2]}, report_only=True)
    seen = {}

    def fake_run_sweep(name=None, **kwargs):
        seen.update(kwargs)
        raise ReproduceError("stop here")
    monkeypatch.setattr(runner.pipeline, "run_sweep", fake_run_sweep)
    monkeypatch.setattr(runner._Session, "ensure", lambda self: None)
    res = runner.run_sweep("lr_asymmetry", folder, {**plan, "seed": [0, 1, 2]}, runner._Session(None, False), quiet=True)
    assert seen.pop("grow_to")[0]["seed"] == [0, 1, 2]
    assert seen == {"resume": folder, "verbose": False, "quiet": True} and res.reason == "stop here"


def test_a_budget_with_more_values_of_any_axis_grows_the_directory_to_a_fresh_sweeps_trials(tmp_path):
    from bench.sweep import growth, spec
    from bench.sweep.layout import SweepDir

    plan = {"epochs": 1, "n_train": 240, "seed": [0, 1], "lr_ratio": [1, 100]}
    folder = made(tmp_path, plan)
    bigger = {**plan, "lr_ratio": [1, 10, 100], "seed": [0, 1, 2]}
    with pytest.raises(ReproduceError, match=r"the budget asks for seed 2; lr_ratio 10 beyond the directory's runs "
                                             r"\(5 run\(s\) to come\)"):
        runner.check_continuable("lr_asymmetry", folder, bigger, report_only=True)
    target = runner.check_continuable("lr_asymmetry", folder, bigger)
    sweep_dir = SweepDir(folder)
    _, trials = sweep_dir.read_meta()
    grown = sweep_dir.grow(trials, target)
    assert grown[:4] == trials and len(grown) == 9
    whole = spec.load("lr_asymmetry", bigger).trials()
    assert ({growth.config_key(t.config): t.name for t in grown} == {growth.config_key(t.config): t.name for t in whole})
    assert runner.check_continuable("lr_asymmetry", folder, bigger, report_only=True) is None  # grown: nothing to come
    with pytest.raises(ReproduceError, match=r"other settings \(the budget drops 3 run\(s\)"):  # a shrink is refused
        runner.check_continuable("lr_asymmetry", folder, {**bigger, "lr_ratio": [1, 10]})


def test_allow_changes_reaches_the_resumed_sweep(tmp_path, monkeypatch):
    """A directory whose sweep file or code changed since it started is continued or grown only when asked
    (--allow-changes, as bench.sweep's); without it bench.sweep refuses and the sweep is reported as not run."""
    plan = {"epochs": 1, "n_train": 240, "seed": [0, 1]}
    folder = made(tmp_path, plan)
    seen = []
    monkeypatch.setattr(runner.pipeline, "run_sweep", lambda name=None, **kw: seen.append(kw) or (_ for _ in ()).throw(
        ReproduceError("stop here")))
    monkeypatch.setattr(runner._Session, "ensure", lambda self: None)
    runner.run_sweep("lr_asymmetry", folder, {**plan, "seed": [0, 1, 2]}, runner._Session(None, False), quiet=True,
                     allow_changes=True)
    runner.run_sweep("lr_asymmetry", folder, plan, runner._Session(None, False), quiet=True)
    assert seen[0]["allow_changes"] is True and "grow_to" in seen[0] and "allow_changes" not in seen[1]
    assert cli.parser().parse_args(["all", "--allow-changes"]).allow_changes
