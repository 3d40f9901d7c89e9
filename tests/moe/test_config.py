"""The config dataclass, its parsing (types, CLI strings, files), its defaults and its CLI flags."""
import json

import pytest

from moe.config import FIELD_TYPES, Config, ConfigError, field_help, load_file
from moe.training.loop import main
from moe.validate import from_dict


def test_strings_from_the_command_line_are_coerced():
    cfg = from_dict({"experts": "8", "lr": "1e-3", "expert_lrs": None, "gate_lr": "null", "n_train": "100"})
    assert cfg.experts == 8 and cfg.lr == 1e-3 and cfg.gate_lr is None and cfg.n_train == 100
    assert from_dict({"experts": 2, "expert_lrs": "[0.1, 0.01]"}).expert_lrs == [0.1, 0.01]


def test_new_fields_from_the_command_line():
    cfg = from_dict({"noisy_gate": "true", "capacity": "1.25", "class_split": "[[0, 1, 2], [3, 4, 5]]", "regime": "pretrain",
                     "experts": 2, "match_router": "null"})
    assert cfg.noisy_gate is True and cfg.capacity == 1.25 and cfg.class_split == [[0, 1, 2], [3, 4, 5]] and cfg.match_router is None
    assert from_dict({"dataset": "fmnist_mnist", "regime": "pretrain", "experts": 6,
                      "class_split": "fmnist_mnist"}).class_split == "fmnist_mnist"


def test_learning_rate_ratio_is_geometric_with_expert_zero_fastest():
    cfg = from_dict({"experts": 3, "lr": 0.01, "lr_ratio": 100})
    assert cfg.expert_learning_rates() == pytest.approx([0.01, 0.001, 0.0001])
    assert from_dict({"experts": 2, "expert_lrs": [0.5, 0.25]}).expert_learning_rates() == [0.5, 0.25]
    assert from_dict({"experts": 1, "lr_ratio": 10}).expert_learning_rates() == [0.01]


def test_config_files(tmp_path):
    (tmp_path / "a.yaml").write_text("experts: 6\nrouter: topk\ntop_k: 2\n")
    assert load_file(tmp_path / "a.yaml") == {"experts": 6, "router": "topk", "top_k": 2}
    (tmp_path / "b.json").write_text(json.dumps({"epochs": 3}))
    assert load_file(tmp_path / "b.json") == {"epochs": 3}
    with pytest.raises(ConfigError, match="does not exist"):
        load_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("experts: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_file(tmp_path / "list.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read|not valid"):
        load_file(tmp_path / "binary.yaml")
    # a YAML tag that would construct a Python object is refused by safe_load
    (tmp_path / "evil.yaml").write_text("experts: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_file(tmp_path / "evil.yaml")


@pytest.mark.parametrize("argv,field", [
    (["--dataset", "nope"], "dataset"),
    (["--router", "nope"], "router"),
    (["--expert", "nope"], "expert"),
    (["--experts", "0"], "experts"),
    (["--experts", "2", "--top-k", "3"], "top_k"),
    (["--lr", "0"], "lr"),
    (["--epochs", "0"], "epochs"),
    (["--config", "/nonexistent/config.yaml"], "config"),
])
def test_cli_rejects_bad_input_before_training(argv, field, capsys, tmp_path):
    out = tmp_path / "run.json"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:")
    assert not out.exists()


def test_cli_unknown_key_in_config_file(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("expers: 4\n")
    assert main(["--config", str(tmp_path / "c.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: expers: unknown config key (did you mean 'experts'?)")


def test_defaults_live_in_one_place():
    assert from_dict({}) == Config()


def test_every_field_is_documented_in_the_cli_help(capsys):
    docs = field_help()
    assert set(docs) == set(FIELD_TYPES) and all(docs.values())
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "number of experts E (default: 4)" in text and "stratified test subset (None: all)" in text
