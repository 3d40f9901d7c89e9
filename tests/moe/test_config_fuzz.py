"""Property-based tests over every Config field (hypothesis): a bad value of any one field, given on the command
line, in a YAML file or in a JSON file, makes ``python -m moe.train`` exit 2 with exactly one ``error:`` line
naming that field and no traceback, before any training; a value drawn from a field's valid domain passes."""
from __future__ import annotations

import contextlib
import io
import json
import math
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import moe.training.loop
from moe import config as caps
from moe.config import FIELD_TYPES, GATES, LOSS_COEFFICIENTS, NORMALIZATIONS, PRESETS, ROUTING_MODES, SUBSETS
from moe.data import DATASETS
from moe.experts import EXPERTS
from moe.objectives import OBJECTIVES
from moe.objectives.matching import MATCH_ROUTERS
from moe.regimes import REFIT_INITS, REGIMES
from moe.routers import ROUTERS
from moe.validate import from_dict

pytestmark = pytest.mark.slow  # property-based: CI runs it, the --fast edit loop does not

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text that no channel reads as a number, a boolean or null, and that is no valid name: "x" then letters.
TEXT = st.text(alphabet=string.ascii_letters + "_-", max_size=8).map(lambda s: "x" + s)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_TYPES = st.one_of(TEXT, st.booleans(), st.lists(st.integers(0, 3), min_size=1, max_size=3))
NULL = st.none()
EXISTING_FILE = str(Path(__file__).resolve())

INT_FIELDS = {  # field: (lowest, highest, optional)
    "n_train": (1, caps.MAX_SAMPLES, True), "n_test": (1, caps.MAX_SAMPLES, True), "data_seed": (0, caps.MAX_SEED, False),
    "experts": (1, caps.MAX_EXPERTS, False), "expert_hidden": (1, caps.MAX_WIDTH, False),
    "expert_channels": (1, caps.MAX_WIDTH, False), "top_k": (1, caps.MAX_EXPERTS, False),
    "gate_hidden": (1, caps.MAX_WIDTH, False), "pretrain_epochs": (1, caps.MAX_EPOCHS, False),
    "code_width": (1, caps.MAX_WIDTH, False),
    "refit_epochs": (1, caps.MAX_EPOCHS, True), "epochs": (1, caps.MAX_EPOCHS, False),
    "batch_size": (1, caps.MAX_SAMPLES, False), "seed": (0, caps.MAX_SEED, False), "threads": (1, caps.MAX_THREADS, True),
    "planted_modules": (1, caps.MAX_PLANTED_MODULES, False), "soft_slots": (1, caps.MAX_SOFT_SLOTS, False),
    "lm_layers": (1, caps.MAX_LM_LAYERS, False), "lm_width": (1, caps.MAX_WIDTH, False),
    "lm_heads": (1, caps.MAX_LM_HEADS, False), "context": (1, caps.MAX_CONTEXT, False),
}
FLOAT_FIELDS = {  # field: (lowest, highest, lowest excluded, highest excluded, optional)
    "capacity": (0, caps.MAX_CAPACITY, True, False, True),
    "val_fraction": (0, caps.MAX_VAL_FRACTION, False, False, False),
    "temperature": (caps.MIN_TEMPERATURE, caps.MAX_TEMPERATURE, False, False, False),
    "temperature_decay": (0, 1, True, False, False),
    "temperature_min": (caps.MIN_TEMPERATURE, caps.MAX_TEMPERATURE, False, False, False),
    **{name: (0, caps.MAX_COEFFICIENT, False, False, False) for name in LOSS_COEFFICIENTS},
    "lr": (caps.MIN_LR, caps.MAX_LR, False, False, False), "gate_lr": (caps.MIN_LR, caps.MAX_LR, False, False, True),
    "lr_ratio": (1, 0.01 / caps.MIN_LR, False, False, False),  # the slowest rate lr / lr_ratio a normal float32 (lr 0.01)
    "momentum": (0, 1, False, True, False), "weight_decay": (0, caps.MAX_WEIGHT_DECAY, False, False, False),
    "planted_entanglement": (0, 1, False, False, False),
}
CHOICE_FIELDS = {"dataset": DATASETS.names(), "expert": EXPERTS.names(), "router": ROUTERS.names(),
                 "objective": OBJECTIVES.names(), "regime": REGIMES.names(), "gate": list(GATES),
                 "optimizer": ["adam", "sgd", "rmsprop"], "refit_init": list(REFIT_INITS), "device": ["cpu", "cuda", "auto"],
                 "match_router": list(MATCH_ROUTERS), "subset": list(SUBSETS), "normalize": list(NORMALIZATIONS),
                 "preset": list(PRESETS), "routing": list(ROUTING_MODES)}
OPTIONAL_CHOICES = ("match_router", "preset")
BOOL_FIELDS = ("noisy_gate", "freeze_experts", "mask_experts")


def bad_int(lo: int, hi: int, optional: bool):
    below = st.integers(max_value=lo - 1) | st.integers(max_value=-1).map(lambda v: v - 2**64)
    above = st.integers(hi + 1, hi + 1000) | st.integers(min_value=0, max_value=2**80).map(lambda v: hi + 1 + v)
    below = below | st.integers(lo - 1000, lo - 1)  # near the bounds
    fractional = st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not v.is_integer())
    huge_float = st.floats(min_value=hi + 1.0, allow_infinity=False).filter(lambda v: v > hi)
    return st.one_of(below, above, fractional, huge_float, NON_FINITE, WRONG_TYPES, *([] if optional else [NULL]))


def bad_float(lo: float, hi: float, lo_open: bool, hi_open: bool, optional: bool):
    below = st.floats(max_value=lo, allow_nan=False, allow_infinity=False).filter(lambda v: v < lo or (lo_open and v == lo))
    above = st.floats(min_value=hi, allow_nan=False, allow_infinity=False).filter(lambda v: v > hi or (hi_open and v == hi))
    huge = st.integers(min_value=max(2**70, math.ceil(hi) * 2))  # above hi even where hi > 2**70 (lr_ratio's)
    return st.one_of(below, above, NON_FINITE, huge, WRONG_TYPES, *([] if optional else [NULL]))


def bad_choice(name: str):
    optional = name in OPTIONAL_CHOICES
    return st.one_of(TEXT, st.integers(), st.lists(TEXT, min_size=1, max_size=2), *([] if optional else [NULL]))


def valid_split(split, experts: int = 4, classes: int = 6) -> bool:
    return (isinstance(split, list) and len(split) == experts and all(isinstance(p, list) and p for p in split)
            and sorted(c for p in split for c in p) == list(range(classes)))


# field -> (bad values read the same on every channel, bad values only a YAML or JSON file can carry, context)
BAD: dict[str, tuple] = {}
for _name, (_lo, _hi, _opt) in INT_FIELDS.items():
    BAD[_name] = (bad_int(_lo, _hi, _opt), st.nothing(), {})
BAD["n_train"] = (st.one_of(bad_int(1, caps.MAX_SAMPLES, True), st.integers(1, 5)), st.nothing(), {})  # < gm6's 6 classes
BAD["top_k"] = (st.one_of(bad_int(1, caps.MAX_EXPERTS, False), st.integers(5, caps.MAX_EXPERTS)), st.nothing(), {})  # > 4 experts
for _name, _domain in FLOAT_FIELDS.items():
    BAD[_name] = (bad_float(*_domain), st.nothing(), {})
BAD["lr_ratio"] = (bad_float(1, caps.MAX_LR / caps.MIN_LR, False, False, False) | st.floats(1e36, 1e300), st.nothing(), {})
for _name in CHOICE_FIELDS:
    BAD[_name] = (bad_choice(_name), st.nothing(), {})
for _name in BOOL_FIELDS:
    BAD[_name] = (st.one_of(TEXT, st.integers(), NULL, st.floats(allow_nan=True)), st.nothing(), {})
BAD["data_root"] = (st.one_of(st.text(max_size=5).map(lambda s: f"/tmp/{s}\0x"), st.just(EXISTING_FILE),
                              st.integers(5000, 6000).map(lambda n: "d" * n)),
                    st.one_of(st.integers(), st.lists(st.integers(), min_size=1, max_size=2), st.booleans()), {})
BAD["expert_lrs"] = (st.one_of(
    st.lists(st.floats(0.001, 1), min_size=1, max_size=8).filter(lambda v: len(v) != 4),  # not one per expert
    st.lists(st.one_of(NON_FINITE, st.floats(max_value=0), st.floats(min_value=10.5, allow_infinity=False)), min_size=4, max_size=4),
    st.just([]), st.lists(st.just(0.01), min_size=caps.MAX_EXPERTS + 1, max_size=caps.MAX_EXPERTS + 1),
    TEXT, st.integers()), st.nothing(), {})
BAD["class_split"] = (st.one_of(
    st.lists(st.lists(st.integers(-3, 9), max_size=3), max_size=6).filter(lambda v: not valid_split(v)),
    st.lists(st.lists(st.integers(min_value=caps.MAX_CLASS), min_size=1, max_size=2), min_size=4, max_size=4),
    st.lists(st.integers(0, 5), min_size=1, max_size=3),  # classes not in lists
    TEXT, NULL, st.integers()), st.nothing(), {"regime": "pretrain"})
BAD["moe_layers"] = (st.one_of(
    TEXT.filter(lambda v: v not in caps.MOE_LAYER_CHOICES), st.just([]), st.integers(),
    st.lists(st.integers(max_value=-1) | st.integers(min_value=caps.MAX_LM_LAYERS), min_size=1, max_size=2),
    st.integers(0, 5).map(lambda i: [i, i]), NULL), st.nothing(), {})
BAD = {name: BAD[name] for name in FIELD_TYPES}  # every field, in the dataclass's order


def test_every_field_has_bad_values_and_a_valid_domain():
    assert set(BAD) == set(FIELD_TYPES) == set(VALID), set(FIELD_TYPES) ^ set(BAD) ^ set(VALID)


def flag_value(value) -> str:
    """How a user types the value on the command line (YAML flow style for lists; NaN and infinities as Python prints them)."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "null" if value is None else str(value)


def cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = moe.training.loop.main(argv)
    return code, err.getvalue()


CONFIG_FOLDER: list[Path] = []  # where the YAML and JSON examples' files are written (``one_parser``)


def run_channel(channel: str, values: dict) -> tuple[int, str]:
    if channel == "cli":
        return cli([f"--{k.replace('_', '-')}={flag_value(v)}" for k, v in values.items()] + ["--quiet"])
    suffix = ".json" if channel == "json" else ".yaml"
    text = json.dumps(values) if channel == "json" else yaml.safe_dump(values)
    path = CONFIG_FOLDER[0] / f"c{suffix}"  # each example's file written anew (not a folder made and removed each)
    path.write_text(text)
    return cli(["--config", str(path), "--quiet"])


@pytest.fixture(scope="module", autouse=True)
def one_parser(tmp_path_factory):
    """moe.train's argument parser built once for this module's command lines (about 800; building it costs a few
    milliseconds, each of its options' help formatted once): argparse keeps nothing of one parse for the next, and
    nothing registers a choice while this module runs, so each command line is read as by a parser of its own. And one
    folder for the examples' config files (``CONFIG_FOLDER``; the test functions' source is left as it was: with
    derandomize, hypothesis seeds each test from it, so the same examples are drawn as before)."""
    built = moe.training.loop.parser()
    CONFIG_FOLDER[:] = [tmp_path_factory.mktemp("configs")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moe.training.loop, "parser", lambda: built)
        yield
    CONFIG_FOLDER.clear()


@pytest.fixture
def no_training(monkeypatch):
    """Training must never start: the run entry fails the test if called."""
    def refuse(*args, **kwargs):
        pytest.fail("training started for a bad config")

    monkeypatch.setattr(moe.training.loop, "run", refuse)


@pytest.mark.parametrize("field", list(BAD))
@SETTINGS
@given(data=st.data())
def test_a_bad_value_of_any_field_is_one_error_line_and_no_training(field, data, no_training):
    anywhere, files_only, context = BAD[field]
    channel = data.draw(st.sampled_from(["cli", "yaml", "json"]), label="channel")
    value = data.draw(anywhere if channel == "cli" else anywhere | files_only, label=field)
    code, err = run_channel(channel, {**context, field: value})
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), err
    assert "Traceback" not in err


# field -> strategy of valid overrides (the field's value, with the other fields it needs)
def one(name, strategy, **context):
    return strategy.map(lambda v: {**context, name: v})


def split_of(experts: int, permutation: list[int]) -> list[list[int]]:
    return [permutation[e::experts] for e in range(experts)]


def finite(lo, hi, **kw):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, **kw)


VALID = {
    "dataset": one("dataset", st.sampled_from(DATASETS.names())),
    "data_root": one("data_root", st.none() | TEXT.map(lambda s: f"/nonexistent/{s}")),
    "n_train": one("n_train", st.none() | st.integers(6, caps.MAX_SAMPLES)),
    "n_test": one("n_test", st.none() | st.integers(1, caps.MAX_SAMPLES)),
    "data_seed": one("data_seed", st.integers(0, caps.MAX_SEED)),
    "planted_modules": one("planted_modules", st.integers(1, caps.MAX_PLANTED_MODULES), dataset="planted"),
    "planted_entanglement": one("planted_entanglement", finite(0, 1), dataset="planted"),
    "soft_slots": one("soft_slots", st.integers(1, caps.MAX_SOFT_SLOTS), router="soft"),
    "lm_layers": one("lm_layers", st.integers(1, caps.MAX_LM_LAYERS)),
    "lm_width": one("lm_width", st.integers(1, caps.MAX_WIDTH)),
    "lm_heads": one("lm_heads", st.integers(1, caps.MAX_LM_HEADS)),
    "context": one("context", st.integers(1, caps.MAX_CONTEXT)),
    "moe_layers": one("moe_layers", st.sampled_from(list(caps.MOE_LAYER_CHOICES))
                      | st.lists(st.integers(0, caps.MAX_LM_LAYERS - 1), min_size=1, max_size=4, unique=True)),
    "experts": one("experts", st.integers(1, caps.MAX_EXPERTS)),
    "expert": one("expert", st.sampled_from(EXPERTS.names()), dataset="mnist"),
    "expert_hidden": one("expert_hidden", st.integers(1, caps.MAX_WIDTH), expert="mlp"),
    "expert_channels": one("expert_channels", st.integers(1, 256), expert="cnn", dataset="mnist"),
    "code_width": one("code_width", st.integers(1, caps.MAX_WIDTH), expert="implicit"),
    "routing": st.tuples(st.sampled_from(list(ROUTING_MODES)), st.sampled_from(["softmax", "linear", "prototype"])).map(
        lambda v: {"routing": v[0], "router": v[1]}),
    "router": one("router", st.sampled_from(ROUTERS.names()), expert="mlp"),
    "top_k": one("top_k", st.integers(1, caps.MAX_EXPERTS), experts=caps.MAX_EXPERTS, router="topk"),
    "noisy_gate": one("noisy_gate", st.booleans(), router="topk"),
    "capacity": one("capacity", st.none() | finite(0, caps.MAX_CAPACITY, exclude_min=True), router="switch"),
    "gate": one("gate", st.sampled_from(list(GATES)), dataset="mnist"),
    "subset": one("subset", st.sampled_from(list(SUBSETS))),
    "val_fraction": one("val_fraction", finite(0, caps.MAX_VAL_FRACTION)),
    "normalize": one("normalize", st.sampled_from(list(NORMALIZATIONS))),
    "preset": one("preset", st.none() | st.sampled_from(list(PRESETS))),
    "mask_experts": one("mask_experts", st.booleans(), regime="pretrain", class_split="contiguous"),
    "gate_hidden": one("gate_hidden", st.integers(1, caps.MAX_WIDTH), gate="mlp"),
    "temperature": one("temperature", finite(caps.MIN_TEMPERATURE, caps.MAX_TEMPERATURE)),
    "temperature_decay": one("temperature_decay", finite(0, 1, exclude_min=True)),
    "temperature_min": one("temperature_min", finite(caps.MIN_TEMPERATURE, caps.MAX_TEMPERATURE)),
    "objective": one("objective", st.sampled_from(OBJECTIVES.names())),
    "importance_loss": one("importance_loss", finite(0, caps.MAX_COEFFICIENT)),
    "load_loss": one("load_loss", finite(0, caps.MAX_COEFFICIENT), router="topk", noisy_gate=True),
    "switch_loss": one("switch_loss", finite(0, caps.MAX_COEFFICIENT), router="switch"),
    "z_loss": one("z_loss", finite(0, caps.MAX_COEFFICIENT)),
    "similarity_same": one("similarity_same", finite(0, caps.MAX_COEFFICIENT)),
    "similarity_diff": one("similarity_diff", finite(0, caps.MAX_COEFFICIENT)),
    "match_router": one("match_router", st.sampled_from(list(MATCH_ROUTERS)), match_loss=0.1),
    "match_loss": one("match_loss", finite(0, caps.MAX_COEFFICIENT, exclude_min=True), match_router="linear"),
    "regime": one("regime", st.sampled_from(REGIMES.names()), class_split="contiguous").map(
        lambda v: v if v["regime"].startswith("pretrain") else {"regime": v["regime"]}),
    "class_split": st.tuples(st.integers(1, 6), st.permutations(range(6))).map(
        lambda ep: {"regime": "pretrain", "experts": ep[0], "class_split": split_of(ep[0], list(ep[1]))}),
    "pretrain_epochs": one("pretrain_epochs", st.integers(1, caps.MAX_EPOCHS)),
    "freeze_experts": one("freeze_experts", st.booleans(), regime="pretrain", class_split="contiguous"),
    "refit_epochs": one("refit_epochs", st.none() | st.integers(1, caps.MAX_EPOCHS), regime="frozen_gate"),
    "refit_init": one("refit_init", st.sampled_from(list(REFIT_INITS)), regime="frozen_gate"),
    "optimizer": one("optimizer", st.sampled_from(["adam", "sgd", "rmsprop"])),
    "lr": one("lr", finite(caps.MIN_LR, caps.MAX_LR)),
    "gate_lr": one("gate_lr", st.none() | finite(caps.MIN_LR, caps.MAX_LR)),
    "expert_lrs": st.lists(finite(caps.MIN_LR, caps.MAX_LR), min_size=1, max_size=64).map(
        lambda v: {"experts": len(v), "expert_lrs": v}),
    "lr_ratio": one("lr_ratio", finite(1, 0.01 / caps.MIN_LR)),
    "momentum": one("momentum", finite(0, 1, exclude_max=True)),
    "weight_decay": one("weight_decay", finite(0, caps.MAX_WEIGHT_DECAY)),
    "epochs": one("epochs", st.integers(1, caps.MAX_EPOCHS)),
    "batch_size": one("batch_size", st.integers(1, caps.MAX_SAMPLES), n_train=2400),
    "seed": one("seed", st.integers(0, caps.MAX_SEED)),
    "device": one("device", st.sampled_from(["cpu", "auto"])),
    "threads": one("threads", st.none() | st.integers(1, caps.MAX_THREADS)),
}


@pytest.mark.parametrize("field", list(FIELD_TYPES))
@SETTINGS
@given(data=st.data())
def test_a_value_from_a_fields_domain_passes_validation(field, data):
    values = data.draw(VALID[field], label=field)
    cfg = from_dict(values)
    assert getattr(cfg, field) == values[field]
