"""Bounded cost of reading input: nested YAML aliases, megabyte names and values, huge grids and resource
requests this machine cannot serve are each refused with one short line before any work."""
from __future__ import annotations

import difflib

import pytest
import yaml

from bench.sweep import cli, cluster, runner, file_shape, spec
from bench.sweep.cluster import ResourceError, resolve_resources
from bench.sweep.spec import SweepError
from moe import registry, validate
from moe.config import ConfigError, load_file
from moe.strict_files import MAX_YAML_VALUES, ExpansionError, expanded_size, load_yaml
from tests.bench.sweep.test_sweep_file_errors import no_tune, one_error, write  # noqa: F401  (fixtures)

LINE_CAP = 2000  # no error line is longer (the longest list the project itself names: the config keys, ~700)


def short(line: str) -> bool:
    """A line of at most LINE_CAP characters that echoes no more than ~80 characters of a long input."""
    return len(line) < LINE_CAP and not any(c * 100 in line for c in "rxpsbc1")


def bomb(levels: int = 9, width: int = 9) -> str:
    """A 'billion laughs': each anchor lists the previous one ``width`` times (width ** levels values)."""
    text = f"a0: &a0 [{', '.join(['lol'] * width)}]\n"
    return text + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]\n" for i in range(1, levels))


def test_nested_aliases_are_counted_before_anything_is_built():
    with pytest.raises(ExpansionError, match=f"expand to more than {MAX_YAML_VALUES:,} values"):
        load_yaml(bomb())
    # the count is exact below the cap: a0 is a list of 3 scalars (4 values), a1 lists a0 3 times (1 + 3 x 4),
    # a2 lists a1 3 times (1 + 3 x 13); with the root mapping and its 3 keys
    node = yaml.compose(bomb(levels=3, width=3))
    assert expanded_size(node, 10**6) == 1 + 3 + 4 + 13 + 40
    assert expanded_size(node, 10) == 11  # stops once past the cap
    # ordinary anchors and merge keys still read as yaml.safe_load reads them
    text = "base: &b {lr: 0.01, epochs: 2}\nrun:\n  <<: *b\n  seed: 3\nl: [*b, *b]\n"
    assert load_yaml(text) == yaml.safe_load(text)


def test_an_alias_bomb_in_a_config_or_a_sweep_file_is_one_short_line(tmp_path, capsys, no_tune):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    with pytest.raises(ConfigError) as info:
        load_file(path)
    (line,) = info.value.problems
    assert "expand to more than" in line and len(line) < LINE_CAP
    sweep = write(tmp_path, "dataset: gm6\ngrid: {experts: [2]}\nsettings:\n  " + bomb().replace("\n", "\n  "))
    line = one_error(capsys, [sweep, "--dry-run"])
    assert "expand to more than" in line and len(line) < LINE_CAP


def test_did_you_mean_skips_names_far_longer_than_every_choice(monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("an edit distance was computed for a name no choice is close to")

    assert registry.did_you_mean("sofmax", ["softmax", "topk"]) == "softmax"
    monkeypatch.setattr(registry, "_edit_distance", refused)
    monkeypatch.setattr(difflib, "SequenceMatcher", refused)
    assert registry.did_you_mean("x" * 1_000_000, ["softmax", "topk"]) is None
    assert registry.did_you_mean("softmax" * 3, ["softmax", "topk"]) is None
    assert registry.did_you_mean([1, 2], ["softmax"]) is None


@pytest.mark.parametrize("values", [
    {"router": "r" * 1_000_000},  # an unknown name of a megabyte
    {"r" * 1_000_000: 1},  # an unknown key of a megabyte
    {"lr": ["x" * 1000] * 1000},  # a wrong type holding a megabyte
    {"preset": "p" * 100_000},
    {"class_split": "s" * 100_000},
])
def test_a_config_echoes_at_most_a_short_cut_of_what_it_refuses(values):
    with pytest.raises(ConfigError) as info:
        validate.from_dict(values)
    assert info.value.problems and all(short(p) for p in info.value.problems), [p[:300] for p in info.value.problems]


@pytest.mark.parametrize("argv", [
    ["--set", "router=" + "r" * 200_000],
    ["--set", "r" * 200_000 + "=1"],
    ["--set", "resources.cpu=" + "c" * 200_000],
    ["--set", "grid.router=[" + "topk[k=" + "1" * 100_000 + ",x]]"],
    ["--budget", "b" * 200_000],
])
def test_a_sweep_echoes_at_most_a_short_cut_of_what_it_refuses(tmp_path, capsys, no_tune, sweep_file, argv):
    assert cli.main([sweep_file(), "--dry-run", *argv]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(ln.startswith("error: ") and short(ln) for ln in lines), [ln[:300] for ln in lines]


def test_a_grid_over_the_cap_is_refused_before_it_is_expanded(monkeypatch, tmp_path, capsys, no_tune):
    def expanded(*args, **kwargs):
        raise AssertionError("the grid was expanded")

    monkeypatch.setattr(spec, "expand_value", expanded)
    axes = {"seed": list(range(1_001)), "experts": list(range(1, 11))}  # 10,010 trials: over the documented cap
    line = one_error(capsys, [write(tmp_path, yaml.safe_dump({"dataset": "gm6", "grid": axes})), "--dry-run"])
    assert "10,010 trials" in line and "cap of 10,000" in line and file_shape.MAX_TRIALS == 10_000


def test_a_configuration_is_validated_once_for_all_its_seeds(monkeypatch):
    calls = []
    real = spec.model.checked_config  # the whole validation of one trial config (every rule, the memory cap)

    def counted(values, *args, **kwargs):
        calls.append(values)
        return real(values, *args, **kwargs)

    monkeypatch.setattr(spec.model, "checked_config", counted)
    sweep = spec.from_mapping({"dataset": "gm6", "grid": {"experts": [2, 4], "seed": list(range(50))}}, name="s")
    trials = spec.validate(sweep)
    assert len(trials) == 100 and len(calls) == 2
    # a bad seed is still named, once per value, as the whole config's validation names it
    sweep = spec.from_mapping({"dataset": "gm6", "grid": {"experts": [2], "seed": [0, -1, "x"]}}, name="s")
    with pytest.raises(SweepError) as info:
        spec.validate(sweep)
    expected = []
    for seed in (-1, "x"):
        with pytest.raises(ConfigError) as whole:
            validate.from_dict({"dataset": "gm6", "experts": 2, "seed": seed})
        expected += whole.value.problems
    assert [p.split(": ", 1)[1].split(" [in ")[0] for p in info.value.problems] == expected
    # and two seeds that parse to the same value are still the same trial
    sweep = spec.from_mapping({"dataset": "gm6", "grid": {"experts": [2], "seed": [1, 1.0]}}, name="s")
    with pytest.raises(SweepError, match="have the same config"):
        spec.validate(sweep)


def test_requests_the_machine_cannot_serve_are_one_line_naming_the_setting():
    two = [{"CPU": 2.0, "GPU": 0.0}]
    with pytest.raises(ResourceError, match=r"^resources.cpu: 0.01 CPU per trial would run 100 trials at once on 2 CPU"):
        resolve_resources({"cpu": 0.01, "gpu": "auto"}, two, 100)
    assert resolve_resources({"cpu": 0.01, "gpu": "auto", "max_concurrent": 4}, two, 100)["slots"] == 4
    assert resolve_resources({"cpu": 0.5, "gpu": "auto"}, two, 100)["slots"] == 4
    assert resolve_resources({"cpu": 0.01, "gpu": "auto"}, two, 3)["slots"] == 3  # a small sweep: few at once anyway
    with pytest.raises(ResourceError, match=r"^threads: each trial runs 256 torch threads but asks for 1 CPU"):
        resolve_resources({"cpu": 1, "gpu": "auto"}, two, 4, threads=256)
    assert resolve_resources({"cpu": 2, "gpu": "auto"}, two, 4, threads=2)["slots"] == 1
    with pytest.raises(ResourceError, match="no node has both"):
        resolve_resources({"cpu": 1, "gpu": 1}, two, 4)


@pytest.mark.parametrize("sets, needle", [
    ({"resources.gpu": 1}, "GPU"),
    ({"resources.cpu": 64}, "asks for 64 CPU"),
    ({"resources.cpu": 0.001}, "resources.cpu: 0.001 CPU per trial"),
    ({"threads": 4}, "threads: each trial runs 4 torch threads"),
])
def test_a_local_sweep_checks_its_request_against_this_machine_before_writing(monkeypatch, tmp_path, sweep_file,
                                                                             sets, needle):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster, "local_machine", lambda: [{"CPU": 2.0, "GPU": 0.0}])
    monkeypatch.setattr(runner, "local_machine", lambda: [{"CPU": 2.0, "GPU": 0.0}])
    monkeypatch.setattr(runner, "_tune_trials", lambda *a, **k: pytest.fail("reached Ray"))
    grid = {"router": ["softmax"], "experts": [2], "seed": list(range(8))}
    with pytest.raises(ResourceError, match=needle):
        runner.run_trials(sweep_file(grid=grid), out=tmp_path / "out", **sets)
    assert not (tmp_path / "out").exists()
