"""--resume means the same run, through real Ray Tune: a sweep interrupted after some trials and resumed without
repeating its options (they are restored from sweep.json) gives the records of the same sweep never interrupted,
bitwise on the CPU, seeds stacked or not; a resumed record's resumed_from_epoch is true to what happened. The sweep
never interrupted is trained here, in this process, as its trials train (``moe.training.loop.run`` of a trial's
config, ``moe.training.stacked.train_stacked`` of a seed group's, as bench.sweep.trial calls them; test_trial_resume
does the same): not a second Ray sweep per case."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import pipeline
from bench.sweep import runner
from moe.data import load_dataset
from moe.records.record import jsonable
from moe.training.loop import run
from moe.training.stacked import train_stacked

pytestmark = [pytest.mark.ray, pytest.mark.slow,
              pytest.mark.usefixtures("shared_figures")]  # the report's figures: drawn once per test run (conftest)

# one trial (or seed group) at a time: one trial worker per run, reused by its trials; the interruption after 2
# trials comes while the next runs
GRID = {"budget": {"epochs": 3, "n_train": 240, "n_test": 120}, "resources": {"cpu": 1, "max_concurrent": 1},
        "grid": {"router": ["softmax"], "experts": [2, 3], "seed": [0, 1]}}


def records(out: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def uninterrupted(path: str, grouped: dict[int, dict]) -> dict[int, dict]:
    """Each trial's record as the sweep never interrupted writes it (JSON), trained here from the trials' configs of
    the sweep file (``bench.sweep.runner.prepare``): a trial alone by ``run``, a seed group (the members that
    ``grouped[i]["bench"]["group"]`` names) by ``train_stacked`` of its seeds."""
    configs = {t.index: t.config for t in runner.prepare(path)[1]}
    data, out = load_dataset("gm6"), {}
    for i in sorted(configs):
        if i in out:
            continue
        group = grouped[i]["bench"].get("group")
        if group:
            cfg = {k: v for k, v in configs[i].items() if k != "seed"}
            assert all({k: v for k, v in configs[j].items() if k != "seed"} == cfg for j in group)
            made = train_stacked(cfg, [configs[j]["seed"] for j in group], data=data.to_numpy())
            out.update(zip(group, made))
        else:
            out[i] = run(configs[i], data=data)
    return {i: json.loads(json.dumps(jsonable(r))) for i, r in out.items()}


def numbers(rec: dict) -> tuple:
    history = [{k: v for k, v in h.items() if k != "epoch_s"} for h in rec["history"]]
    return history, rec["test"], rec["test_assignment"], rec["validation"]


@pytest.mark.parametrize("stack", ["off", "on"])
def test_an_interrupted_sweep_resumed_equals_the_uninterrupted_one(ray_local, sweep_file, tmp_path, stack):
    path = sweep_file(**GRID)
    part = pipeline.run_sweep(path, out=tmp_path / "part", stack_seeds=stack, quiet=True, _interrupt_after=2)
    assert part.attrs["interrupted"] and len(records(tmp_path / "part")) < 4
    before = set(records(tmp_path / "part"))
    pipeline.run_sweep(resume=tmp_path / "part", quiet=True)  # no --stack-seeds: the one it ran with
    resumed = records(tmp_path / "part")
    assert sorted(resumed) == [0, 1, 2, 3]
    whole = uninterrupted(path, resumed)
    assert sorted(whole) == [0, 1, 2, 3]
    for i in range(4):
        assert numbers(resumed[i]) == numbers(whole[i]), f"trial {i}"
        assert ("group" in resumed[i]["bench"]) == (stack == "on")  # the grouping it ran with, restored
    for i in set(range(4)) - before:
        k = resumed[i]["resumed_from_epoch"]
        if stack == "on":
            assert k is None  # a seed group checkpoints nothing: it ran again from epoch 1, and says so
        else:
            # None: it had no checkpoint yet; 3: the interruption came after its last epoch's checkpoint and before
            # its record, so the resumed trial only evaluates and writes it (a race of the Ctrl-C, both true)
            assert k is None or 1 <= k <= 3
            assert len(resumed[i]["history"]) == 3
