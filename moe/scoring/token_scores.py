"""The per-token analyses the field runs on mixture-of-experts language models, per MoE layer, read from a routing
trace (``moe.records.trace``) and nothing else, so that a trace from any model is analysed the same way.

Letters: N tokens of the trace, E experts of the layer, k its slots per token (the analysed k, see below), D domains,
V token ids. S(t) the set of experts token t is routed to (its valid slots among the first k), a(t) its top-1 expert.
N_d tokens of domain d, N_{d,e} those of them with e in S(t); N_v occurrences of token id v, N_{v,e} those with e in
S(t); n_e = sum_t [e in S(t)] the load of expert e.

The analysed k: the trace's slots per token, except for a dense router (k = E: every expert in every slot), where a
share of tokens 'routed to' an expert is 1 for all and says nothing; its top-1 (k = 1) is analysed instead.

Scores (each in the score registry, ``moe.scores``, with its formula and source; definitions in docs/scores.md):
``domain_specialisation``, ``vocabulary_specialisation`` (OLMoE, Muennighoff et al. 2024, arXiv 2409.02060, sec. 5),
``domain_nmi``, ``coactivation``, ``cross_layer_nmi``, ``load_maxvio`` (arXiv 2408.15664), ``load_cv``,
``dead_experts_count``, and ``router_saturation`` (:func:`saturation`, OLMoE sec. 5). A layer whose routing is
degenerate (effective experts exp H(n / sum n) below :data:`DEGENERATE_EXPERTS`: everything on about one expert)
gets NaN for the specialisation scores, which a collapsed router would otherwise max out.
"""
from __future__ import annotations

import math

import numpy as np

from moe.records.trace import Trace

DEGENERATE_EXPERTS = 1.5  # effective experts (exp of the load entropy) below which specialisation is undefined
MIN_OCCURRENCES = 10  # token ids seen fewer times are left out of vocabulary specialisation
PERMUTATION_SEED = 0  # the fixed shuffle of the chance baseline of domain and vocabulary specialisation


def analysed_k(trace: Trace, layer: int) -> int:
    """The k the analyses read: the trace's slots, or 1 for a dense router (k = E)."""
    k, E = trace.top_k(layer), trace.n_experts[layer]
    return 1 if k >= E else k


def membership(trace: Trace, layer: int) -> np.ndarray:
    """bool [N, E]: e in S(t), over the first analysed-k slots (unused slots, -1, count for no expert)."""
    k, E = analysed_k(trace, layer), trace.n_experts[layer]
    ids = trace.layers[layer].experts[:, :k]
    out = np.zeros((len(ids), E), dtype=bool)
    rows, cols = np.nonzero(ids >= 0)
    out[rows, ids[rows, cols]] = True
    return out


def load(trace: Trace, layer: int) -> np.ndarray:
    """[E] n_e: the tokens routed to each expert (among the analysed slots)."""
    return membership(trace, layer).sum(0).astype(np.float64)


def effective_experts(n: np.ndarray) -> float:
    """exp H(n / sum n); NaN without assignments."""
    total = n.sum()
    if total == 0:
        return math.nan
    p = n[n > 0] / total
    return float(math.exp(-(p * np.log(p)).sum()))


def degenerate(trace: Trace, layer: int) -> bool:
    e = effective_experts(load(trace, layer))
    return not (e >= DEGENERATE_EXPERTS)


def domain_share(trace: Trace, layer: int) -> np.ndarray:
    """[D, E] N_{d,e} / N_d: the share of domain d's tokens routed to expert e (OLMoE's domain specialisation);
    NaN rows for domains without tokens. Each row sums to the analysed k (fewer for dropped tokens)."""
    member = membership(trace, layer)
    D = len(trace.domain_names)
    out = np.full((D, member.shape[1]), np.nan)
    for d in range(D):
        mask = trace.domain == d
        if mask.any():
            out[d] = member[mask].mean(0)
    return out


def _beyond_uniform(share: np.ndarray, k: int, E: int) -> np.ndarray:
    """(share - k/E) / (1 - k/E): 0 at the uniform share, 1 when every token goes to the expert."""
    return (share - k / E) / (1 - k / E)


def _top_domain_share(domain: np.ndarray, member: np.ndarray, n_domains: int) -> float:
    """Mean over the domains present of max_e N_{d,e} / N_d (NaN: no domain)."""
    tops = [member[domain == d].mean(0).max() for d in range(n_domains) if (domain == d).any()]
    return float(np.mean(tops)) if tops else math.nan


def domain_specialisation(trace: Trace, layer: int) -> float:
    """(m - m0) / (1 - m0), m = the mean over the domains present of max_e N_{d,e} / N_d (the largest of OLMoE's
    domain shares, :func:`domain_share`), m0 the same after shuffling which token got which routing (a seeded
    permutation: the same loads, routing independent of the domain). OLMoE reads the shares against the uniform k/E;
    an unbalanced router exceeds k/E in every domain without any specialisation, and a collapsed one reaches 1, so
    the baseline here is the shuffled routing. NaN for a degenerate layer or E = k."""
    k, E = analysed_k(trace, layer), trace.n_experts[layer]
    if degenerate(trace, layer) or k >= E:
        return math.nan
    member, domain, D = membership(trace, layer), trace.domain, len(trace.domain_names)
    m = _top_domain_share(domain, member, D)
    m0 = _top_domain_share(domain, member[np.random.default_rng(PERMUTATION_SEED).permutation(len(member))], D)
    return float((m - m0) / (1 - m0)) if m0 < 1 else math.nan


def _top_token_share(ids: np.ndarray, member: np.ndarray, min_occurrences: int) -> float:
    """Occurrence-weighted mean over token ids seen >= min_occurrences times of max_e N_{v,e} / N_v (NaN: none)."""
    vocab = int(ids.max()) + 1 if len(ids) else 0
    counts = np.zeros((vocab, member.shape[1]))
    np.add.at(counts, ids, member.astype(np.float64))
    occurrences = np.bincount(ids, minlength=vocab).astype(np.float64)
    keep = occurrences >= min_occurrences
    if not keep.any():
        return math.nan
    return float(np.average(counts[keep].max(1) / occurrences[keep], weights=occurrences[keep]))




def vocabulary_specialisation(trace: Trace, layer: int, min_occurrences: int = MIN_OCCURRENCES) -> float:
    """(v - v0) / (1 - v0), v = the occurrence-weighted mean over token ids seen >= min_occurrences times of
    max_e N_{v,e} / N_v (OLMoE's vocabulary specialisation, per token id), v0 the same after shuffling which token
    got which routing (a seeded permutation: routing independent of the token, same loads and counts). Against this
    baseline rather than OLMoE's uniform k/E, because the largest of E shares of a few hundred occurrences exceeds
    k/E by chance alone. NaN for a degenerate layer, E = k, or no token id frequent enough."""
    k, E = analysed_k(trace, layer), trace.n_experts[layer]
    if degenerate(trace, layer) or k >= E:
        return math.nan
    member = membership(trace, layer)
    ids = trace.token_ids.astype(np.int64)
    v = _top_token_share(ids, member, min_occurrences)
    shuffled = member[np.random.default_rng(PERMUTATION_SEED).permutation(len(member))]
    v0 = _top_token_share(ids, shuffled, min_occurrences)
    return float((v - v0) / (1 - v0)) if v0 < 1 else math.nan


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information I(a; b) / ((H(a) + H(b)) / 2) of two label arrays (scikit-learn's default
    arithmetic normalisation); NaN when both have one value only, 0 when one has."""
    if len(a) == 0:
        return math.nan
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    p = table / table.sum()
    pa, pb = p.sum(1), p.sum(0)
    h = lambda q: float(-(q[q > 0] * np.log(q[q > 0])).sum())  # noqa: E731
    ha, hb = h(pa), h(pb)
    if ha == 0 and hb == 0:
        return math.nan
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    return max(0.0, mi / ((ha + hb) / 2))


def domain_nmi(trace: Trace, layer: int) -> float:
    """NMI(domain; top-1 expert) over the tokens with a known domain that an expert took; NaN for a degenerate layer."""
    top = trace.layers[layer].top1()
    keep = (trace.domain >= 0) & (top >= 0)
    if degenerate(trace, layer):
        return math.nan
    return nmi(trace.domain[keep], top[keep])


def coactivation_matrix(trace: Trace, layer: int) -> np.ndarray:
    """[E, E] C[i, j] = #{t: i, j in S(t)} / #{t: i in S(t)} (OLMoE's co-activation), diagonal 0; NaN rows for
    experts that take no token."""
    member = membership(trace, layer).astype(np.float64)
    both = member.T @ member
    n = np.diag(both).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = both / n[:, None]
    np.fill_diagonal(out, 0.0)
    out[n == 0] = np.nan
    return out


def coactivation(trace: Trace, layer: int) -> float:
    """Mean over the experts in use of max_{j != i} C[i, j]: how strongly each expert is tied to one partner;
    NaN for k = 1 (no pairs)."""
    if analysed_k(trace, layer) < 2:
        return math.nan
    c = coactivation_matrix(trace, layer)
    rows = c[~np.isnan(c).any(1)]
    return float(rows.max(1).mean()) if len(rows) else math.nan


def cross_layer_matrix(trace: Trace, layer: int) -> np.ndarray:
    """[E_l, E_{l+1}] P(a_{l+1}(t) = j | a_l(t) = i): the top-1 experts of adjacent MoE layers (NaN rows: unused)."""
    a, b = trace.layers[layer].top1(), trace.layers[layer + 1].top1()
    keep = (a >= 0) & (b >= 0)
    table = np.zeros((trace.n_experts[layer], trace.n_experts[layer + 1]))
    np.add.at(table, (a[keep], b[keep]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return table / table.sum(1, keepdims=True)


def cross_layer_nmi(trace: Trace, layer: int) -> float:
    """NMI(a_l; a_{l+1}) of the top-1 experts of this MoE layer and the next; NaN for the last."""
    if layer + 1 >= len(trace.layers):
        return math.nan
    a, b = trace.layers[layer].top1(), trace.layers[layer + 1].top1()
    keep = (a >= 0) & (b >= 0)
    return nmi(a[keep], b[keep])


def load_maxvio(trace: Trace, layer: int) -> float:
    """MaxVio = (max_e n_e - mean_e n_e) / mean_e n_e (Wang et al. 2024, arXiv 2408.15664); NaN without load."""
    n = load(trace, layer)
    return float((n.max() - n.mean()) / n.mean()) if n.sum() > 0 else math.nan


def load_cv(trace: Trace, layer: int) -> float:
    """Coefficient of variation std_e(n_e) / mean_e(n_e) (population standard deviation); NaN without load."""
    n = load(trace, layer)
    return float(n.std() / n.mean()) if n.sum() > 0 else math.nan


def dead_experts_count(trace: Trace, layer: int) -> float:
    """Experts that take no token of the trace."""
    return float((load(trace, layer) == 0).sum())


def saturation(earlier: np.ndarray, final: np.ndarray) -> float:
    """Router saturation (OLMoE sec. 5): (1/N) sum_t |S_earlier(t) ∩ S_final(t)| / k, over the same tokens; the
    experts arrays are [N, k] (-1 unused slots count for no expert)."""
    if earlier.shape != final.shape or earlier.size == 0:
        raise ValueError(f"saturation: expected two [N, k] expert arrays of one shape, got {earlier.shape} and {final.shape}")
    k = final.shape[1]
    hits = ((earlier[:, :, None] == final[:, None, :]) & (earlier[:, :, None] >= 0)).any(2).sum(1)
    return float(hits.mean() / k)


LAYER_SCORES = {
    "domain_specialisation": domain_specialisation,
    "vocabulary_specialisation": vocabulary_specialisation,
    "domain_nmi": domain_nmi,
    "coactivation": coactivation,
    "cross_layer_nmi": cross_layer_nmi,
    "load_maxvio": load_maxvio,
    "load_cv": load_cv,
    "dead_experts_count": dead_experts_count,
}
SPECIALISATION_SCORES = ("domain_specialisation", "vocabulary_specialisation", "domain_nmi")


def layer_scores(trace: Trace) -> list[dict]:
    """Per MoE layer: its name, the scalar scores of :data:`LAYER_SCORES` (NaN -> None), the domain x expert share
    matrix, the co-activation matrix and the matrix to the next layer (lists, NaN -> None)."""
    out = []
    for i, name in enumerate(trace.layer_names):
        entry = {"layer": name, "n_experts": trace.n_experts[i], "k": analysed_k(trace, i),
                 "effective_experts": _clean(effective_experts(load(trace, i))),
                 **{s: _clean(f(trace, i)) for s, f in LAYER_SCORES.items()},
                 "load": load(trace, i).tolist(), "domain_share": clean_matrix(domain_share(trace, i)),
                 "coactivation_matrix": clean_matrix(coactivation_matrix(trace, i))}
        if i + 1 < len(trace.layers):
            entry["next_layer_matrix"] = clean_matrix(cross_layer_matrix(trace, i))
        out.append(entry)
    return out


def _clean(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def clean_matrix(m: np.ndarray) -> list:
    return [[_clean(float(v)) for v in row] for row in m]


SATURATED = 0.9  # router saturation that counts as settled (OLMoE's curves pass it well before the end)


def language_model_columns(record: dict) -> dict[str, float]:
    """Columns a language model's record adds to a sweep's runs table (none for other records): the specialisation
    scores of the last MoE layer on the validation split under their own names (the sweep tables' columns),
    ``<score>_depth_gain`` = the score of the last MoE layer minus the first's (specialisation scores), and
    ``saturated_before_end`` = the share of MoE layers whose router saturation reached :data:`SATURATED` at a point
    of training before the last (1: every layer settled before training ended)."""
    layers, saturation = record.get("token_scores"), record.get("router_saturation")
    if not layers:
        return {}
    out: dict[str, float] = {}
    for name in SPECIALISATION_SCORES:
        first, last = layers[0].get(name), layers[-1].get(name)
        out[name] = math.nan if last is None else last  # the tables' column: the last MoE layer's, on validation
        out[f"{name}_depth_gain"] = math.nan if first is None or last is None or len(layers) < 2 else last - first
    if saturation:
        reached = [any(v >= SATURATED for v in layer["saturation"][:-1]) for layer in saturation]
        out["saturated_before_end"] = float(np.mean(reached))
    return out



def table_columns(n_layers: int) -> set[str]:
    """The runs-table columns a language model with n_layers MoE layers adds: the validation split's per-layer scores
    (``val_<score>_layer<i>``, flattened by ``moe.training.lm_loop``) and :func:`language_model_columns`."""
    per_layer = [*LAYER_SCORES, "causal_domain_increase", "saturation_reached"]
    return ({f"val_{s}_layer{i}" for s in per_layer for i in range(n_layers)}
            | {f"{s}_depth_gain" for s in SPECIALISATION_SCORES} | set(SPECIALISATION_SCORES) | {"saturated_before_end"})
