"""Property-based tests of sweep files and ``--set`` overrides (issue #12): a bad value in any section, or
in any override, gives exit status 2 and exactly one ``error:`` line, no traceback, and never reaches Ray
Tune; any value at all (and any bytes as a file) ends in exit 0 or 2, never in an exception.

The CLI runs in-process (``bench.sweep.cli.main``) with ``--dry-run`` and, for some examples, as a run
(which validates the same way before any trial; the runner's Tune entry fails the test if reached).
Bounded: a few dozen examples per property, no deadline (the machine is shared).
"""
from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.sweep import cli, runner, spec
from moe.config import FIELD_TYPES
from moe.data import DATASETS
from tests.bench.conftest import TINY

pytestmark = pytest.mark.slow  # property-based: CI runs it, the --fast edit loop does not

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---- values ------------------------------------------------------------------------------------------

words = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda w: yaml.safe_load(w) == w)  # text that YAML reads as text (not null, true, off...)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), words)
keys = st.one_of(words, st.text(max_size=8), st.integers(-3, 3))
anything = st.recursive(st.one_of(scalars, st.text(max_size=10)),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                        max_leaves=8)
non_mappings = st.one_of(scalars, st.lists(scalars, max_size=3))
non_strings = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False, width=32),
                        st.lists(scalars, min_size=1, max_size=3), st.dictionaries(words, scalars, min_size=1, max_size=2))
unknown_fields = words.filter(lambda w: w not in FIELD_TYPES and w != "k")
bad_counts = st.one_of(st.integers(max_value=0), words, st.lists(st.integers(1, 5), min_size=2, max_size=3),
                       st.floats(0.1, 0.9))  # not an integer >= 1

# one bad value per section: (section, value); each must be refused with exactly one problem line
BAD_SECTIONS = st.one_of(
    st.tuples(st.just("description"), non_strings),
    st.tuples(st.just("version"), st.one_of(st.integers(max_value=-1), words, st.booleans(),
                                             st.lists(st.integers(), min_size=1, max_size=2),
                                             st.floats(0.1, 9.9).filter(lambda f: not f.is_integer()))),
    st.tuples(st.just("dataset"), st.one_of(non_strings, words.filter(lambda w: w not in DATASETS))),
    st.tuples(st.sampled_from(["budget", "settings", "resources", "budgets"]),
              non_mappings.filter(lambda v: v is not None)),
    st.tuples(st.just("budget"), st.builds(lambda k: {k: 1}, unknown_fields)),
    st.tuples(st.just("budget"), st.builds(lambda v: {"epochs": v}, bad_counts)),
    st.tuples(st.just("budget"), st.sampled_from([{"lr": 0.1}, {"router": "softmax"}])),  # not budget fields
    st.tuples(st.just("settings"), st.builds(lambda k: {k: 1}, unknown_fields)),
    st.tuples(st.just("settings"), st.builds(lambda v: {"batch_size": v}, bad_counts)),
    st.tuples(st.just("grid"), st.one_of(scalars.filter(lambda v: v is not None), st.just([]),
                                         st.builds(lambda bad, first: [{"experts": [2]}] * first + [bad],
                                                   non_mappings.filter(lambda v: v is not None), st.booleans()))),
    st.tuples(st.just("grid"), st.builds(lambda k: {k: [1, 2]}, unknown_fields)),
    st.tuples(st.just("grid"), st.builds(lambda v: {"experts": v}, st.one_of(
        st.just([]), st.dictionaries(words, scalars, min_size=1, max_size=2),
        st.lists(st.integers(max_value=0), min_size=1, max_size=1)))),
    st.tuples(st.just("resources"), st.builds(lambda k: {k: 1}, words.filter(lambda w: w not in spec.RESOURCE_KEYS))),
    st.tuples(st.just("resources"), st.builds(lambda v: {"cpu": v}, st.one_of(st.integers(max_value=0), words, st.booleans()))),
    st.tuples(st.just("resources"), st.builds(lambda v: {"gpu": v},
                                              st.one_of(st.integers(max_value=-1), words.filter(lambda w: w != "auto")))),
    st.tuples(st.just("resources"), st.builds(lambda v: {"max_concurrent": v}, bad_counts)),
    st.tuples(st.just("budgets"), st.builds(lambda n, v: {n: v}, words, non_mappings.filter(lambda v: v is not None))),
    st.tuples(st.just("budgets"), st.builds(lambda n, k: {n: {k: 1}}, words, unknown_fields)),
    st.tuples(words.filter(lambda w: w not in spec.TOP_KEYS), scalars),  # an unknown section
)

# one bad --set pair each
BAD_SETS = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", words.filter(lambda w: w not in spec.override_keys()), st.integers()),
    words.map(lambda w: w.replace("=", "")),  # no '='
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["epochs", "budget.epochs", "settings.batch_size",
                                                        "resources.max_concurrent"]),
              st.one_of(st.integers(max_value=0), words, st.just("[1, 2]"), st.just("0.5"))),
    st.builds(lambda v: f"resources.cpu={v}", st.one_of(st.integers(max_value=0), words)),
    st.builds(lambda v: f"resources.gpu={v}", st.one_of(st.integers(max_value=-1), words.filter(lambda w: w != "auto"))),
    st.builds(lambda v: f"version={v}", st.one_of(st.integers(max_value=-1), words, st.just("[1]"))),
    st.builds(lambda v: f"description={v}", st.sampled_from(["[1]", "{a: 1}", "3", "true"])),
    st.builds(lambda v: f"dataset={v}", st.one_of(st.sampled_from(["[1]", "{a: 1}", "3"]),
                                                  words.filter(lambda w: w not in DATASETS))),
    st.builds(lambda k: f"grid.{k}=[]", st.sampled_from(["experts", "seed", "router"])),
    # (not experts=0: moe's validation then also says top_k must be <= experts, a second line of its own)
    st.builds(lambda v: f"experts={v}", st.sampled_from(["{a: 1}", "[{}]", "abc", "[1.5]", "[[2]]"])),
    st.builds(lambda v: f"router={v}", words.filter(lambda w: w not in ("softmax", "topk", "hash", "linear"))),
    st.sampled_from(["experts=[1,", "epochs={a: 1, a: 2}", "seed=2020-13-45", "grid.seed=[0, 0]"]),
)


# ---- running the CLI ---------------------------------------------------------------------------------

@pytest.fixture
def cli_run(monkeypatch, capsys, tmp_path):
    """``(argv) -> (exit status, stdout, stderr)``, with the runner's Tune entry failing the test if reached."""
    def tune_called(*args, **kwargs):
        pytest.fail("a bad sweep reached Ray Tune")

    monkeypatch.setattr(runner, "_tune_trials", tune_called)

    def run(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        status = cli.main([*argv, *(["--out", str(tmp_path / "never")] if "--dry-run" not in argv else [])])
        out, err = capsys.readouterr()
        assert not (tmp_path / "never").exists(), "a bad sweep made its results directory"
        return status, out, err

    return run


def write(tmp_path, data) -> str:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return str(path)


def assert_one_error(status: int, out: str, err: str) -> None:
    lines = err.splitlines()
    assert status == 2, (status, out[-500:], err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out


# ---- properties --------------------------------------------------------------------------------------

@SETTINGS
@given(bad=BAD_SECTIONS, dry=st.booleans())
def test_a_bad_section_value_is_one_error_line(tmp_path, cli_run, bad, dry):
    section, value = bad
    path = write(tmp_path, {**TINY, section: value})
    assert_one_error(*cli_run([path, *(["--dry-run"] if dry else [])]))


@SETTINGS
@given(pair=BAD_SETS, dry=st.booleans())
def test_a_bad_override_is_one_error_line(tmp_path, cli_run, pair, dry):
    path = write(tmp_path, TINY)
    assert_one_error(*cli_run([path, "--set", pair, *(["--dry-run"] if dry else [])]))


@SETTINGS
@given(section=st.sampled_from(spec.TOP_KEYS), value=anything)
def test_any_section_value_ends_in_0_or_one_line_per_problem(tmp_path, cli_run, section, value):
    path = write(tmp_path, {**TINY, section: value})
    status, out, err = cli_run([path, "--dry-run"])
    assert status in (0, 2) and "Traceback" not in err + out
    if status == 2:
        assert err and all(ln.startswith("error: ") for ln in err.splitlines()), err


@SETTINGS
@given(key=st.sampled_from(spec.override_keys()), value=anything)
def test_any_override_of_a_known_key_ends_in_0_or_one_line_per_problem(tmp_path, cli_run, key, value):
    path = write(tmp_path, TINY)
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    status, out, err = cli_run([path, f"--set={key}={text}", "--dry-run"])
    assert status in (0, 2) and "Traceback" not in err + out
    if status == 2:
        assert err and all(ln.startswith("error: ") for ln in err.splitlines()), err


@SETTINGS
@given(content=st.binary(max_size=300))
def test_any_bytes_as_a_sweep_file_end_in_0_or_one_line_per_problem(tmp_path, cli_run, content):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(content)
    status, out, err = cli_run([str(path), "--dry-run"])
    assert status in (0, 2) and "Traceback" not in err + out
    if status == 2:
        assert err and all(ln.startswith("error: ") for ln in err.splitlines()), err


@SETTINGS
@given(key=st.one_of(st.sampled_from(spec.override_keys()), st.text(max_size=12)), text=st.text(max_size=40))
def test_any_override_text_ends_in_0_or_one_line_per_problem(tmp_path, cli_run, key, text):
    path = write(tmp_path, TINY)
    status, out, err = cli_run([path, f"--set={key}={text}", "--dry-run"])
    assert status in (0, 2) and "Traceback" not in err + out
    if status == 2:
        assert err and all(ln.startswith("error: ") for ln in err.splitlines()), err
