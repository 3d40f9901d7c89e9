"""The per-token scores on hand-built routings, the hash control near 0, the trace format's round trip, and a short
language-model run on small text that writes a trace and beats the unigram model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from moe.scoring import token_scores as ts
from moe.records import trace as tr


def make_trace(domain, tokens, experts_per_layer, n_experts, weights=None, logits=False) -> tr.Trace:
    domain, tokens = np.asarray(domain, np.int32), np.asarray(tokens, np.int32)
    layers = []
    for ex in experts_per_layer:
        ex = np.asarray(ex, np.int32).reshape(len(domain), -1)
        w = np.ones(ex.shape, np.float32) / ex.shape[1] if weights is None else weights
        layers.append(tr.LayerRouting(ex, w, np.zeros((len(domain), n_experts), np.float32) if logits else None))
    n_dom = int(domain.max()) + 1
    return tr.Trace(tokens, np.zeros(len(domain), np.int32), domain, np.arange(len(domain), dtype=np.int32) // 4, layers,
                    [f"block {i}" for i in range(len(layers))], [n_experts] * len(layers),
                    [f"d{i}" for i in range(n_dom)], ["doc"])


def test_domain_specialisation_hand_built():
    from sklearn.metrics import normalized_mutual_info_score  # (here: collecting the file imports no scikit-learn)

    # 2 domains, 4 experts, top-1: domain 0 always on expert 0; domain 1 half on 1, half on 2 (and all experts used)
    domain = [0] * 4 + [1] * 4
    experts = [0, 0, 0, 0, 1, 2, 1, 3]
    t = make_trace(domain, range(8), [experts], 4)
    share = ts.domain_share(t, 0)
    np.testing.assert_allclose(share, [[1, 0, 0, 0], [0, 0.5, 0.25, 0.25]])
    # top shares 1 and 0.5: m = 0.75, against the shuffled routing's m0
    member = ts.membership(t, 0)
    m0 = ts._top_domain_share(t.domain, member[np.random.default_rng(ts.PERMUTATION_SEED).permutation(8)], 2)
    assert ts._top_domain_share(t.domain, member, 2) == pytest.approx(0.75) and m0 < 0.75
    assert ts.domain_specialisation(t, 0) == pytest.approx((0.75 - m0) / (1 - m0))
    assert ts.domain_nmi(t, 0) == pytest.approx(normalized_mutual_info_score(domain, experts))


def test_top2_shares_and_coactivation():
    # top-2 of 4 experts: pairs (0, 1) three times, (2, 3) once
    experts = [[0, 1], [1, 0], [0, 1], [2, 3]]
    t = make_trace([0, 0, 1, 1], [5, 5, 5, 6], [experts], 4)
    np.testing.assert_allclose(ts.domain_share(t, 0), [[1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]])
    c = ts.coactivation_matrix(t, 0)
    assert c[0, 1] == 1 and c[2, 3] == 1 and c[0, 2] == 0 and c[0, 0] == 0
    assert ts.coactivation(t, 0) == pytest.approx(1.0)


def test_vocabulary_specialisation_and_load():
    tokens = np.repeat([1, 2], 20)
    experts = np.where(tokens == 1, 0, np.array([1, 2] * 20))  # token 1 always expert 0; token 2 split over 1, 2
    t = make_trace(np.zeros(40), tokens, [experts], 4)
    # raw: token 1's top share 1, token 2's 0.5, equal weights: 0.75; against the shuffled baseline v0
    member = ts.membership(t, 0)
    assert ts._top_token_share(tokens, member, 10) == pytest.approx(0.75)
    v0 = ts._top_token_share(tokens, member[np.random.default_rng(ts.PERMUTATION_SEED).permutation(40)], 10)
    assert 0.5 <= v0 < 0.75
    assert ts.vocabulary_specialisation(t, 0) == pytest.approx((0.75 - v0) / (1 - v0))
    n = ts.load(t, 0)
    np.testing.assert_allclose(n, [20, 10, 10, 0])
    assert ts.load_maxvio(t, 0) == pytest.approx((20 - 10) / 10)
    assert ts.load_cv(t, 0) == pytest.approx(np.std(n) / np.mean(n))
    assert ts.dead_experts_count(t, 0) == 1
    assert math.isnan(ts.vocabulary_specialisation(t, 0, min_occurrences=21))


def test_collapsed_layer_is_undefined_not_specialised():
    t = make_trace([0, 0, 1, 1], [1, 2, 3, 4], [[0, 0, 0, 0]], 4)
    for name in ts.SPECIALISATION_SCORES:
        assert math.isnan(ts.LAYER_SCORES[name](t, 0)), name


def test_dense_router_is_analysed_at_top1():
    experts = [[0, 1, 2], [1, 0, 2], [0, 2, 1], [2, 1, 0]]  # k = E = 3
    t = make_trace([0, 0, 1, 1], [1, 1, 2, 2], [experts], 3)
    assert ts.analysed_k(t, 0) == 1
    np.testing.assert_allclose(ts.domain_share(t, 0), [[0.5, 0.5, 0], [0.5, 0, 0.5]])


def test_hash_control_scores_near_zero():
    """Routing independent of domain and token (a hash of the hidden state): every specialisation score ~0."""
    rng = np.random.default_rng(1)
    n, E = 200_000, 8
    domain, tokens = rng.integers(0, 5, n), rng.integers(0, 256, n)
    top2 = np.stack([rng.permutation(E)[:2] for _ in range(2000)])[rng.integers(0, 2000, n)]
    for k_experts in (rng.integers(0, E, n), top2):
        t = make_trace(domain, tokens, [k_experts, rng.integers(0, E, n)], E)
        for name in ts.SPECIALISATION_SCORES:
            assert abs(ts.LAYER_SCORES[name](t, 0)) < 0.01, name
        assert ts.cross_layer_nmi(t, 0) < 0.01
    # and a perfectly domain-routed layer scores 1 on domain specialisation and NMI
    t = make_trace(domain, tokens, [domain], 5)
    assert ts.domain_specialisation(t, 0) == pytest.approx(1) and ts.domain_nmi(t, 0) == pytest.approx(1)
    t = make_trace(domain, tokens, [tokens % E], E)  # routed by token id: vocabulary specialisation 1
    assert ts.vocabulary_specialisation(t, 0) == pytest.approx(1)


def test_saturation_hand_built():
    final = np.array([[0, 1], [2, 3], [0, 2]])
    earlier = np.array([[1, 0], [2, 0], [3, 1]])
    assert ts.saturation(earlier, final) == pytest.approx((1 + 0.5 + 0) / 3)
    assert ts.saturation(final, final) == 1
    with pytest.raises(ValueError, match="one shape"):
        ts.saturation(earlier[:2], final)


def test_trace_round_trip_and_bad_files(tmp_path):
    t = make_trace([0, 1, 1, 0], [3, 4, 5, 6], [[0, 1, 2, 3], [1, 1, 0, 0]], 4, logits=True)
    path = tr.write(t, tmp_path / "t.npz")
    back = tr.read(path)
    assert back.meta() == t.meta() and back.layer_names == ["block 0", "block 1"]
    for a, b in zip(back.layers, t.layers):
        np.testing.assert_array_equal(a.experts, b.experts) and np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(back.token_ids, t.token_ids)
    assert ts.layer_scores(back) == ts.layer_scores(t)
    arrays = tr.to_arrays(t)
    with pytest.raises(tr.TraceError, match="missing arrays experts_1"):
        tr.from_arrays({k: v for k, v in arrays.items() if k != "experts_1"})
    bad = dict(arrays, experts_0=np.array([[0], [1], [9], [0]], np.int32), weights_0=np.ones((4, 1), np.float32))
    with pytest.raises(tr.TraceError, match=r"experts_0: ids must lie in \[-1, 4\)"):
        tr.from_arrays(bad)
    (tmp_path / "x.npz").write_text("not a zip")
    with pytest.raises(tr.TraceError, match="not a readable"):
        tr.read(tmp_path / "x.npz")


def test_language_model_columns_for_the_runs_table():
    record = {"token_scores": [{"domain_specialisation": 0.1, "vocabulary_specialisation": 0.5, "domain_nmi": None},
                               {"domain_specialisation": 0.3, "vocabulary_specialisation": 0.4, "domain_nmi": 0.2}],
              "router_saturation": [{"saturation": [0.5, 0.95, 0.8, 1.0]}, {"saturation": [0.5, 0.7, 1.0]}]}
    cols = ts.language_model_columns(record)
    assert cols["domain_specialisation_depth_gain"] == pytest.approx(0.2)
    assert cols["domain_specialisation"] == 0.3 and cols["domain_nmi"] == 0.2  # the last layer's
    assert cols["vocabulary_specialisation_depth_gain"] == pytest.approx(-0.1)
    assert math.isnan(cols["domain_nmi_depth_gain"])
    assert cols["saturated_before_end"] == 0.5  # the first layer reached 0.9 before the end, the second only at it
    assert ts.language_model_columns({"test": {}}) == {}
