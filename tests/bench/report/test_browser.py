"""report.html and compare.html in a real headless browser (Chromium, from the system's packages; ``.ci/run``
installs it): the page loads with no script error and no console message, a click on a header sorts the table
(again: reversed), the filter hides rows, every image decodes, no interval rests on fewer than 3 runs or leaves
its score's domain, and no table is wider than a 1,400 px window. The page checks itself when opened with
``#selftest`` (``bench.report.page_parts``); ``bench.report.browser`` runs it and reads the result back.
Skipped, saying why, where no Chromium is installed."""
from __future__ import annotations

import pytest

import copy

from bench.compare.cli import main as compare_main
from bench.report import page_parts
from bench.report.browser import ENV, WINDOW, find_chromium, screenshot, selftest
from bench.report.sweep import write_sweep_report
from bench.uncertainty import MIN_RUNS
from tests.bench.sweep_dirs import TINY, make_sweep_dir

pytestmark = [pytest.mark.skipif(find_chromium() is None, reason=f"no Chromium installed (apt-get install chromium, or "
                                 f"set ${ENV}): the browser test of report.html needs one; .ci/run installs it"),
              pytest.mark.slow]  # a headless browser per test


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """A 2-seed sweep, and the same sweep with 3 seeds and one more epoch."""
    root = tmp_path_factory.mktemp("browser")
    three = copy.deepcopy(TINY)
    three["grid"]["seed"], three["budget"]["epochs"] = [0, 1, 2], 4
    return make_sweep_dir(root / "tiny"), make_sweep_dir(root / "three", three)


@pytest.fixture(scope="module")
def report(sweeps):
    return write_sweep_report(sweeps[0])


def passes(got):
    res = got["result"]
    assert res is not None, f"the page's self-test never ran: {got['stderr_tail']}"
    assert got["title"] == "SELFTEST PASS", res
    assert res["errors"] == [] and got["console"] == []
    assert res["width"]["window"] == WINDOW[0] and res["width"]["wide_tables"] == []
    return res


def test_sweep_report_loads_sorts_filters_and_every_image_decodes(report):
    res = passes(selftest(report))
    assert res["images"] >= 2 * 3 + 1 and res["bad_images"] == []  # per configuration: heat-map, curves, gate regions
    assert res["sort"]["ascending"] and res["sort"]["descending"] and res["sort"]["values"] == 2
    assert res["filter"]["shown"] == 1 and res["filter"]["rows"] == 2


def test_two_seeds_show_no_interval_and_every_table_fits_the_window(report, sweeps, tmp_path):
    res = passes(selftest(report))
    assert res["intervals"] == {"checked": 0, "bad": []}  # 2 seeds: the range and n, never an interval
    assert compare_main([str(sweeps[0]), str(sweeps[0]), "--out", str(tmp_path / "cmp")]) == 0
    page = tmp_path / "cmp" / "compare.html"
    res = passes(selftest(page))
    assert res["intervals"] == {"checked": 0, "bad": []} and "no interval" in page.read_text()


def test_three_seeds_show_intervals_within_each_scores_domain(sweeps, tmp_path):
    res = passes(selftest(write_sweep_report(sweeps[1])))
    assert res["intervals"]["checked"] >= 10 and res["intervals"]["bad"] == []
    # 2 seeds against 3, and sweeps that differ in epochs: refused without --force; forced, no interval of a
    # difference, and a warning naming the field
    assert compare_main([str(sweeps[0]), str(sweeps[1]), "--out", str(tmp_path / "cmp")]) == 2  # refused ...
    assert compare_main([str(sweeps[0]), str(sweeps[1]), "--out", str(tmp_path / "cmp"), "--force"]) == 0  # ... unless forced
    page = tmp_path / "cmp" / "compare.html"
    res = passes(selftest(page))
    assert res["intervals"]["bad"] == [] and "differ in more than the compared fields" in page.read_text()
    assert "epochs (A: 3; B: 4)" in page.read_text()
    assert compare_main([str(sweeps[1]), str(sweeps[1]), "--out", str(tmp_path / "same")]) == 0
    res = passes(selftest(tmp_path / "same" / "compare.html"))
    assert res["intervals"]["checked"] >= 10 and res["intervals"]["bad"] == []


def test_the_self_test_fails_intervals_from_too_few_runs_out_of_range_and_wide_tables(tmp_path):
    # negative controls: an interval from 2 runs, one outside [0, 1], one with no bounds, a table 3,000 px wide
    cells = [f'<td{page_parts.interval_attrs(2, 0.2, 0.4, (0, 1))}>0.3<span class="ci">[0.2, 0.4]</span></td>',
             f'<td{page_parts.interval_attrs(MIN_RUNS, -3.588, 4.201, (0, 1))}>0.3<span class="ci">[-3.588, 4.201]</span></td>',
             '<td>0.3<span class="ci">[0.1, 0.5]</span></td>']
    bad = tmp_path / "bad.html"
    bad.write_text(page_parts.page("bad", page_parts.table(["a", "b", "c"], [cells]) + '<table id="wide"><tr><td style="min-width:3000px">x'
                          "</td></tr></table>"))
    got = selftest(bad)
    assert got["title"] == "SELFTEST FAIL"
    res = got["result"]
    assert res["intervals"]["checked"] == 3 and len(res["intervals"]["bad"]) == 3
    assert any("n=2" in b for b in res["intervals"]["bad"]) and any("outside [0, 1]" in b for b in res["intervals"]["bad"])
    assert any("no bounds" in b for b in res["intervals"]["bad"])
    assert res["width"]["wide_tables"] and res["width"]["wide_tables"][0].startswith("wide")
    # the same wide table in a scrolling box fits
    ok = tmp_path / "ok.html"
    ok.write_text(page_parts.page("ok", page_parts.scroll('<table id="wide"><tr><td style="min-width:3000px">x</td></tr></table>')))
    assert selftest(ok)["title"] == "SELFTEST PASS"


def test_the_self_test_fails_a_broken_page(tmp_path):
    # the negative control: a broken image, a script error and a console.error must all be caught
    bad = tmp_path / "bad.html"
    rows = [['<td>x</td>', '<td data-v="2">2</td>'], ['<td>y</td>', '<td data-v="1">1</td>']]
    table = page_parts.table(['<th data-type="text">c</th>', '<th data-type="num">v</th>'], rows, table_id="t", sortable=True)
    bad.write_text(page_parts.page("bad", table + '<img alt="broken" src="data:image/png;base64,AAAA">'
                          '<script>console.error("boom"); undefinedFunction();</script>'))
    got = selftest(bad)
    assert got["title"] == "SELFTEST FAIL"
    assert got["result"]["bad_images"] == ["broken"] and got["result"]["sort"]["ascending"]
    assert any("boom" in e for e in got["result"]["errors"]) and any("undefinedFunction" in e for e in got["result"]["errors"])
    assert len(got["console"]) == 2


def test_screenshot(report, tmp_path):
    png = screenshot(report, tmp_path / "shot.png", width=800, height=600)
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


def test_a_reproduction_page_with_long_claim_notes_fits_the_window(tmp_path):
    import json
    from bench.report.reproduction import write_reproduction_report
    long = {"detail": {f"mean at lr_ratio={r}": 0.5 for r in range(40)}, "permutation_p": {"rising": 1e-4, "falling": 1.0}}
    claims = [{"claim": "lr_asymmetry.share_grows_with_ratio", "sweep": "x", "verdict": "SUPPORTED",
               "conditions": [{"label": "trend", "op": ">", "threshold": 0, "value": 0.61, "n": 50, **long}]}]
    (tmp_path / "reproduction.json").write_text(json.dumps({"claims": claims, "sweeps": {}}))
    passes(selftest(write_reproduction_report(tmp_path)))
