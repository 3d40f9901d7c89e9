"""Strict YAML and JSON reading: a repeated key is an error naming the key and its lines (issue #12)."""
import pytest

from moe.config import ConfigError, load_file
from moe.strict_files import DuplicateKeyError, load_json, load_yaml


def test_a_repeated_yaml_key_names_the_key_and_both_lines():
    with pytest.raises(DuplicateKeyError, match=r"^duplicate key 'lr' on line 3 \(first on line 1\)$"):
        load_yaml("lr: 0.01\nepochs: 2\nlr: 100\n")
    with pytest.raises(DuplicateKeyError, match=r"duplicate key 'experts' on line 3 \(first on line 2\)"):
        load_yaml("grid:\n  experts: [2, 4]\n  experts: [8]\n")


def test_yaml_without_repeats_reads_as_safe_load_does():
    assert load_yaml("a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\nl: [1, 2]\n") == {"a": {"b": 1}, "c": {"b": 1, "d": 2}, "l": [1, 2]}
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system ['true']")  # still safe: no object construction


def test_a_repeated_json_key_is_refused_with_its_line():
    with pytest.raises(DuplicateKeyError, match=r"duplicate key 'lr' on line 2 \(first on line 1\)"):
        load_json('{"lr": 0.01,\n "lr": 100}')
    assert load_json('{"a": {"b": 1}, "c": [1]}') == {"a": {"b": 1}, "c": [1]}


@pytest.mark.parametrize("suffix, text", [(".yaml", "lr: 0.01\nlr: 100\n"), (".json", '{"lr": 0.01,\n"lr": 100}')])
def test_a_config_file_with_a_repeated_key_is_a_config_error(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    (line,) = info.value.problems
    assert line == f"config: {str(path)!r}: duplicate key 'lr' on line 2 (first on line 1)"


def test_a_directory_given_as_config_file_is_named_as_one(tmp_path):
    with pytest.raises(ConfigError, match="is a directory; expected a YAML or JSON file"):
        load_file(tmp_path)
