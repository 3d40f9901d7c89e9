"""moe.pictures.run_report and moe.pictures.plots on hand-made run records (schema 1) in tmp_path."""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from moe.pictures import run_report
from moe.pictures.plots import allocation_heatmap, heatmap_size
from moe.records.record import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[2]


def make_record(**changes) -> dict:
    record = {
        "schema": 1, "status": "ok", "error": None,
        "config": {"dataset": "gm6", "experts": 4, "router": "softmax", "expert": "linear", "seed": 0},
        "seed": 0,
        "dataset": {"name": "gm6", "class_names": ["c0", "c1", "c2", "c3", "c4", "c5"], "grouping": None,
                    "group_names": None, "n_train": 2400, "n_test": 600},
        "history": [{"epoch": 1, "train_loss": 1.2, "train_accuracy": 0.6, "test_accuracy": 0.7,
                     "expert_share": [0.25, 0.25, 0.25, 0.25]}],
        "test": {"accuracy": 0.9712, "nmi": 0.5, "perplexity": 3.9, "cheating_index": None,
                 "dead_experts": 0.0},
        "allocation": [[100, 0, 0, 0], [0, 100, 0, 0], [0, 0, 100, 0], [0, 0, 0, 100],
                       [50, 50, 0, 0], [0, 0, 50, 50]],
        "timing": {"train_s": 10.0, "eval_s": 0.1, "total_s": 10.2},
        "versions": {"python": "3.11.7", "torch": "2.14.1"},
    }
    record.update(changes)
    return record


def write(tmp_path: Path, record, name="run.json") -> Path:
    path = tmp_path / name
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


class Kept:
    """A picture's PNG drawn before (``drawn_once``), handed to ``save_png`` in place of its Figure."""

    def __init__(self, png: bytes):
        self.png = png


_DRAWN: dict[str, bytes] = {}  # what drawn_once keeps: job (function and arguments, as JSON) -> PNG


@pytest.fixture
def drawn_once(monkeypatch):
    """For a test about a report's text or files, not its drawing: each picture of the report (the allocation heat-map,
    the record's curves and views: ``moe.pictures.view_plots``) drawn once in this module, keyed by its drawing
    function and arguments, and its PNG written again for the next test that draws the same (the same bytes: drawing
    is deterministic). The ablation heat-map is drawn as before. What draws them is tested by the heat-map tests
    below, test_views and the figure and glyph tests, which draw for real."""
    from moe.pictures import view_plots
    from moe.pictures.plots import png_bytes

    def job(name: str, args: tuple, kwargs: dict) -> str:
        return json.dumps([name, args, kwargs], sort_keys=True, default=repr)

    def kept(name: str, real):
        def draw(*args, **kwargs):
            key = job(name, args, kwargs)
            if key not in _DRAWN:
                _DRAWN[key] = png_bytes(real(*args, **kwargs))
            return Kept(_DRAWN[key])
        return draw

    for name in ("curves_figure", "gate_regions_figure", "expert_weights_figure", "prototypes_figure"):
        monkeypatch.setattr(view_plots, name, kept(name, getattr(view_plots, name)))
    real_save, real_heatmap = run_report.save_png, run_report.allocation_heatmap
    monkeypatch.setattr(run_report, "save_png",
                        lambda fig, path: atomic_write_bytes(path, fig.png) if isinstance(fig, Kept) else real_save(fig, path))

    def heatmap(allocation, class_names, path, title=None):
        key = job("allocation_heatmap", (allocation, class_names), {"title": title})
        if key not in _DRAWN:
            _DRAWN[key] = real_heatmap(allocation, class_names, path, title=title).read_bytes()
        return atomic_write_bytes(path, _DRAWN[key])

    monkeypatch.setattr(run_report, "allocation_heatmap", heatmap)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------------------------------
# The CLI on a good record
# ---------------------------------------------------------------------------------------------------

@pytest.mark.slow  # a moe.pictures.run_report subprocess
def test_cli_writes_heatmap_and_summary_and_prints_scores(tmp_path):
    path = write(tmp_path, make_record())
    proc = subprocess.run([sys.executable, "-m", "moe.pictures.run_report", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    png, md = tmp_path / "run.allocation.png", tmp_path / "run.summary.md"
    assert png_size(png) == heatmap_size(6, 4, longest_name=2)
    lines = proc.stdout.splitlines()
    assert any(line.split() == ["accuracy", "0.9712", "higher"] for line in lines)
    assert any(line.split() == ["perplexity", "3.9000", "neutral"] for line in lines)
    assert any(line.split() == ["cheating_index", "nan", "lower"] for line in lines)  # null -> nan
    text = md.read_text()
    assert "| accuracy | 0.9712 | higher |" in text
    assert "![allocation heat-map](run.allocation.png)" in text
    assert "| c4 | 50 | 50 | 0 | 0 |" in text
    # the title: the full configuration name (moe.records.naming; the gate stated even at its default)
    assert text.startswith("# Run run.json: gm6: softmax[gate=linear,expert=linear,experts=4], seed 0\n")
    assert "status: ok" in text and "router=softmax" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.allocation.png", "run.curves.png", "run.json", "run.summary.md"]
    assert "![curves](run.curves.png)" in text


def test_table_is_aligned_in_direction_order(tmp_path, capsys, drawn_once):
    record = make_record()
    record["test"]["zz_new_metric"] = 7
    assert run_report.main([str(write(tmp_path, record))]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.split() and line.split()[-1] in
             {"higher", "lower", "neutral", "?", "better"}]
    assert [line.split()[0] for line in table] == \
        ["metric", "accuracy", "nmi", "perplexity", "dead_experts", "cheating_index", "zz_new_metric"]
    assert len({line.index(line.split()[-1]) for line in table}) == 1  # the direction column lines up
    assert table[-1].split() == ["zz_new_metric", "7", "?"]


def test_output_paths():
    assert run_report.output_paths("runs/a.json") == (Path("runs/a.allocation.png"), Path("runs/a.summary.md"))
    assert run_report.output_paths("runs/a.b") == (Path("runs/a.b.allocation.png"), Path("runs/a.b.summary.md"))


def test_failed_run_without_allocation(tmp_path, capsys, drawn_once):
    record = make_record(status="error", error="ValueError: boom", test={}, allocation=[])
    assert run_report.main([str(write(tmp_path, record))]) == 0
    out = capsys.readouterr().out
    assert "status: error (ValueError: boom)" in out and "(no test scores)" in out
    assert not (tmp_path / "run.allocation.png").exists()
    assert "status: error" in (tmp_path / "run.summary.md").read_text()


def test_class_names_default_to_indices(tmp_path, drawn_once):
    record = make_record()
    record["dataset"]["class_names"] = None
    assert run_report.main([str(write(tmp_path, record))]) == 0
    assert "| 5 | 0 | 0 | 50 | 50 |" in (tmp_path / "run.summary.md").read_text()


# ---------------------------------------------------------------------------------------------------
# Errors: one line on stderr, exit code 2
# ---------------------------------------------------------------------------------------------------

def _bad(tmp_path):
    rec = make_record
    cases = {
        "missing": (tmp_path / "absent.json", "no such file"),
        "directory": (tmp_path, "cannot read"),
        "not json": (write(tmp_path, "{not json", "a.json"), "not JSON"),
        "binary": (tmp_path / "b.json", "cannot read"),
        "list": (write(tmp_path, "[1, 2]", "c.json"), "not a run record (a JSON list"),
        "missing keys": (write(tmp_path, {"schema": 1, "status": "ok"}, "d.json"), "missing config"),
        "schema": (write(tmp_path, rec(schema=2), "e.json"), "unsupported record schema 2"),
        "test values": (write(tmp_path, rec(test={"accuracy": "high"}), "f.json"), "test.accuracy"),
        "ragged allocation": (write(tmp_path, rec(allocation=[[1, 2], [3]]), "g.json"), "allocation"),
        "negative count": (write(tmp_path, rec(allocation=[[1, -2]] * 6), "h.json"), "allocation"),
        "names mismatch": (write(tmp_path, rec(allocation=[[1, 2]] * 5), "i.json"), "class_names"),
    }
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00garbage")
    return cases


@pytest.mark.parametrize("case", ["missing", "directory", "not json", "binary", "list", "missing keys",
                                  "schema", "test values", "ragged allocation", "negative count",
                                  "names mismatch"])
def test_bad_records_exit_2_with_one_line(tmp_path, capsys, case):
    path, message = _bad(tmp_path)[case]
    assert run_report.main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moe.pictures.run_report: error: ") and message in lines[0]
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.md"))


# ---------------------------------------------------------------------------------------------------
# The heat-map
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_classes,n_experts", [(1, 1), (6, 4), (12, 5), (3, 40)])
def test_heatmap_png_has_expected_size(tmp_path, n_classes, n_experts):
    alloc = [[(c * 7 + e * 3) % 11 for e in range(n_experts)] for c in range(n_classes)]
    names = [f"class {c}" for c in range(n_classes)]
    out = allocation_heatmap(alloc, names, tmp_path / "h.png", title="t")
    assert out == tmp_path / "h.png"
    assert png_size(out) == heatmap_size(n_classes, n_experts, max(len(n) for n in names))
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]  # no temporary file left behind


def test_heatmap_accepts_tensor_and_overwrites(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "h.png"
    path.write_bytes(b"old")
    allocation_heatmap(torch.tensor([[3, 0], [1, 5]]), ["trouser", "digit 7"], path)
    assert png_size(path) == heatmap_size(2, 2, len("digit 7"))


@pytest.mark.parametrize("alloc,names,match", [
    ([[1, 2], [3, 4]], ["a"], "class_names: expected 2"),
    ([], [], "non-empty"),
    ([[1, 2], [3]], ["a", "b"], "unequal"),
    ([[1, math.nan]], ["a"], "non-negative"),
])
def test_heatmap_bad_input(tmp_path, alloc, names, match):
    with pytest.raises(ValueError, match=match):
        allocation_heatmap(alloc, names, tmp_path / "h.png")
    assert not list(tmp_path.iterdir())


def test_atomic_write_cleans_up_on_failure(tmp_path):
    path = atomic_write_bytes(tmp_path / "x.md", b"hello")
    assert path.read_bytes() == b"hello" and oct(path.stat().st_mode & 0o777) == oct(0o644)
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "y.md", "not bytes")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.md"]


def test_a_record_with_an_ablation_gets_its_heat_map_and_a_section(tmp_path, drawn_once):
    ablation = [[0.9, 0, 0, 0, 0.1, 0], [0, 0.8, 0, 0, 0.1, 0], [0, 0, 0.7, 0, 0, 0.2], [0, 0, 0, 0.9, -0.05, 0.2]]
    path = write(tmp_path, make_record(ablation=ablation, ablation_rule="rerouted: the router's next choice"))
    png, md = run_report.write_report(run_report.load_record(path), path)
    abl = run_report.ablation_path(path)
    assert abl.name == "run.ablation.png" and png_size(abl)[0] > 100
    text = md.read_text()
    assert "![ablation heat-map](run.ablation.png)" in text and "rule: rerouted" in text
    plain = write(tmp_path, make_record(), name="plain.json")  # no ablation: no picture, no section
    run_report.write_report(run_report.load_record(plain), plain)
    assert not run_report.ablation_path(plain).exists() and "ablation" not in (tmp_path / "plain.summary.md").read_text()


def test_ablation_heatmap_checks_its_inputs(tmp_path):
    from moe.pictures.plots import ablation_heatmap
    with pytest.raises(ValueError, match="class_names"):
        ablation_heatmap([[0.1, 0.2]], ["a"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="matrix"):
        ablation_heatmap([], [], tmp_path / "x.png")
    out = ablation_heatmap([[0.1, None], [0.0, -0.3]], ["a", "b"], tmp_path / "x.png")  # null (NaN) cells allowed
    assert png_size(out)[1] > 100


def test_out_names_the_folder_of_every_output(tmp_path, capsys, drawn_once):
    rec = make_record(views={"gate_regions": {"x_range": [0, 1], "y_range": [0, 1], "size": 2, "expert": [[0, 1], [2, 3]],
                                              "points": {"x": [0.2, 0.8], "y": [0.3, 0.7], "label": [0, 5]}}})
    path = write(tmp_path, rec)
    assert run_report.main([str(path), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "run.allocation.png", "run.curves.png", "run.gate_regions.png", "run.summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run.json"]
    assert f"wrote {tmp_path / 'out' / 'run.gate_regions.png'}" in capsys.readouterr().out


def test_the_readme_example_outputs_are_ignored_by_git():
    names = ["run.json", "run.allocation.png", "run.curves.png", "run.gate_regions.png", "run.summary.md"]
    proc = subprocess.run(["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.split() == names


def test_the_printed_report_shows_the_router_saturation_curve():
    from moe.pictures.run_report import format_scores

    rec = {"status": "ok", "config": {"router": "softmax"}, "dataset": {"name": "gm6"}, "test": {"accuracy": 0.5},
           "routing_dynamics": {"k": 1, "reference_epoch": 3, "router_saturation": [0.5, None, 1.0], "saturation_epoch": 3}}
    assert "router saturation per epoch (validation, k=1, against epoch 3): 0.50, –, 1.00; saturation_epoch 3" in format_scores(rec)
    assert "saturation" not in format_scores({**rec, "routing_dynamics": None})
