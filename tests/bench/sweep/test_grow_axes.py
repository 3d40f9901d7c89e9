"""Growing a sweep along any grid axis (``--resume DIR --add AXIS=VALUES``; bench.sweep.growth): the finished trials
keep their indices and records, the trials the grown grid adds are those a fresh sweep of that grid has (same names,
same configs), sweep.json notes the growth, and a target that drops anything is refused with one line."""
from __future__ import annotations

import json

import pytest

from bench.report.sweep import write_sweep_report
from bench.sweep import cli, growth, runner, spec
from bench.sweep.layout import SweepDir
from bench.sweep.spec import SweepError, Trial
from tests.bench.sweep.test_add_seeds import records_by_configuration, trained_by_configuration
from tests.bench.sweep.test_out_and_resume import fake_tune, one_error, snapshot, stored  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)


def made(sweep_file, tmp_path, grid, *, overrides=None, name="out"):
    """A sweep directory of ``grid`` with an ok record for every trial (as a finished run leaves it)."""
    sweep, trials = runner.prepare(sweep_file(grid=grid), overrides or {}, None)
    folder = SweepDir(tmp_path / name)
    folder.create(sweep, trials)
    for t in trials:
        folder.write_record(t.index, stored(t.index))
    return folder, trials


def fresh(sweep_file, grid) -> dict[str, Trial]:
    """The trials of a fresh sweep of ``grid``, by config."""
    return {growth.config_key(t.config): t for t in runner.prepare(sweep_file("whole", grid=grid), {}, None)[1]}


def test_grown_grid_adds_values_to_every_block_with_the_axis():
    grid = [{"expert": ["linear"], "experts": [1, 2], "seed": [0]}, {"match_loss": [1.0], "experts": [2], "seed": [0]}]
    out = growth.grown_grid(grid, {"experts": [2, 5, 20], "seed": [1]})
    assert out == [{"expert": ["linear"], "experts": [1, 2, 5, 20], "seed": [0, 1]},
                   {"match_loss": [1.0], "experts": [2, 5, 20], "seed": [0, 1]}]
    assert grid[0]["experts"] == [1, 2]  # the grid given is left as it is
    with pytest.raises(SweepError, match=r"--add lr: not an axis of this sweep's grid; valid choices: expert, experts, "
                                         r"seed, match_loss"):
        growth.grown_grid(grid, {"lr": [0.1]})


def test_dropped_and_new_values():
    have = [Trial(0, "a", {"router": "softmax", "experts": 10, "seed": 0}), Trial(1, "a", {"router": "softmax", "experts": 10, "seed": 1})]
    more = [Trial(0, "a", {"router": "softmax", "experts": 10, "seed": s}) for s in (0, 1, 2)] + \
           [Trial(3, "b", {"router": "hash", "experts": 20, "seed": 0, "data_root": "/x"})]
    assert growth.dropped(have, more) == [] and growth.dropped(more, have) == more[2:]
    assert growth.new_values(have, more) == {"seed": [2], "router": ["hash"], "experts": [20], "data_root": ["/x"]}
    assert growth.dropped(more[3:], [Trial(0, "b", {**more[3].config, "data_root": "DATA_ROOT"})], ignore=("data_root",)) == []
    assert growth.dropped_text(growth.dropped(more, have)) == "drops 2 run(s) the directory holds (a seed 2, b seed 0)"


def test_grown_to_keeps_the_trials_and_appends_the_missing_configs_in_the_target_order():
    have = [Trial(0, "a", {"experts": 10, "seed": 0}), Trial(1, "a", {"experts": 10, "seed": 1})]
    target = [Trial(i, f"e{e}", {"experts": e, "seed": s}) for i, (e, s) in enumerate((e, s) for e in (5, 10, 20) for s in (0, 1))]
    grown = growth.grown_to(have, target)
    assert grown[:2] == have
    assert [(t.index, t.config["experts"], t.config["seed"]) for t in grown[2:]] == [(2, 5, 0), (3, 5, 1), (4, 20, 0), (5, 20, 1)]
    assert growth.grown_to(have, target[2:4]) == have


def test_add_experts_runs_only_the_new_trials_equal_to_a_fresh_sweeps(sweep_file, tmp_path, fake_tune, capsys):
    folder, trials = made(sweep_file, tmp_path, {"router": ["softmax", "topk[k=2]"], "experts": [3], "seed": [0, 1]})
    before = snapshot(folder.records_dir)
    assert cli.main(["--resume", str(folder.root), "--add", "experts=[2,4]"]) == 0
    assert fake_tune == [[4, 5, 6, 7, 8, 9, 10, 11]]
    assert {k: v for k, v in snapshot(folder.records_dir).items() if k in before} == before  # kept records untouched
    meta, grown = folder.read_meta()
    assert grown[:4] == trials  # the finished trials keep their indices, names and configs
    whole = fresh(sweep_file, {"router": ["softmax", "topk[k=2]"], "experts": [2, 3, 4], "seed": [0, 1]})
    assert {growth.config_key(t.config): t.name for t in grown} == {k: t.name for k, t in whole.items()}
    assert meta["grid"][0]["experts"] == [3, 2, 4]
    state = json.loads(folder.meta_path.read_text())
    assert state["grown"] == [{"at": state["grown"][0]["at"], "added": {"experts": [2, 4]}, "trials": 8}]
    assert state["sweep"]["grid"][0]["experts"] == [3, 2, 4]
    assert "experts 2, 4 added (8 trials)" in write_sweep_report(folder.root).read_text()
    assert "8 trial(s) added for experts 2, 4; the 4 kept" in capsys.readouterr().out
    assert cli.main(["--resume", str(folder.root), "--add", "experts=4"]) == 0  # nothing new: nothing runs
    assert len(fake_tune) == 1 and len(json.loads(folder.meta_path.read_text())["grown"]) == 1


def test_two_axes_grow_to_their_product_and_overrides_follow(sweep_file, tmp_path, fake_tune):
    """The remedies case: more routers and another expert count at once give the whole product of the grown grid;
    an axis the sweep's --set overrides is grown in sweep.json's overrides too."""
    folder, trials = made(sweep_file, tmp_path, {"router": ["softmax", "topk[k=2]"], "experts": [3, 4], "seed": [0, 1]},
                          overrides={"experts": [3], "router": ["softmax"]})
    assert len(trials) == 2
    assert cli.main(["--resume", str(folder.root), "--add", 'router=["topk[k=2]"]', "--add", "experts=4"]) == 0
    meta, grown = folder.read_meta()
    whole = fresh(sweep_file, {"router": ["softmax", "topk[k=2]"], "experts": [3, 4], "seed": [0, 1]})
    assert len(grown) == 8 and {growth.config_key(t.config): t.name for t in grown} == {k: t.name for k, t in whole.items()}
    assert meta["overrides"] == {"experts": [3, 4], "router": ["softmax", "topk[k=2]"]}


def test_add_values_and_add_seeds_together(sweep_file, tmp_path, fake_tune):
    folder, _ = made(sweep_file, tmp_path, {"router": ["softmax"], "experts": [3], "seed": [0]})
    assert cli.main(["--resume", str(folder.root), "--add", "experts=2", "--add-seeds", "1"]) == 0
    _, grown = folder.read_meta()
    assert sorted((t.config["experts"], t.config["seed"]) for t in grown) == [(2, 0), (2, 1), (3, 0), (3, 1)]


@pytest.mark.parametrize("argv, needle", [
    (["--add", "experts=2"], "--add goes with --resume DIR"),
    (["--resume", "DIR", "--add", "lr=[0.1]"], "--add lr: not an axis of this sweep's grid; valid choices: router, experts, seed"),
    (["--resume", "DIR", "--add", "experts"], "--add 'experts': expected AXIS=VALUES (for example --add experts=[5,20]"),
    (["--resume", "DIR", "--add", "experts=[2,"], "--add 'experts=[2,': "),
    (["--resume", "DIR", "--add", "experts=[]"], "--add 'experts=[]': expected AXIS=VALUES with at least one value"),
    (["--resume", "DIR", "--add", "experts=[0]"], "--add: "),  # a config that is not valid: refused before any write
])
def test_bad_add_is_one_line_and_nothing_changes(sweep_file, tmp_path, fake_tune, capsys, argv, needle):
    folder, _ = made(sweep_file, tmp_path, {"router": ["softmax"], "experts": [3], "seed": [0]})
    before = snapshot(folder.root)
    line = one_error(capsys, [str(folder.root) if a == "DIR" else a for a in argv])
    assert needle in line and fake_tune == [] and snapshot(folder.root) == before


def test_grow_refuses_a_target_that_drops_a_value(sweep_file, tmp_path, fake_tune):
    folder, trials = made(sweep_file, tmp_path, {"router": ["softmax"], "experts": [3, 4], "seed": [0]})
    before = snapshot(folder.root)
    with pytest.raises(SweepError, match=r"the grown grid drops 1 run\(s\) the directory holds \(softmax\[experts=4\] seed 0\)"):
        folder.grow(trials, [{"router": ["softmax"], "experts": [3, 5], "seed": [0]}])
    with pytest.raises(SweepError, match="drops 2 run"):
        folder.grow(trials, [{"router": ["softmax"], "experts": [3, 4], "seed": [1]}])
    assert snapshot(folder.root) == before


def test_a_grid_in_other_blocks_that_holds_every_trial_grows_the_sweep(sweep_file, tmp_path, fake_tune):
    """A budget that gives one configuration more seeds than another is written in grid blocks: growing a one-block
    directory to it keeps every trial and adds only the missing ones."""
    folder, trials = made(sweep_file, tmp_path, {"router": ["softmax", "topk[k=2]"], "experts": [3], "seed": [0, 1]})
    blocks = [{"router": ["softmax"], "experts": [3], "seed": [0, 1, 2, 3]}, {"router": ["topk[k=2]"], "experts": [3], "seed": [0, 1]}]
    grown = folder.grow(trials, blocks)
    assert grown[:4] == trials and sorted((t.name, t.config["seed"]) for t in grown[4:]) == [("softmax[experts=3]", 2), ("softmax[experts=3]", 3)]
    assert folder.read_meta()[0]["grid"] == blocks


def test_set_grid_replaces_the_whole_grid_and_a_bad_one_is_one_line(sweep_file):
    """A budget gives one configuration other seeds than another with a grid of blocks (``grid:`` in its overrides)."""
    sweep = spec.load(sweep_file(), {"grid": [{"router": ["softmax"], "seed": [0, 1]}, {"router": ["hash"], "seed": [0]}]})
    assert [(t.config["router"], t.config["seed"]) for t in sweep.trials()] == [("softmax", 0), ("softmax", 1), ("hash", 0)]
    with pytest.raises(SweepError, match=r"^--set grid: must be a mapping of config field -> list of values"):
        spec.load(sweep_file(), {"grid": 3})
    with pytest.raises(SweepError, match=r"grid\.rooter: unknown config field"):
        spec.load(sweep_file(), {"grid": {"rooter": ["softmax"]}})


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_grown_by_expert_counts_equals_the_sweep_run_with_all_of_them(ray_local, sweep_file, tmp_path):
    from bench import pipeline

    path = sweep_file(budget={"epochs": 2, "n_train": 240, "n_test": 120},
                      resources={"cpu": 1, "max_concurrent": 1},  # one trial worker per run, reused by its trials
                      grid={"router": ["softmax"], "experts": [2], "seed": [0, 1]})
    pipeline.run_sweep(path, out=tmp_path / "grown", stack_seeds="off", quiet=True)
    before = snapshot(tmp_path / "grown" / "records")
    pipeline.run_sweep(resume=tmp_path / "grown", add_values={"experts": [3]}, quiet=True)

    grown, whole = records_by_configuration(tmp_path / "grown"), trained_by_configuration(path, {"experts": [2, 3]})
    assert len(grown) == 4 and grown == whole  # same configuration, same numbers, whatever the trial's index
    assert {k: v for k, v in snapshot(tmp_path / "grown" / "records").items() if k in before} == before
