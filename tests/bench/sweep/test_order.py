"""Which trials start first (bench.sweep --order): longest first by default, cheapest first on request."""
from types import SimpleNamespace

import pytest

from bench.sweep.progress import cost
from bench.sweep.runner import SweepError, run_trials, start_order


def trial(index, experts, epochs=5):
    return SimpleNamespace(index=index, config={"experts": experts, "epochs": epochs, "n_train": 320, "batch_size": 32})


def test_longest_first_by_default_and_cheapest_first_on_request():
    units = [[trial(0, 64)], [trial(1, 1)], [trial(2, 256)], [trial(3, 10), trial(4, 10)], [trial(5, 1, epochs=1)]]
    costs = {u[0].index: sum(cost(t.config) for t in u) for u in units}
    longest = [u[0].index for u in start_order(units)]
    cheapest = [u[0].index for u in start_order(units, "cheapest")]
    assert longest == sorted(costs, key=lambda i: -costs[i]) and longest[0] == 2
    assert cheapest == sorted(costs, key=lambda i: costs[i]) and cheapest[:2] == [5, 1] and cheapest[-1] == 2
    # a stacked unit (two seeds trained together) weighs as both of its trials
    assert costs[3] == 2 * cost(trial(3, 10).config)


def test_equal_costs_keep_the_grid_order():
    units = [[trial(i, 10)] for i in range(6)]
    assert [u[0].index for u in start_order(units, "cheapest")] == list(range(6))
    assert [u[0].index for u in start_order(units, "longest")] == list(range(6))


def test_an_unknown_order_is_one_line_before_any_directory(tmp_path):
    with pytest.raises(SweepError, match=r"^--order 'fastest': valid choices: longest, cheapest$"):
        run_trials("smoke", out=tmp_path / "out", order="fastest")
    assert not (tmp_path / "out").exists()
