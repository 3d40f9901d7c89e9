"""The score registry: every score has a direction, needs and a one-line definition, and the tables'
directions, the keys of score() and score() itself are all read from it."""
import pytest
import torch

from moe import metrics
from moe.registry import UnknownNameError
from moe.scores import COMPUTED_ELSEWHERE, DIRECTION_NAMES, DIRECTIONS, NEEDS, SCORE_KEYS, SCORES, Score, _add, score


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
        assert s.definition.strip() and "\n" not in s.definition, name
        assert (s.compute is None) == (s.needs in COMPUTED_ELSEWHERE), name


def test_directions_and_keys_are_read_from_the_registry():
    assert list(DIRECTIONS) == SCORES.in_order()  # the display order is the registration order
    assert all(DIRECTIONS[n] == SCORES.get(n).direction for n in DIRECTIONS)
    keyed = [k for keys in SCORE_KEYS.values() for k in keys]
    assert len(keyed) == len(set(keyed))
    assert set(keyed) == {n for n in SCORES if SCORES.get(n).compute is not None}
    assert set(SCORE_KEYS) == {None, "weights", "grouping", "expert_preds"}


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
        _add("accuracy", "higher", "predictions", "again", lambda i: 0.0)
    with pytest.raises(ValueError, match="bad direction"):
        _add("new_score", "sideways", "predictions", "x", lambda i: 0.0)
    with pytest.raises(ValueError, match="bad direction"):
        _add("new_score", "higher", "two runs", "computed elsewhere, yet given a compute", lambda i: 0.0)
    assert "new_score" not in SCORES
    with pytest.raises(UnknownNameError, match="did you mean 'accuracy'"):
        SCORES.get("acuracy")
