"""Sweep files, overrides, canonical names, validation and the CLI's error paths (no Ray)."""
from __future__ import annotations

import pytest
import yaml

from bench.sweep import cli, layout, spec
from bench.sweep.cluster import ResourceError, resolve_resources, unreachable
from bench.sweep.spec import SweepError

QUICK_ROUTERS = ["softmax", "topk", "expert_choice", "hash"]


@pytest.mark.parametrize("name", sorted(spec.available()))
def test_every_sweep_file_loads_with_description_version_and_unique_trials(name):
    s = spec.load(name)
    trials = s.trials()
    assert s.description and isinstance(s.version, int)
    assert len(trials) == spec.count_trials(s) > 0
    keys = [(t.name, t.config.get("seed", 0)) for t in trials]
    assert len(set(keys)) == len(keys), "two trials share a configuration name and seed"
    assert [t.index for t in trials] == list(range(len(trials)))
    for t in trials:
        assert spec.parse_name(t.name).items() <= t.config.items(), "the name must say what the grid set"
    try:
        spec.validate(s)
    except SweepError as err:  # routers of another issue may not be registered yet
        pending = [p for p in err.problems if "unknown router" not in p]
        if pending:
            raise
        pytest.skip(f"{name}: routers not registered yet: {err.problems}")


def test_quick_sweep_is_the_issue_grid():
    s = spec.load("quick")
    trials = s.trials()
    assert len(trials) == 60 and s.dataset == "gm6"
    assert {t.config["router"] for t in trials} == set(QUICK_ROUTERS)
    assert {t.config.get("top_k") for t in trials if t.config["router"] == "topk"} == {1, 2}
    assert {t.config["experts"] for t in trials} == {2, 4, 8}
    assert {t.config["lr_ratio"] for t in trials} == {1, 100}
    assert {t.config["seed"] for t in trials} == {0, 1}
    assert "topk[k=2,experts=8,lr_ratio=100]" in {t.name for t in trials}
    assert s.resources["cpu"] == 1


def test_grid_values_names_mappings_and_unions():
    s = spec.from_mapping({"description": "d", "grid": [
        {"router": ["softmax", {"router": "topk", "k": 3}], "experts": [4], "lr": [0.001]},
        {"router": "topk[k=2, temperature=0.5]", "seed": [0, 1]},
    ]}, name="t")
    names = [t.name for t in s.trials()]
    assert names == ["softmax[experts=4,lr=0.001]", "topk[k=3,experts=4,lr=0.001]",
                     "topk[k=2,temperature=0.5]", "topk[k=2,temperature=0.5]"]
    assert s.trials()[2].config == {"dataset": "gm6", "router": "topk", "top_k": 2, "temperature": 0.5, "seed": 0}
    assert spec.parse_name("topk[k=2,experts=8,lr_ratio=100]") == {"router": "topk", "top_k": 2, "experts": 8, "lr_ratio": 100}
    assert spec.parse_name("softmax") == {"router": "softmax"}


def test_overrides_replace_axes_budget_settings_and_resources():
    s = spec.load("quick", spec.parse_set(["experts=[2, 4]", "epochs=3", "lr=0.05", "seed=7",
                                           "resources.cpu=0.5", "description=x", "grid.lr_ratio=[1]"]))
    trials = s.trials()
    assert len(trials) == 5 * 2 * 1 * 1
    assert {t.config["experts"] for t in trials} == {2, 4}
    assert all(t.config["epochs"] == 3 and t.config["lr"] == 0.05 and t.config["seed"] == 7 for t in trials)
    assert s.resources["cpu"] == 0.5 and s.description == "x"
    assert s.overrides["experts"] == [2, 4]


@pytest.mark.parametrize("pairs,needle", [
    (["epoch=3"], "did you mean 'epochs'"),
    (["resources.cpus=1"], "did you mean 'resources.cpu'"),
    (["nonsense"], "expected key=value"),
    (["experts=[2,"], "cannot read the value"),
])
def test_bad_set_keys_are_refused_with_a_hint(pairs, needle):
    with pytest.raises(SweepError, match=needle.replace("[", r"\[").replace("(", r"\(")):
        spec.load("quick", spec.parse_set(pairs))


@pytest.mark.parametrize("pairs,needle", [
    (["epochs=many"], "epochs: expected int, got 'many'"),
    (["router=softmx"], "router: unknown router 'softmx' (did you mean 'softmax'?)"),
    (["top_k=9", "experts=[2]"], "top_k: must be <= experts"),
    (["resources.cpu=0"], "resources.cpu: must be a number > 0"),
    (["resources.gpu=lots"], "resources.gpu: must be 'auto' or a number"),
])
def test_bad_set_values_name_the_field_and_the_configurations(pairs, needle):
    with pytest.raises(SweepError) as err:
        spec.validate(spec.load("quick", spec.parse_set(pairs)))
    assert any(needle in p for p in err.value.problems), err.value.problems
    if "expected int" in needle:
        assert "configuration(s): softmax[experts=2,lr_ratio=1]" in str(err.value)


def test_unknown_sweep_name_suggests_the_closest():
    with pytest.raises(SweepError, match=r"unknown sweep 'quik' \(did you mean 'quick'\?\); valid choices: .*quick"):
        spec.load("quik")


def test_duplicate_trials_and_unknown_keys_are_refused():
    with pytest.raises(SweepError, match="same config"):
        spec.validate(spec.from_mapping({"grid": {"router": ["softmax", "softmax"]}}, name="d"))
    with pytest.raises(SweepError, match=r"gird: unknown sweep key \(did you mean 'grid'\?\)"):
        spec.from_mapping({"gird": {}}, name="d")
    with pytest.raises(SweepError, match=r"grid.expert_count: unknown config field"):
        spec.from_mapping({"grid": {"expert_count": [2]}}, name="d")
    with pytest.raises(SweepError, match="budget.lr: not a budget field"):
        spec.from_mapping({"budget": {"lr": 1}, "grid": {"seed": [0]}}, name="d")


# --- the CLI (in-process: no Ray is started by any of these) ---

@pytest.mark.slow  # a bench.sweep subprocess
def test_cli_list_shows_trial_counts(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("quick "))
    assert "gm6" in lines[at] and lines[at + 1].split()[:2] == ["(file)", "60"]


def test_cli_dry_run_prints_every_trial_config(capsys, sweep_file):
    assert cli.main([sweep_file(), "--dry-run", "--set", "epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "4 trials on gm6" in out
    assert '"epochs": 1' in out and "topk[k=2,experts=2]" in out
    assert len([ln for ln in out.splitlines() if ln.strip()[:1].isdigit()]) == 4


@pytest.mark.parametrize("argv,needle", [
    (["quik"], "unknown sweep 'quik' (did you mean 'quick'?)"),
    (["smoke", "--set", "epochs=-1"], "epochs: must be >= 1"),
    (["smoke", "--set", "epoch=2"], "did you mean 'epochs'"),
    (["smoke", "--dry-run", "--set", "router=nope"], "router: unknown router 'nope'"),
    (["smoke", "--resume", "/nonexistent/dir"], "no sweep.json there"),
])
def test_cli_errors_are_one_clear_line_and_exit_2(capsys, argv, needle):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("error: ")
    assert "Traceback" not in err


def test_resources_too_large_for_any_node_are_refused():
    cluster = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 1.0}]
    with pytest.raises(ResourceError, match=r"asks for 4 CPU\(s\) but the largest node of the cluster has 2"):
        resolve_resources({"cpu": 4, "gpu": "auto"}, cluster, 10)
    with pytest.raises(ResourceError, match="GPU"):
        resolve_resources({"cpu": 1, "gpu": 1}, cluster, 10)
    assert resolve_resources({"cpu": 1, "gpu": "auto"}, cluster, 10) == {"cpu": 1.0, "gpu": 0.0, "slots": 3}
    assert resolve_resources({"cpu": 1, "gpu": "auto", "max_concurrent": 2}, cluster, 10)["slots"] == 2
    assert resolve_resources({"cpu": 1, "gpu": "auto"}, cluster, 2)["slots"] == 2


def test_gpu_auto_shares_the_gpus_between_slots():
    res = resolve_resources({"cpu": 2, "gpu": "auto"}, [{"CPU": 16.0, "GPU": 1.0}], 100)
    assert res == {"cpu": 2.0, "gpu": 0.12, "slots": 8}
    res = resolve_resources({"cpu": 1, "gpu": 0.5}, [{"CPU": 16.0, "GPU": 1.0}], 100)
    assert res["slots"] == 2  # the GPU share limits the slots


def test_default_out_is_absolute_and_unique(tmp_path):
    a = layout.default_out("quick", tmp_path)
    a.mkdir()
    b = layout.default_out("quick", tmp_path)
    assert a.is_absolute() and a != b and b.name.startswith(a.name)


def test_an_address_nobody_listens_on_is_refused_at_once():
    assert "refused" in unreachable("127.0.0.1:9").lower()
    assert unreachable("127.0.0.1") == "expected host:port (e.g. 127.0.0.1:6379)"
    assert unreachable("local") is None and unreachable("auto") is None


def test_missing_data_files_fail_before_anything_is_written(sweep_file, tmp_path, capsys):
    """An MNIST sweep over an empty data root: one clear error naming where the files go, no sweep directory."""
    path = sweep_file(dataset="mnist", settings={"data_root": str(tmp_path / "empty")})
    out = tmp_path / "out"
    assert cli.main([path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "MNIST/raw" in err and "--data-root" in err and "Traceback" not in err
    assert not (out / "sweep.json").exists()


def test_named_budgets_in_the_sweep_file(tmp_path, capsys):
    data = {"description": "d", "version": 1, "dataset": "gm6", "budget": {"epochs": 30},
            "grid": {"router": ["softmax"], "experts": [2, 4], "seed": [0, 1, 2]},
            "budgets": {"small": {"epochs": 2, "n_train": 240, "seed": [0]}}}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(data))
    loaded = spec.load(str(path))
    assert loaded.budget_overrides("small") == {"epochs": 2, "n_train": 240, "seed": [0]}
    small = spec.load(str(path), loaded.budget_overrides("small"))
    assert len(small.trials()) == 2 and {t.config["epochs"] for t in small.trials()} == {2}
    assert len(loaded.trials()) == 6 and {t.config["epochs"] for t in loaded.trials()} == {30}
    with pytest.raises(spec.SweepError, match=r"no such budget; valid choices: small"):
        loaded.budget_overrides("tiny")
    # the CLI: --budget first, then --set on top of it
    assert cli.main([str(path), "--budget", "small", "--set", "epochs=3", "--dry-run"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if '"epochs"' in ln]
    assert len(lines) == 2 and all('"epochs": 3' in ln and '"n_train": 240' in ln for ln in lines)
    # a bad key inside a budget fails when the file is read, naming the budget
    data["budgets"]["broken"] = {"epoch": 2}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(spec.SweepError, match=r"budgets\.broken: .*epoch"):
        spec.load(str(path))


def test_data_root_flag_reaches_every_trial(sweep_file, tmp_path, capsys):
    path = sweep_file()
    assert cli.main([path, "--data-root", str(tmp_path), "--dry-run"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if '"dataset"' in ln]
    assert len(lines) == 4 and all(f'"data_root": "{tmp_path}"' in ln for ln in lines)
    assert cli.main(["--resume", str(tmp_path), "--data-root", str(tmp_path)]) == 2
    assert "no --set, --data-root or --out" in capsys.readouterr().err


def test_a_trial_that_names_only_a_preset_loads_the_presets_dataset():
    from bench.sweep.trial import data_source, dataset_key

    assert data_source({"preset": "seed_mnist"})[0] == "mnist"
    assert data_source({"preset": "seed_mnist", "dataset": "fmnist"})[0] == "fmnist"  # its own field wins
    assert dataset_key({"preset": "seed_fmnist_mnist", "data_root": "/d"}) == "fmnist_mnist|/d|0"
    assert dataset_key({}) == "gm6||0"
