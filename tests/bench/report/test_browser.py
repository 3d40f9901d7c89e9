"""report.html in a real headless browser (Chromium, from the system's packages; ``.ci/run`` installs it):
the page loads with no script error and no console message, a click on a header sorts the table (again:
reversed), the filter hides rows, and every image decodes. The page checks itself when opened with
``#selftest`` (``bench.report.html``); ``bench.report.browser`` runs it and reads the result back.
Skipped, saying why, where no Chromium is installed."""
from __future__ import annotations

import pytest

from bench.report import html as h
from bench.report.browser import ENV, find_chromium, screenshot, selftest
from bench.report.sweep import write_sweep_report
from tests.bench.sweep_dirs import make_sweep_dir

pytestmark = [pytest.mark.skipif(find_chromium() is None, reason=f"no Chromium installed (apt-get install chromium, or "
                                 f"set ${ENV}): the browser test of report.html needs one; .ci/run installs it"),
              pytest.mark.slow]  # a headless browser per test


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_sweep_report(make_sweep_dir(tmp_path_factory.mktemp("browser") / "tiny"))


def test_sweep_report_loads_sorts_filters_and_every_image_decodes(report):
    got = selftest(report)
    res = got["result"]
    assert res is not None, f"the page's self-test never ran: {got['stderr_tail']}"
    assert got["title"] == "SELFTEST PASS", res
    assert res["errors"] == [] and got["console"] == []
    assert res["images"] >= 2 * 3 + 1 and res["bad_images"] == []  # per configuration: heat-map, curves, gate regions
    assert res["sort"]["ascending"] and res["sort"]["descending"] and res["sort"]["values"] == 2
    assert res["filter"]["shown"] == 1 and res["filter"]["rows"] == 2


def test_the_self_test_fails_a_broken_page(tmp_path):
    # the negative control: a broken image, a script error and a console.error must all be caught
    bad = tmp_path / "bad.html"
    rows = [['<td>x</td>', '<td data-v="2">2</td>'], ['<td>y</td>', '<td data-v="1">1</td>']]
    table = h.table(['<th data-type="text">c</th>', '<th data-type="num">v</th>'], rows, table_id="t", sortable=True)
    bad.write_text(h.page("bad", table + '<img alt="broken" src="data:image/png;base64,AAAA">'
                          '<script>console.error("boom"); undefinedFunction();</script>'))
    got = selftest(bad)
    assert got["title"] == "SELFTEST FAIL"
    assert got["result"]["bad_images"] == ["broken"] and got["result"]["sort"]["ascending"]
    assert any("boom" in e for e in got["result"]["errors"]) and any("undefinedFunction" in e for e in got["result"]["errors"])
    assert len(got["console"]) == 2


def test_screenshot(report, tmp_path):
    png = screenshot(report, tmp_path / "shot.png", width=800, height=600)
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
