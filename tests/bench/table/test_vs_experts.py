"""The expert-count figure: families, means over seeds, a PNG."""
import math

import pandas as pd

from bench.table.vs_experts import curves, expert_count_figure, family


def test_family_drops_only_the_expert_count():
    assert family("softmax[gate=mlp,experts=64,routing=hard]") == "softmax[gate=mlp,routing=hard]"
    assert family("linear[experts=10]") == "linear"
    assert family("sinkhorn[gate=cnn,experts=10,expert=implicit]") == "sinkhorn[gate=cnn,expert=implicit]"


def runs():
    rows = []
    for name, base in (("softmax[gate=mlp,experts={e}]", 0.9), ("linear[experts={e}]", 0.8)):
        for e in (1, 10, 100):
            for seed, shift in ((0, -0.01), (1, 0.01)):
                rows.append(dict(name=name.format(e=e), experts=e, seed=seed, status="ok", accuracy=base + shift,
                                 cheating_score=math.nan if e == 1 else 0.5 + shift, local_fidelity=1.0,
                                 used_expert_parameters=e * 7850.0))
    rows.append(dict(name="linear[experts=10]", experts=10, seed=2, status="diverged", accuracy=0.0))
    return pd.DataFrame(rows)


def test_curves_average_the_ok_runs_of_each_family_and_count():
    table = curves(runs()).set_index(["family", "experts"])
    assert table.loc[("linear", 10), "accuracy"] == 0.8 and table.loc[("linear", 10), "n"] == 2  # the diverged run left out
    assert math.isnan(table.loc[("softmax[gate=mlp]", 1), "cheating_score"])
    assert table.loc[("softmax[gate=mlp]", 100), "used_expert_parameters"] == 785000.0


def test_the_figure_is_a_png(tmp_path):
    path = expert_count_figure(runs(), tmp_path / "vs_experts.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
