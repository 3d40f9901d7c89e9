"""``bench.table.tables.pick_best`` reads its few columns instead of sorting the whole frame: it picks the run a stable
descending sort of the frame on (validation accuracy, validation NMI) puts first (without validation scores: the
ascending sort on (seed, index)), on random frames full of ties and missing values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.table.tables import best_position, pick_best


def by_sorting(g: pd.DataFrame) -> tuple[pd.Series, bool]:
    """The rule as a sort of the whole frame (how pick_best was written before it read only its columns)."""
    scored = g[pd.to_numeric(g["val_accuracy"], errors="coerce").notna()] if "val_accuracy" in g else g.iloc[0:0]
    if not scored.empty:
        keys = ["val_accuracy"] + (["val_nmi"] if "val_nmi" in scored else [])
        return scored.sort_values(keys, ascending=False, kind="stable").iloc[0], True
    return g.sort_values([c for c in ("seed", "index") if c in g], kind="stable").iloc[0], False


def random_runs(rng: np.random.Generator, n: int, with_nmi: bool) -> pd.DataFrame:
    values = np.array([0.5, 0.7, 0.9, np.nan, np.inf, -np.inf])
    g = pd.DataFrame({"index": rng.permutation(n) * 2, "seed": rng.integers(0, 3, n), "name": ["c"] * n,
                      "val_accuracy": rng.choice(values, n, p=[0.3, 0.25, 0.2, 0.15, 0.05, 0.05]),
                      "router": rng.choice(["topk", "hash"], n), "accuracy": rng.random(n)},
                     index=rng.choice(10 * n, n, replace=False))  # labels not positions, as a group of a frame has
    if with_nmi:
        g["val_nmi"] = rng.choice(values, n)
    return g


@pytest.mark.parametrize("with_nmi", [True, False])
def test_pick_best_is_the_first_row_of_the_rules_sort(with_nmi):
    rng = np.random.default_rng(7)
    for _ in range(300):
        g = random_runs(rng, int(rng.integers(1, 9)), with_nmi)
        if rng.random() < 0.2:
            g["val_accuracy"] = np.nan  # no validation scores: the first run by seed, then index
        got, expected = pick_best(g), by_sorting(g)
        assert got[1] == expected[1]
        assert got[0].name == expected[0].name and got[0].equals(expected[0]), g


def test_best_position_among_some_rows_is_a_position_of_the_whole_frame():
    g = pd.DataFrame({"index": [0, 1, 2, 3], "seed": [0, 1, 2, 3], "val_accuracy": [0.9, 0.5, 0.7, 0.7],
                      "val_nmi": [0.1, 0.1, 0.2, 0.3]}, index=[10, 11, 12, 13])
    assert best_position(g) == (0, True)
    assert best_position(g, among=np.array([1, 2, 3])) == (3, True)  # 0.7 ties, NMI 0.3 wins
    assert best_position(g, among=np.array([2, 1])) == (2, True)


def test_text_in_a_validation_column_sorts_as_the_frame_does():
    g = pd.DataFrame({"index": [0, 1, 2], "seed": [0, 1, 2], "val_accuracy": ["0.5", "0.9", "x"]})
    assert pick_best(g)[0].name == by_sorting(g)[0].name
