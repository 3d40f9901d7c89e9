"""report.html of a sweep: self-contained, the configurations with their intervals and best marks, the
drill-down with its pictures, the sweep file and the environment (no browser here: see test_browser.py)."""
from __future__ import annotations

import base64
import html
import json
import math
import re
import statistics

import pandas as pd
import pytest

from bench import uncertainty as unc
from bench.report.reproduction import write_reproduction_report
from bench.report.sweep import write_sweep_report
from bench.report.cli import main as report_main
from bench.table.tables import build
from tests.bench.sweep_dirs import make_sweep_dir

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return make_sweep_dir(tmp_path_factory.mktemp("sweep") / "tiny")


@pytest.fixture(scope="module")
def page(sweep_dir):
    return write_sweep_report(sweep_dir).read_text()


def images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', text)]


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_page_is_self_contained_and_every_image_is_a_png(page):
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(https?:)?//', page), "no remote resource"
    assert "<link" not in page and "@import" not in page
    srcs = re.findall(r'<img [^>]*src="([^"]{0,30})', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(b.startswith(PNG) and len(b) > 1000 for b in images(page))


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_table_cells_hold_mean_and_range_not_an_interval_from_two_seeds(sweep_dir, page):
    runs = pd.read_csv(sweep_dir / "runs.csv")
    acc = runs[(runs["name"] == "softmax[experts=3]") & (runs["status"] == "ok")]["accuracy"].tolist()
    assert len(acc) == 2
    row = re.search(r'<tr><td><a href="#cfg-0"><code>softmax\[experts=3\]</code>.*?</tr>', page).group(0)
    assert f"{statistics.mean(acc):.3f}" in row and f"{min(acc):.3f}–{max(acc):.3f}, n=2" in row
    assert 'class="muted ci"' not in page  # no interval anywhere from 2 seeds


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_every_score_header_has_its_direction_and_a_link_to_its_definition(page):
    head = re.search(r'<table id="configs" class="sortable"><thead>(.*?)</thead>', page).group(1)
    assert 'accuracy ↑ <a href="#score-accuracy"' in head and 'dead_experts ↓ <a href="#score-dead_experts"' in head
    for target in re.findall(r'href="#(score-[a-z_]+)"', head):
        assert f'id="{target}"' in page


def test_best_value_of_each_column_is_marked_by_its_direction(tmp_path, shared_figures):  # (the table, not its figures)
    # a: accuracy 0.9, cheating 0.1; b: accuracy 0.85, cheating 0.3; c: accuracy 0.7, cheating 0.05 (best: lowest)
    rows = []
    for i, (name, acc, cheat) in enumerate([("a[experts=2]", 0.8, 0.1), ("a[experts=2]", 1.0, 0.1), ("b[experts=2]", 0.85, 0.3),
                                            ("b[experts=2]", 0.85, 0.3), ("c[experts=2]", 0.6, 0.0), ("c[experts=2]", 0.8, 0.1)]):
        rows.append({"index": i, "name": name, "status": "ok", "router": name[0], "experts": 2, "seed": i % 2,
                     "accuracy": acc, "cheating_index": cheat, "allocation": json.dumps([[3, 0], [0, 2]])})
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    text = write_sweep_report(tmp_path).read_text()
    rows = re.findall(r'<tr><td><a href="#cfg-\d+"><code>([^<]+)</code>(.*?)</tr>', text)
    assert [name for name, _ in rows] == ["a[experts=2]", "b[experts=2]", "c[experts=2]"]
    marked = {name: [float(v) for v in re.findall(r'<td class="best" data-v="([^"]+)"', cells)] for name, cells in rows}
    assert marked["a[experts=2]"] == [pytest.approx(0.9)]  # highest accuracy
    assert marked["c[experts=2]"] == [pytest.approx(0.05)]  # lowest cheating index
    assert marked["b[experts=2]"] == []


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_drill_down_has_full_names_curves_views_and_provenance(sweep_dir, page):
    details = re.findall(r'<details id="cfg-(\d+)">(.*?)</details>', page, re.S)
    assert [d[0] for d in details] == ["0", "1"]
    assert "softmax[gate=linear,expert=linear,experts=3," in details[0][1]  # the gate, which the sweep name leaves out
    assert "prototype[expert=linear,experts=3," in details[1][1]  # no gate network: no gate field
    for _, body in details:
        alts = re.findall(r'<img alt="([^"]+)"', body)
        assert any(a.startswith("allocation heat-map") for a in alts)
        assert any(a.startswith("per-epoch curves") for a in alts)
        assert any(a.startswith("gate regions") for a in alts)  # gm6 is 2-D
    rec = json.loads(sorted((sweep_dir / "records").glob("*.json"))[0].read_text())
    assert rec["provenance"]["git"][:10] in page and rec["provenance"]["data_sha256"][:12] in page


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_page_carries_the_sweep_file_and_the_environment(page):
    assert '"name": "tiny"' in html.unescape(page) and "report test sweep" in page
    assert re.search(r"version: torch</td><td>[0-9.]+", page)
    assert "kernel backend</td><td><code>torch</code>" in page


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_build_writes_results_long_beside_runs_csv(sweep_dir):
    out = build(sweep_dir)
    long = pd.read_csv(sweep_dir / "results_long.csv")
    runs = out["runs"]
    metrics = long["metric"].unique().tolist()
    assert len(long) == len(runs) * len(metrics) and "accuracy" in metrics and "nmi" in metrics
    one = long[(long["index"] == 1) & (long["metric"] == "accuracy")]
    assert one["value"].item() == pytest.approx(runs.set_index("index").loc[1, "accuracy"])
    assert set(long["direction"][long["metric"] == "accuracy"]) == {"higher"}
    assert long["data_sha256"].notna().all() and long["git_commit"].notna().all()


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_report_cli_rebuilds_a_sweep_and_refuses_a_missing_directory(sweep_dir, tmp_path, capsys):
    (sweep_dir / "report.html").unlink()
    assert report_main([str(sweep_dir)]) == 0
    assert (sweep_dir / "report.html").is_file()
    assert report_main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_reproduction_page_shows_claims_and_links_each_sweep(sweep_dir, tmp_path):
    write_sweep_report(sweep_dir)  # its own page, linked
    (tmp_path / "tiny").symlink_to(sweep_dir, target_is_directory=True)
    claims = [{"claim": "c1", "sweep": "tiny", "verdict": "SUPPORTED", "reason": "", "runs": 4,
               "conditions": [{"label": "mean accuracy", "op": ">=", "threshold": 0.5, "value": 0.93, "n": 4, "holds": True,
                               "note": "", "detail": {}, "interval": [0.9, 0.95]}]}]
    (tmp_path / "reproduction.json").write_text(json.dumps({"budget": "small", "wall_s": 12.0, "versions": {"torch": "x"},
                                                            "sweeps": {"tiny": {"overrides": {}, "runs": 4, "figures": []}},
                                                            "claims": claims}))
    (tmp_path / "REPRODUCTION.md").write_text("# Reproduction\n")
    text = write_reproduction_report(tmp_path).read_text()
    assert "SUPPORTED" in text and "mean accuracy" in text and "0.930" in text and "interval [0.900, 0.950]" in text
    assert 'href="tiny/report.html"' in text and "softmax[experts=3]" in text
    assert 'href="tiny/report.html#score-accuracy"' in text and 'href="#score-' not in text  # definitions: on the sweep's page


def test_the_rule_no_interval_below_three_runs_and_intervals_in_the_domain():
    two = unc.summarize([0.8, 1.0], "accuracy")
    assert two.n == 2 and math.isnan(two.low) and (two.min, two.max) == (0.8, 1.0) and two.text() == "0.900 (range 0.800–1.000, n = 2)"
    three = unc.summarize([1.0, 2.0, 3.0, None, float("nan")])
    assert three.n == 3 and three.mean == 2.0 and 1.0 <= three.low < 2.0 < three.high <= 3.0
    # the percentile interval of the mean against the exact distribution of the 27 equally likely resamples
    means = sorted(sum(c) / 3 for c in __import__("itertools").product([1.0, 2.0, 3.0], repeat=3))
    assert (three.low, three.high) == (means[0], means[-1])  # P(all 1) = 1/27 = 3.7% > 2.5%: the extremes are the quantiles
    near_one = unc.summarize([0.99, 1.0, 1.0, 0.98], "accuracy")
    assert 0 <= near_one.low <= near_one.high <= 1
    assert unc.domain("accuracy") == (0, 1) and unc.domain("val_nmi") == (0, 1) and unc.domain("mi_bits") == (0, math.inf)
    assert unc.domain("train_s") == (0, math.inf) and unc.domain("lr") == unc.UNBOUNDED
    assert unc.clip(-0.2, 1.3, (0, 1)) == (0, 1) and unc.summarize([]).text() == "–"
    assert unc.summarize([5.0]).text() == "5.000 (n = 1)"


