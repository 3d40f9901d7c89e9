"""The smoke sweep's runs learn: each beats chance on gm6's six classes, and the report shows a trade-off."""
from __future__ import annotations

import pytest

from bench.sweep import spec
from moe.train import run


@pytest.fixture(scope="module")
def records():
    trials = spec.validate(spec.load("smoke"))
    return {(t.name, t.config["seed"]): run(dict(t.config)) for t in trials}


@pytest.mark.slow  # six four-epoch trainings (~15 s on 2 cores)
def test_every_smoke_run_beats_chance(records):
    chance = 1 / 6
    assert len(records) == 6
    for name, rec in records.items():
        assert rec["test"]["accuracy"] > chance + 0.3, (name, rec["test"]["accuracy"])


@pytest.mark.slow  # the same trainings
def test_the_smoke_sweep_shows_a_trade_off(records):
    """The hash router's split carries no information about the classes; a learned softmax router's does, and it
    is more accurate: two ends of the trade-off a report should show."""
    by_router: dict[str, list[dict]] = {}
    for name, rec in records.items():
        by_router.setdefault(name[0].split("[")[0], []).append(rec["test"])
    softmax, hashed = by_router["softmax"], by_router["hash"]
    assert min(t["nmi"] for t in softmax) > max(t["nmi"] for t in hashed) + 0.3
    assert min(t["accuracy"] for t in softmax) > max(t["accuracy"] for t in hashed)
