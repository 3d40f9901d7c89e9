"""The score registry: every score has a direction, needs, a one-line definition, a formula, a range, a source
and says whether it is ours; the tables' directions, the keys of score(), score() itself and docs/scores.md
are all read from it."""
import math
from pathlib import Path

import pytest
import torch

from moe.scoring import metrics
from moe.scoring import score_docs
from moe.registry import UnknownNameError
from moe.scoring.scores import (COMPUTED_ELSEWHERE, DIRECTION_NAMES, DIRECTIONS, DOCS, NEEDS, RENAMED, SCORE_KEYS, SCORES,
                        Score, _add, cheating_undefined, score)

ROOT = Path(__file__).resolve().parents[2]
DOC = dict(formula="f", range="[0, 1]", source="s", ours=True)


def inputs(n=60, C=4, E=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    a = torch.randint(-1, E, (n,), generator=g)
    yhat = torch.where(torch.rand(n, generator=g) < 0.6, y, torch.randint(0, C, (n,), generator=g))
    w = torch.rand(n, E, generator=g, dtype=torch.float64).softmax(1)
    ep = torch.randint(0, C, (n, E), generator=g)
    return y, yhat, a, C, E, w, ep, [c % 2 for c in range(C)]


def test_every_score_has_a_direction_needs_and_a_one_line_definition():
    assert len(SCORES) == len(DIRECTIONS) > 20
    for name in SCORES.in_order():
        s = SCORES.get(name)
        assert isinstance(s, Score) and s.name == name
        assert s.direction in DIRECTION_NAMES and s.needs in NEEDS, name
        for field in ("definition", "formula", "range", "source"):
            text = getattr(s, field)
            assert isinstance(text, str) and text.strip() and "\n" not in text, (name, field)
        assert type(s.ours) is bool, name
        assert (s.compute is None) == (s.needs in COMPUTED_ELSEWHERE), name


def test_directions_and_keys_are_read_from_the_registry():
    assert list(DIRECTIONS) == SCORES.in_order()  # the display order is the registration order
    assert all(DIRECTIONS[n] == SCORES.get(n).direction for n in DIRECTIONS)
    keyed = [k for keys in SCORE_KEYS.values() for k in keys]
    assert len(keyed) == len(set(keyed))
    assert set(keyed) == {n for n in SCORES if SCORES.get(n).compute is not None}
    assert set(SCORE_KEYS) == {None, "weights", "grouping", "expert_preds", "modules", "ablation", "expert_parameters",
                               "fit_allocation"}


@pytest.mark.parametrize("optional", [(), ("weights",), ("grouping",), ("expert_preds",), ("weights", "grouping", "expert_preds")])
def test_score_returns_exactly_the_registry_keys_its_inputs_allow(optional):
    y, yhat, a, C, E, w, ep, grouping = inputs()
    given = {"weights": w, "expert_preds": ep, "grouping": grouping}
    got = score(y, yhat, a, C, E, **{k: given[k] for k in optional})
    want = [n for n in SCORES.in_order() if SCORES.get(n).compute is not None
            and NEEDS[SCORES.get(n).needs] in (None, *optional)]
    assert list(got) == want  # exactly these keys, in display order
    assert all(type(v) is float for v in got.values())


def test_registered_scores_agree_with_the_building_blocks():
    y, yhat, a, C, E, w, ep, grouping = inputs(seed=3)
    got = score(y, yhat, a, C, E, weights=w, expert_preds=ep, grouping=grouping)
    alloc = metrics.allocation(y, a, C, E)
    assert got["nmi"] == metrics.nmi(alloc) and got["purity"] == metrics.purity(alloc)
    assert got["routing_entropy"] == metrics.routing_entropy(w)
    assert {k: got[k] for k in ("expert_error", "gate_error")} == \
        {k: v for k, v in metrics.error_attribution(y, yhat, ep).items() if k in ("expert_error", "gate_error")}


def test_the_registry_refuses_duplicates_bad_directions_and_unknown_names():
    with pytest.raises(ValueError, match="registered twice"):
        _add("accuracy", "higher", "predictions", "again", lambda i: 0.0, **DOC)
    with pytest.raises(ValueError, match="bad direction"):
        _add("new_score", "sideways", "predictions", "x", lambda i: 0.0, **DOC)
    with pytest.raises(ValueError, match="bad direction"):
        _add("new_score", "higher", "two runs", "computed elsewhere, yet given a compute", lambda i: 0.0, **DOC)
    with pytest.raises(ValueError, match="one non-empty line"):
        _add("new_score", "higher", "predictions", "x", lambda i: 0.0, **{**DOC, "source": " "})
    with pytest.raises(ValueError, match="one non-empty line"):
        _add("new_score", "higher", "predictions", "x", lambda i: 0.0, **{**DOC, "formula": "a\nb"})
    with pytest.raises(TypeError, match="ours"):  # every field is required
        _add("new_score", "higher", "predictions", "x", lambda i: 0.0, formula="f", range="r", source="s")
    assert "new_score" not in SCORES
    with pytest.raises(UnknownNameError, match="did you mean 'accuracy'"):
        SCORES.get("acuracy")


def test_the_cheating_scores_are_marked_as_ours_and_published_formulas_are_not():
    for name in ("cheating_index", "expert_prediction_entropy", "collapsed", "near_chance", "router_only_accuracy",
                 "gate_error", "stability_nmi"):
        assert SCORES.get(name).ours, name
    for name in ("accuracy", "nmi", "mi_bits", "purity", "importance_cv2", "loss"):
        assert not SCORES.get(name).ours, name
    assert "Elazar & Taylor 2022" in SCORES.get("cheating_index").source
    assert SCORES.get("cheating_index").range == "[0, 1], or NaN"


def test_expert_constancy_is_renamed_for_what_a_high_value_means():
    assert "expert_constancy" not in SCORES and "expert_constancy" not in SCORE_KEYS["expert_preds"]
    assert RENAMED == {"expert_constancy": "expert_prediction_entropy"}
    assert all(new in SCORES and old not in SCORES for old, new in RENAMED.items())
    assert not hasattr(metrics, "expert_constancy")


def test_docs_scores_md_is_the_generated_text():
    """docs/scores.md is generated from the registry (python -m moe.scoring.score_docs --write docs/scores.md):
    the committed file must equal the generated text, so that the two never drift apart."""
    committed = (ROOT / DOCS).read_text(encoding="utf-8")
    assert committed == score_docs.markdown(), "docs/scores.md is stale: run python -m moe.scoring.score_docs --write docs/scores.md"


def test_the_docs_define_every_score_with_every_field():
    text = score_docs.markdown()
    for name in SCORES:
        s = SCORES.get(name)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        for field in (s.definition, s.formula, s.range, s.source):
            assert score_docs.cell(field) in row, (name, field)
        assert ("yes" if s.ours else "no") in row.split("|")[-2]
    for words in ("99%", "collapsed", "near chance", "majority", "ours", "(r - b) / (max(acc, r) - b)"):
        assert words in text, words


def test_score_docs_cli_prints_and_writes(tmp_path, capsys):
    assert score_docs.main([]) == 0
    assert capsys.readouterr().out == score_docs.markdown()
    out = tmp_path / "scores.md"
    assert score_docs.main(["--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == score_docs.markdown()
    assert score_docs.main(["--check", str(out)]) == 0
    out.write_text("stale\n", encoding="utf-8")
    assert score_docs.main(["--check", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


@pytest.mark.parametrize("flags,reason", [
    ({"collapsed": 1.0, "near_chance": 0.0}, "collapsed"),
    ({"collapsed": 1.0, "near_chance": 1.0}, "collapsed"),  # collapse is named first
    ({"collapsed": 0.0, "near_chance": 1.0}, "near chance"),
    ({"collapsed": 0.0, "near_chance": 0.0}, None),
    ({"collapsed": None, "near_chance": None}, "no samples kept"),  # a record's JSON null
    ({"collapsed": math.nan, "near_chance": math.nan}, "no samples kept"),
    ({"cheating_index": 0.3}, None),  # a record from before the flags
])
def test_cheating_undefined_reads_the_flags(flags, reason):
    assert cheating_undefined(flags) == reason


def test_every_score_has_a_numeric_domain_read_from_its_range():
    from moe.scoring.scores import parse_domain
    assert parse_domain("[0, 1], or NaN") == (0, 1) and parse_domain("[0, inf)") == (0, math.inf)
    assert parse_domain("[0, log2 min(C, E)] bits") == (0, math.inf) and parse_domain("{1, ..., epochs}; x") == (1, math.inf)
    assert parse_domain("[about 0, 1]") == (-math.inf, 1) and parse_domain("any") == (-math.inf, math.inf)
    for name in SCORES.in_order():
        lo, hi = SCORES.get(name).domain
        assert lo < hi, name
    shares = ("accuracy", "nmi", "purity", "dead_experts", "busiest_share", "cheating_index", "router_only_accuracy")
    assert all(SCORES.get(n).domain == (0, 1) for n in shares)
    assert SCORES.get("mi_bits").domain == (0, math.inf) and SCORES.get("causal_agreement").domain == (-1, 1)
