"""saturation.png (bench.table.saturation): the mean curve per configuration on hand-made records, and the
picture a sweep directory's tables and report get."""
from __future__ import annotations

import re

import pytest

from bench.report.sweep import write_sweep_report
from bench.table.tables import build
from bench.table.saturation import saturation_curves
from tests.bench.sweep_dirs import make_sweep_dir

PNG = b"\x89PNG\r\n\x1a\n"


def rec(name, curve, status="ok"):
    return {"status": status, "bench": {"name": name}, "routing_dynamics": None if curve is None else {"router_saturation": curve}}


def test_the_mean_over_seeds_at_each_epoch_that_has_values():
    records = [rec("a", [0.5, 1.0]), rec("a", [0.7, 0.9, 1.0]), rec("a", [0.1, 0.1, 0.1], status="diverged"),
               rec("b", [None, 0.25, 1.0]), rec("c", None)]
    curves = saturation_curves(records)
    assert list(curves) == ["a", "b"]  # c: no dynamics; the diverged run of a left out
    epochs, means, n = curves["a"]
    assert epochs == [1, 2, 3] and means == pytest.approx([0.6, 0.95, 1.0]) and n == 2
    assert curves["b"] == ([2, 3], [0.25, 1.0], 1)
    assert saturation_curves([rec("c", None)]) == {}


@pytest.mark.usefixtures("shared_figures")  # the page's other figures: drawn once per test run (conftest)
def test_a_sweep_gets_saturation_png_and_a_report_section(tmp_path):
    folder = make_sweep_dir(tmp_path / "tiny")
    built = build(folder)
    png = folder / "saturation.png"
    assert png in built["files"] and png.read_bytes().startswith(PNG)
    page = write_sweep_report(folder, built).read_text()  # as bench.pipeline does: the tables are built once
    section = re.search(r'<h2 id="dynamics">Routing dynamics</h2>(.*?)<h2', page, re.S).group(1)
    assert '<img ' in section and "saturation_epoch" in section
    assert 'href="#dynamics"' in page
