"""The table builder on a hand-made runs.csv (known means, stds and Pareto sets), and seed stability (no Ray)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.table.cli import main
from bench.table.configurations import markdown, summary
from bench.table.pareto import pareto, pareto_front
from bench.table.runs import busiest_share
from bench.table.tables import build, load_runs

# 4 configurations x 2 seeds, plus one error and one diverged run. Per configuration (ok runs):
#   a: accuracy 0.90 +- 0.1414 (0.8, 1.0), nmi 0.2,  cheating 0.1
#   b: accuracy 0.85 (0.85, 0.85),          nmi 0.5,  cheating 0.3
#   c: accuracy 0.70 (0.6, 0.8),            nmi 0.4,  cheating 0.05   (dominated on nmi by b; on the cheating front)
#   d: accuracy 0.50 (one ok run),          nmi 0.9,  cheating 0.5
RUNS = [
    ("a[experts=2]", "a", 0, "ok", 0.8, 0.1, 0.1), ("a[experts=2]", "a", 1, "ok", 1.0, 0.3, 0.1),
    ("b[experts=2]", "b", 0, "ok", 0.85, 0.5, 0.3), ("b[experts=2]", "b", 1, "ok", 0.85, 0.5, 0.3),
    ("c[experts=2]", "c", 0, "ok", 0.6, 0.4, 0.0), ("c[experts=2]", "c", 1, "ok", 0.8, 0.4, 0.1),
    ("d[experts=2]", "d", 0, "ok", 0.5, 0.9, 0.5), ("d[experts=2]", "d", 1, "error", None, None, None),
    ("a[experts=2]", "a", 2, "diverged", 0.1, 0.0, 0.0),
]


@pytest.fixture
def runs_csv(tmp_path):
    rows = []
    for i, (name, router, seed, status, acc, nmi, cheat) in enumerate(RUNS):
        rows.append({"index": i, "name": name, "status": status, "error": "boom" if status == "error" else None,
                     "router": router, "experts": 2, "seed": seed, "accuracy": acc, "nmi": nmi, "cheating_index": cheat,
                     "allocation": json.dumps([[3, 0], [0, 2 + i]]) if status == "ok" else None})
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    return tmp_path


def test_summary_has_known_means_stds_and_counts(runs_csv):
    summ = summary(pd.read_csv(runs_csv / "runs.csv")).set_index("name")
    assert list(summ.index) == ["a[experts=2]", "b[experts=2]", "c[experts=2]", "d[experts=2]"]
    a, b, c, d = (summ.loc[f"{x}[experts=2]"] for x in "abcd")
    assert a["accuracy_mean"] == pytest.approx(0.9) and a["accuracy_std"] == pytest.approx(math.sqrt(0.02))
    assert a["nmi_mean"] == pytest.approx(0.2) and a["n_ok"] == 2 and a["n_diverged"] == 1 and a["runs"] == 3
    assert b["accuracy_std"] == pytest.approx(0.0) and c["accuracy_mean"] == pytest.approx(0.7)
    assert d["accuracy_mean"] == pytest.approx(0.5) and math.isnan(d["accuracy_std"]) and d["n_error"] == 1


def test_pareto_sets_are_the_non_dominated_configurations(runs_csv):
    front = pareto(summary(pd.read_csv(runs_csv / "runs.csv")))
    by_score = {s: list(g["name"]) for s, g in front.groupby("score")}
    # nmi (higher better): a (best accuracy), b (0.85, 0.5), d (0.5, 0.9); c (0.7, 0.4) is dominated by b
    assert by_score["nmi"] == ["a[experts=2]", "b[experts=2]", "d[experts=2]"]
    # cheating index (lower better): a (0.9, 0.1) and c (0.7, 0.05); b and d are dominated by a
    assert by_score["cheating_index"] == ["a[experts=2]", "c[experts=2]"]
    assert set(front["direction"][front["score"] == "cheating_index"]) == {"lower"}


def test_pareto_front_ties_and_nans():
    assert pareto_front([(1, 1), (1, 1), (0, 0), (math.nan, 5)]) == [0, 1]
    assert pareto_front([(0.9, 0.1), (0.5, 0.9), (0.4, 0.8)]) == [0, 1]


def test_cli_rebuilds_every_file_from_a_runs_csv(runs_csv, capsys):
    assert main([str(runs_csv)]) == 0
    out = capsys.readouterr().out
    for f in ("runs.csv", "table.md", "table.tex", "pareto.csv", "tradeoff.png", "heatmaps/a.png", "heatmaps/d.png"):
        assert (runs_csv / f).is_file(), f
    md = (runs_csv / "table.md").read_text()
    # two runs: the mean with the range and n, no interval (bench.uncertainty)
    assert ("| `a[experts=2]` | 2/3 (1 diverged) | 0.900 (range 0.800–1.000, n = 2) | 0.200 (range 0.100–0.300, n = 2) |"
            in md)
    assert "| `d[experts=2]` | 1/2 (1 error) | 0.500 (n = 1) | 0.900 (n = 1) |" in md
    assert "accuracy ↑" in md and "cheating_index ↓" in md
    tex = (runs_csv / "table.tex").read_text()
    assert "0.900 (range 0.800--1.000, n = 2)" in tex and r"\texttt{a[experts=2]}" in tex
    assert "4 configurations" in out
    table = out.split("\n\n")[0].splitlines()
    assert table[0].startswith("configuration") and "a[experts=2]" in out and max(map(len, table)) <= 120
    assert "0.900 (0.80–1.00)" in out  # the terminal's compact range
    assert not list(runs_csv.glob(".*.tmp")), "atomic writes leave no temporary files"
    assert not (runs_csv / "vs_experts.png").exists()  # one expert count: no curve against it


def test_a_sweep_over_three_expert_counts_gets_the_vs_experts_figure(tmp_path):
    rows = [{"index": i, "name": f"a[experts={e}]", "status": "ok", "router": "a", "experts": e, "seed": s,
             "accuracy": 0.8 + 0.01 * e, "cheating_index": 0.5, "allocation": json.dumps([[3] + [0] * (e - 1)])}
            for i, (e, s) in enumerate((e, s) for e in (1, 2, 4) for s in (0, 1))]
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / "vs_experts.png").stat().st_size > 10_000


def test_cli_on_a_directory_without_runs_is_an_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err


def record(index, name, seed, assignment, status="ok", accuracy=0.9, allocation=((1, 0), (0, 1))):
    return {"status": status, "error": None, "config": {"router": name.split("[")[0], "seed": seed, "experts": 2},
            "test": {"accuracy": accuracy, "nmi": 0.5}, "history": [{}], "timing": {"train_s": 1.0},
            "allocation": [list(row) for row in allocation], "versions": {"git": "abc"}, "dataset": {"class_names": ["x", "y"]},
            "test_assignment": assignment, "bench": {"index": index, "name": name, "trial_s": 1.5}}


def test_runs_from_records_with_seed_stability(tmp_path):
    recs = [record(0, "s[experts=2]", 0, [0, 0, 1, 1]), record(1, "s[experts=2]", 1, [1, 1, 0, 0]),  # relabelled: 1
            record(2, "s[experts=2]", 2, [0, 1, 0, 1]),  # independent of both: 0
            record(3, "t[experts=2]", 0, [0, 0, 0, 1]), record(4, "t[experts=2]", 1, None, status="error")]
    for r in recs:
        (tmp_path / "records").mkdir(exist_ok=True)
        (tmp_path / "records" / f"{r['bench']['index']:04d}.json").write_text(json.dumps(r))
    runs = load_runs(tmp_path)
    assert list(runs["index"]) == [0, 1, 2, 3, 4]
    assert runs.loc[0, "stability_nmi"] == pytest.approx(0.5)
    assert runs.loc[0, "stability_ari"] == pytest.approx((1.0 + _ari([0, 0, 1, 1], [0, 1, 0, 1])) / 2)
    assert runs.loc[2, "stability_nmi"] == pytest.approx(0.0)
    assert math.isnan(runs.loc[3, "stability_nmi"])  # no other ok seed
    built = build(tmp_path)
    summ = built["summary"].set_index("name")
    assert summ.loc["s[experts=2]", "stability_nmi_mean"] == pytest.approx(1 / 3)
    assert (tmp_path / "heatmaps" / "s.png").is_file()


def split_record(index, name, seed, assignment):
    """A record of 4 test samples of classes (0, 0, 1, 1), its allocation counted from the assignment."""
    allocation = [[0, 0], [0, 0]]
    for label, expert in zip((0, 0, 1, 1), assignment):
        allocation[label][expert] += 1
    return record(index, name, seed, assignment, allocation=allocation)


def write_records(folder, recs):
    (folder / "records").mkdir(exist_ok=True)
    for r in recs:
        (folder / "records" / f"{r['bench']['index']:04d}.json").write_text(json.dumps(r))


def test_collapsed_runs_are_not_shown_as_stable(tmp_path):
    """p: two seeds split the same way (relabelled), a third sends everything to expert 0;
    q: both seeds collapsed (their NMI and ARI would be 1 by the 0 / 0 convention)."""
    write_records(tmp_path, [split_record(0, "p[experts=2]", 0, [0, 0, 1, 1]), split_record(1, "p[experts=2]", 1, [1, 1, 0, 0]),
                             split_record(2, "p[experts=2]", 2, [0, 0, 0, 0]),
                             split_record(3, "q[experts=2]", 0, [0, 0, 0, 0]), split_record(4, "q[experts=2]", 1, [1, 1, 1, 1])])
    runs = load_runs(tmp_path)
    assert list(runs["busiest_share"]) == [0.5, 0.5, 1.0, 1.0, 1.0]
    assert list(runs["stability_nmi"][:2]) == pytest.approx([1.0, 1.0])  # the collapsed seed's pair is left out
    assert runs["stability_nmi"][2:].isna().all() and runs["stability_ari"][2:].isna().all()
    built = build(tmp_path, plots=False)
    summ = built["summary"].set_index("name")
    assert summ.loc["p[experts=2]", "stability_nmi_mean"] == pytest.approx(1.0) and summ.loc["p[experts=2]", "n_collapsed"] == 1
    assert math.isnan(summ.loc["q[experts=2]", "stability_nmi_mean"]) and summ.loc["q[experts=2]", "n_collapsed"] == 2
    md = (tmp_path / "table.md").read_text()
    assert "| stability_nmi ↑ | stability_ari ↑ | collapsed |" in md
    assert "| 1.000 | 1.000 | 1/3 |" in md and "| – | – | 2/2 |" in md and "nan" not in md.lower()
    assert "collapsed: ok runs with at least 99% of the test samples on one expert" in md
    tex = (tmp_path / "table.tex").read_text()
    assert "-- & -- & 2/2" in tex and "nan" not in tex.lower()
    # the same table from runs.csv alone (records gone): busiest_share is read back
    (tmp_path / "records").rename(tmp_path / "old-records")
    assert list(summary(load_runs(tmp_path))["n_collapsed"]) == [1, 2]


def test_collapsed_runs_counted_from_a_hand_made_runs_csv(runs_csv):
    runs = pd.read_csv(runs_csv / "runs.csv")
    assert list(summary(runs)["n_collapsed"]) == [0, 0, 0, 0]  # from the allocation column
    assert "collapsed" not in markdown(summary(runs))  # shown only when some run collapsed
    runs.loc[6, "allocation"] = json.dumps([[3, 0], [8, 0]])  # d's ok run: every sample on expert 0
    assert list(summary(runs)["n_collapsed"]) == [0, 0, 0, 1]
    assert "| 1/1 |" in markdown(summary(runs))
    assert math.isnan(busiest_share(None)) and math.isnan(busiest_share([[0, 0], [0, 0]]))  # unknown, nothing assigned


def _ari(a, b):
    from moe.scoring.metrics import stability

    return stability(a, b)["ari"]


def test_a_sweep_whose_runs_all_failed_still_gets_its_tables(tmp_path):
    pd.DataFrame([{"index": 0, "name": "a[experts=2]", "status": "error", "error": "boom", "router": "a", "seed": 0},
                  {"index": 1, "name": "a[experts=2]", "status": "error", "error": "boom", "router": "a", "seed": 1}]
                 ).to_csv(tmp_path / "runs.csv", index=False)
    out = build(tmp_path)
    assert "| `a[experts=2]` | 0/2 (2 error) |" in (tmp_path / "table.md").read_text()
    assert out["pareto"].empty and not (tmp_path / "tradeoff.png").exists()


def test_collapsed_runs_are_kept_out_of_the_pareto_sets_and_counted(tmp_path):
    """q: the most accurate configuration, but both of its runs collapsed: on no front. p: one of its three
    runs collapsed; it stays on the fronts with the means of its two other runs, and the count beside it."""
    recs = [split_record(0, "p[experts=2]", 0, [0, 0, 1, 1]), split_record(1, "p[experts=2]", 1, [1, 1, 0, 0]),
            split_record(2, "p[experts=2]", 2, [0, 0, 0, 0]),
            split_record(3, "q[experts=2]", 0, [0, 0, 0, 0]), split_record(4, "q[experts=2]", 1, [1, 1, 1, 1])]
    for r in recs:
        collapsed = len(set(r["test_assignment"])) == 1
        r["test"]["accuracy"] = 0.99 if r["bench"]["name"].startswith("q") else (0.5 if collapsed else 0.8)
        r["test"]["nmi"] = 0.0 if collapsed else 1.0
    write_records(tmp_path, recs)
    front = build(tmp_path, plots=False)["pareto"]
    assert not front.empty and "q[experts=2]" not in set(front["name"])
    nmi = front[front["score"] == "nmi"].set_index("name")
    assert nmi.loc["p[experts=2]", "accuracy"] == pytest.approx(0.8)  # the collapsed run's 0.5 left out
    assert nmi.loc["p[experts=2]", "value"] == pytest.approx(1.0) and nmi.loc["p[experts=2]", "collapsed_left_out"] == 1


def test_mutual_information_and_usage_entropy_in_bits(tmp_path):
    """I(E;Y) and H(E) from the test allocation, by hand: a one-to-one split of two equal classes over two experts
    is 1 bit each; a collapsed run 0 bits each; [[3, 1], [1, 3]] gives I = 1 - H2(1/4) = 0.18872 bits."""
    from bench.table.runs import h_expert_bits, mi_bits

    write_records(tmp_path, [split_record(0, "p[experts=2]", 0, [0, 0, 1, 1]), split_record(1, "p[experts=2]", 1, [0, 0, 0, 0])])
    runs = load_runs(tmp_path)
    assert list(runs["mi_bits"]) == pytest.approx([1.0, 0.0]) and list(runs["h_expert_bits"]) == pytest.approx([1.0, 0.0])
    h2 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert mi_bits(json.dumps([[3, 1], [1, 3]])) == pytest.approx(1 - h2) and h_expert_bits([[3, 1], [1, 3]]) == pytest.approx(1.0)
    assert h_expert_bits([[1, 1, 2], [0, 0, 0]]) == pytest.approx(1.5)  # usage (1/4, 1/4, 1/2)
    assert math.isnan(mi_bits(None)) and math.isnan(h_expert_bits([[0, 0], [0, 0]]))


def test_the_new_scores_get_table_columns_only_where_they_have_values():
    rows = [{"name": "p[planted_entanglement=0]", "status": "ok", "seed": s, "accuracy": 0.9, "nmi": 0.5, "ami": 0.4,
             "module_nmi": 0.3 + 0.1 * s, "causal_specialisation": 0.7, "causal_agreement": 0.6,
             "allocation": json.dumps([[3, 0], [0, 2]])} for s in (0, 1)]
    text = markdown(summary(pd.DataFrame(rows)), "t")
    for column in ("ami ↑", "module_nmi ↑", "causal_specialisation ↑", "causal_agreement ↑"):
        assert column in text
    assert "0.350 (range 0.300–0.400, n = 2)" in text  # module_nmi over the two seeds
    plain = [{**r, "module_nmi": float("nan")} for r in rows]  # a dataset without planted modules
    assert "module_nmi" not in markdown(summary(pd.DataFrame(plain)), "t")


def test_the_terminal_table_fits_120_columns_unless_wide():
    from bench.table.configurations import terminal
    rows = [{"index": i, "name": f"softmax[gate=mlp,experts={e},routing=hard,importance_loss=0.1]", "status": "ok",
             "router": "softmax", "seed": s, **{c: 0.5 + 0.01 * s for c in ("accuracy", "nmi", "ami", "mi_bits", "purity",
             "usage_entropy", "dead_experts", "cheating_index")}}
            for i, (e, s) in enumerate((e, s) for e in (2, 4) for s in range(3))]
    summ = summary(pd.DataFrame(rows))
    narrow, wide = terminal(summ), terminal(summ, wide=True)
    lines = narrow.splitlines()
    note = " ".join(lines[lines.index(next(x for x in lines if x.startswith("mean over seeds"))):])
    assert max(len(line) for line in lines) <= 120 and "not shown:" in note and "--wide" in note
    assert "…" in lines[2]  # the long names cut
    assert max(len(line) for line in wide.splitlines()) > 120 and "not shown" not in wide
    assert "softmax[gate=mlp,experts=2,routing=hard,importance_loss=0.1]" in wide
    # three seeds: the interval of the mean; its words under the table
    assert "0.510 [0.50,0.52]" in narrow and "95% bootstrap interval" in note
