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

from bench.report import stats
from bench.report.reproduction import write_reproduction_report
from bench.report.sweep import write_sweep_report
from bench.report.cli import main as report_main
from bench.table import build
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
def test_table_cells_hold_mean_and_t_interval_over_seeds(sweep_dir, page):
    runs = pd.read_csv(sweep_dir / "runs.csv")
    acc = runs[(runs["name"] == "softmax[experts=3]") & (runs["status"] == "ok")]["accuracy"].tolist()
    assert len(acc) == 2
    mean, sd = statistics.mean(acc), statistics.stdev(acc)
    half = 12.706 * sd / math.sqrt(2)  # t_{0.975, 1}
    row = re.search(r'<tr><td><a href="#cfg-0"><code>softmax\[experts=3\]</code>.*?</tr>', page).group(0)
    assert f"{mean:.3f}" in row and f"[{mean - half:.3f}, {mean + half:.3f}]" in row


@pytest.mark.slow  # trains a sweep directory and draws its page
def test_every_score_header_has_its_direction_and_a_link_to_its_definition(page):
    head = re.search(r'<table id="configs" class="sortable"><thead>(.*?)</thead>', page).group(1)
    assert 'accuracy ↑ <a href="#score-accuracy"' in head and 'dead_experts ↓ <a href="#score-dead_experts"' in head
    for target in re.findall(r'href="#(score-[a-z_]+)"', head):
        assert f'id="{target}"' in page


def test_best_value_of_each_column_is_marked_by_its_direction(tmp_path):
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
    assert "SUPPORTED" in text and "mean accuracy" in text and "0.930" in text and "[0.9, 0.95]" in text
    assert 'href="tiny/report.html"' in text and "softmax[experts=3]" in text
    assert 'href="tiny/report.html#score-accuracy"' in text and 'href="#score-' not in text  # definitions: on the sweep's page


def test_t_quantiles_and_intervals():
    assert stats.t975(1) == 12.706 and stats.t975(30) == 2.042
    assert stats.t975(60) == pytest.approx(2.000, abs=2e-3) and stats.t975(1000) == pytest.approx(1.962, abs=1e-3)
    mean, lo, hi, n = stats.t_interval([1.0, 2.0, 3.0, None, float("nan")])
    assert (mean, n) == (2.0, 3) and hi - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(stats.t_interval([5.0])[1]) and stats.t_interval([])[3] == 0
