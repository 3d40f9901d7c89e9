"""The claims table of a reproduction's report.html: every verdict counted and coloured, notes in words."""
import json

from bench import uncertainty as unc
from bench.report import page_parts
from bench.report.reproduction import VERDICTS, claims_table, write_reproduction_report


def claim(name, status, **cond):
    base = {"label": "mean cheating score", "op": ">=", "threshold": 0.8, "value": 0.918, "n": 6, "holds": True,
            "note": "", "detail": {"runs": 6.0, "std": 0.063}}
    return {"claim": name, "sweep": "s", "verdict": status, "reason": "", "conditions": [{**base, **cond}]}


def test_every_verdict_is_counted_and_contradicted_reads_as_a_failure(tmp_path):
    claims = [claim(f"c{i}", v) for i, v in enumerate(VERDICTS)] + [claim("c9", "CONTRADICTED")]
    (tmp_path / "reproduction.json").write_text(json.dumps({"budget": "seed", "wall_s": 3.0, "sweeps": {}, "claims": claims}))
    text = write_reproduction_report(tmp_path).read_text()
    assert "1 supported, 2 contradicted, 1 inconclusive, 1 premise failed, 1 not run." in text
    assert '<span class="fail">CONTRADICTED</span>' in text and '<span class="pass">SUPPORTED</span>' in text
    assert '<span class="muted">INCONCLUSIVE</span>' in text and "not supported" not in text


def test_notes_are_words_not_json():
    cond = {"interval": [0.9218333333333334, 1.0], "level": 0.95, "verdict": "SUPPORTED", "interval_note": "",
            "seeds": 10, "seeds_needed": None, "collapsed": 8, "collapsed_kept": True,
            "sensitivity": [{"threshold": 0.375, "verdict": "SUPPORTED"}, {"threshold": 0.625, "verdict": "CONTRADICTED"}],
            "permutation_p": {"rising": 9.999000099990002e-05, "falling": 1.0},
            "configurations": ["softmax[experts=10]", "softmax[experts=20]"]}
    html = claims_table([claim("c", "SUPPORTED", **cond)])
    assert "runs: 6;" in html and "std: 0.063" in html  # a whole number reads as one
    assert "95% interval [0.922, 1.000]" in html and "0.9218333" not in html
    assert "threshold moved: 0.375 → SUPPORTED, 0.625 → CONTRADICTED" in html
    assert "one-sided permutation p: rising 1.0e-04, falling 1" in html
    assert "collapsed runs: 8 (kept)" in html and "seeds: 10" in html
    assert "configurations (2): <code>softmax[experts=10]</code>, <code>softmax[experts=20]</code>" in html
    assert "seeds needed" not in html and "interval note" not in html  # empty entries say nothing
    assert "&quot;" not in html and "{" not in html  # no raw JSON


def test_no_negative_zero_anywhere():
    assert unc.fixed(-0.0004) == "0.000" and unc.fixed(-0.0) == "0.000" and unc.fixed(-0.0006) == "-0.001"
    assert unc.fixed(-0.04, 1) == "0.0" and unc.fixed(-0.06, 1) == "-0.1"
    assert page_parts.num(-0.0001) == "0.000"
    assert unc.summarize([-0.0004, 0.0001, -0.0002]).text() == "0.000 [0.000, 0.000]"
    assert unc.summarize([-0.0004, 0.0003]).text() == "0.000 (range 0.000–0.000, n = 2)"
