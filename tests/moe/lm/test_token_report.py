"""moe.report on a routing trace alone and on a language model's record with its trace: the same pages."""
from __future__ import annotations

import json

import numpy as np

from moe.pictures.run_report import main
from moe.records import trace as tr
from moe.scoring.token_scores import layer_scores

from tests.moe.lm.test_token_scores import make_trace


def test_report_of_a_trace_and_of_a_record(tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = make_trace(rng.integers(0, 3, 400), rng.integers(32, 127, 400), [rng.integers(0, 4, 400), rng.integers(0, 4, 400)], 4)
    t.source["tokens"] = "bytes"
    path = tr.write(t, tmp_path / "run.trace.npz")
    assert main([str(path)]) == 0
    page = (tmp_path / "run.trace.report.html").read_text()
    assert (tmp_path / "run.trace.domain_experts.png").stat().st_size > 0
    assert page.count("<h3>") == 2 and page.count('title="expert ') == 2 * 400  # every token, once per layer
    record = {"token_scores": layer_scores(t), "dataset": {"domain_names": t.domain_names},
              "router_saturation": [{"layer": "block 0", "steps": [1, 2], "saturation": [0.5, 1.0]}],
              "validation": {"bits_per_byte": 2.0, "unigram_bits_per_byte": 4.0}, "test": {"bits_per_byte": 2.1}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    assert main([str(tmp_path / "run.json"), "--trace", str(path), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"run.domain_experts.png", "run.saturation.png", "run.report.html"}
    assert "2.000 bits per byte" in (out / "run.report.html").read_text()
    (tmp_path / "bad.npz").write_text("x")
    assert main([str(tmp_path / "bad.npz")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
