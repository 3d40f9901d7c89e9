"""``bench.reproduce.measures.select`` (the runs a claim's ``where`` picks) against a loop over the rows written from
its definition: the ok runs, each filter in order, ``$max``/``$min`` the extreme among the rows kept so far."""
from __future__ import annotations

import math
import operator
import random

import numpy as np
import pandas as pd
import pytest

from bench.reproduce.measures import select

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def number(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def by_loop(runs: pd.DataFrame, where: dict) -> list:
    column = {c: dict(zip(runs.index, runs[c].tolist())) for c in runs.columns}
    kept = [i for i in runs.index if "status" not in runs.columns
            or (not missing(column["status"][i]) and column["status"][i] == "ok")]
    for col, want in where.items():
        if col not in runs.columns:
            if want is None:
                continue
            return []
        values = {i: column[col][i] for i in kept}
        if want is None:
            kept = [i for i in kept if missing(values[i])]
        elif isinstance(want, list):
            kept = [i for i in kept if not missing(values[i]) and values[i] in want]
        elif isinstance(want, dict):
            kept = [i for i in kept if not math.isnan(number(values[i]))
                    and all(OPS[op](number(values[i]), v) for op, v in want.items())]
        elif want in ("$max", "$min"):
            nums = [number(values[i]) for i in kept if not math.isnan(number(values[i]))]
            if not nums:
                return []
            best = max(nums) if want == "$max" else min(nums)
            kept = [i for i in kept if number(values[i]) == best]
        else:
            kept = [i for i in kept if not missing(values[i]) and values[i] == want]
    return kept


@pytest.mark.parametrize("status", ["plain", "arrow", "absent"])
def test_select_picks_the_rows_a_loop_over_them_picks(status):
    rng = random.Random(7)
    n = 120
    runs = pd.DataFrame({
        "router": pd.array([rng.choice(["softmax", "topk", "hash", None]) for _ in range(n)], dtype="string[pyarrow]"),
        "experts": [rng.choice([2, 4, 8, 16, None]) for _ in range(n)],
        "lr_ratio": [rng.choice([1.0, 10.0, 100.0, np.nan]) for _ in range(n)],
        "accuracy": [round(rng.random(), 2) for _ in range(n)]})
    statuses = [rng.choice(["ok", "ok", "error", None]) for _ in range(n)]
    if status != "absent":
        runs["status"] = statuses if status == "plain" else pd.array(statuses, dtype="string[pyarrow]")
    picked_some = 0
    for _ in range(150):
        where = {}
        for col in rng.sample(["router", "experts", "lr_ratio", "accuracy", "not_a_column"], rng.randint(0, 3)):
            where[col] = rng.choice([None, ["softmax", "topk"], [4, 8], {">": 0.5}, {">=": 4, "<": 16}, "$max", "$min",
                                     "hash", 8, 100.0])
        got = select(runs, where)
        assert list(got.index) == by_loop(runs, where), where
        assert list(got.columns) == list(runs.columns)
        picked_some += len(got) > 0
    assert picked_some > 40  # (the filters are not all empty)
