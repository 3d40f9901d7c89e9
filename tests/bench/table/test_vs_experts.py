"""The expert-count figure: families, means over seeds, a PNG, a figure job kept in the cache."""
import json
import math

import pandas as pd

from bench.table import drawing
from bench.table.drawing import KINDS, draw
from bench.table.tables import build
from bench.table.vs_experts import curves, expert_count_figure, expert_count_job, family
from tests.bench.sweep_dirs import TINY, make_sweep_dir


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


def test_the_job_draws_the_bytes_of_the_figure(tmp_path):
    kind, args = expert_count_job(runs(), "t")
    text = json.dumps(args)  # plain data (NaN for a missing score): a worker can draw it, a cache key names it
    assert kind in KINDS and json.dumps(json.loads(text)) == text
    assert draw(kind, args) == expert_count_figure(runs(), tmp_path / "v.png", title="t").read_bytes()


def test_a_rebuild_finds_vs_experts_in_the_figure_cache(tmp_path, monkeypatch):
    """Drawn as a pooled job on the first build (not in this process's table code), found in the cache after."""
    grid = {"router": ["softmax"], "experts": [1, 2, 3], "seed": [0]}
    sweep = make_sweep_dir(tmp_path / "s", {**TINY, "grid": grid})
    drawn = []
    real = drawing.draw
    monkeypatch.setattr(drawing, "draw", lambda kind, args: drawn.append(kind) or real(kind, args))
    monkeypatch.setattr(drawing, "PER_WORKER", 10**6)  # every figure drawn here, so counted
    first = build(sweep)
    png = (tmp_path / "s" / "vs_experts.png").read_bytes()
    assert "vs_experts" in drawn and first["figures"].drawn == len(drawn)
    drawn.clear()
    (tmp_path / "s" / "vs_experts.png").unlink()
    second = build(sweep)
    assert drawn == [] and second["figures"].drawn == 0
    assert (tmp_path / "s" / "vs_experts.png").read_bytes() == png
