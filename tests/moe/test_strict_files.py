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


YAML_TEXTS = ["a: &x {b: 1}\nc:\n  <<: *x\n  d: [2, {e: 3}]\nl: [1, 2]\n", "l: &l [1, [2]]\nm: [*l, *l]\n",
              "2", "0.5", "1e3", "yes", "off", "~", "null", "0o17", "017", "0x1f", "2020-01-02", "2020-01-02 03:04:05Z",
              "!!binary aGk=", "!!set {a, b}", "'quoted'", "[a, b]", "{}", "", "# only a comment", b"k: v\n", "k: v\n",
              "---\n.nan\n", "-.inf", "1_000", "+12", "12:30", "t: true"]


def test_a_text_read_again_gives_the_values_of_a_fresh_parse_and_a_copy_of_them():
    import yaml

    from moe import strict_files

    for text in YAML_TEXTS * 2:  # the second time from the kept values
        fresh = yaml.safe_load(text)
        got = strict_files.load_yaml(text)
        assert type(got) is type(fresh) and repr(got) == repr(fresh), text  # repr: .nan is no value == itself
    doc = "a: &x {b: [1, 2]}\nc: *x\n"
    first = strict_files.load_yaml(doc)
    assert first["a"] is first["c"]  # an alias is the same object, as yaml builds it ...
    first["a"]["b"].append(3)
    first["new"] = 1
    again = strict_files.load_yaml(doc)
    assert again == {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}} and again["a"] is again["c"]  # ... and a change stays the caller's
    assert again["a"] is not first["a"] and strict_files.load_yaml("l: [1]")["l"] is not strict_files.load_yaml("l: [1]")["l"]
    assert strict_files.load_yaml("k: v\n") == {"k": "v"} and strict_files.load_yaml(b"k: v\n") == {"k": "v"}


@pytest.mark.parametrize("text, error", [("lr: 0.01\nepochs: 2\nlr: 100\n", r"^duplicate key 'lr' on line 3 \(first on line 1\)$"),
                                         ("a: [1\n", "expected ',' or ']'"), ("d: 2020-13-45\n", "month must be in 1..12")])
def test_a_text_that_fails_fails_the_same_way_each_time(text, error):
    import yaml

    from moe import strict_files

    kinds = []
    for _ in range(3):
        with pytest.raises((yaml.YAMLError, ValueError), match=error) as info:
            strict_files.load_yaml(text)
        kinds.append(type(info.value))
    assert len(set(kinds)) == 1 and strict_files._parsed.cache_info().currsize <= strict_files.YAML_CACHE_SIZE
