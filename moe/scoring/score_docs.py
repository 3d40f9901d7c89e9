"""``docs/scores.md``, the users' definitions of the scores, generated from the score registry (``moe.scoring.scores``).

``python -m moe.scoring.score_docs`` prints the page; ``--write PATH`` writes it (atomically); ``--check PATH`` exits 1
when the file differs from the generated text. A test compares the committed ``docs/scores.md`` with
:func:`markdown`, so that the page and the registry never drift apart: change a score in ``moe/scoring/scores.py``, then
run ``python -m moe.scoring.score_docs --write docs/scores.md``.
"""
from __future__ import annotations

import sys

from moe.scoring.cheating import MIN_COVERAGE, NEAR_CHANCE
from moe.scoring.metrics import COLLAPSE_SHARE
from moe.records.record import generated_page_main
from moe.scoring.scores import DOCS, NEEDS, RENAMED, SCORES

ARROWS = {"higher": "↑ higher", "lower": "↓ lower", "neutral": "neutral"}
SCORES_NEEDS_WORDS = {
    "predictions": "the labels and the mixture's predictions (always given to `moe.scoring.scores.score`)",
    "allocation": "the top-weight expert of each sample, i.e. the class x expert allocation (always given)",
    "weights": "the routing weights [N, E] (`weights=`)",
    "grouping": "a grouping of the classes, e.g. fashion / digits (`grouping=`)",
    "oracle": "every expert's own prediction for every sample (`expert_preds=`)",
    "modules": "the planted module of every sample, on a dataset with planted modules such as `planted` (`modules=`)",
    "ablation": "the accuracy drops D [E, C] when each expert is removed, `moe.scoring.ablation` (`ablation=`)",
    "loss": "the model's log-probabilities: the test loss, added to the record by `moe.training.evaluate`",
    "two runs": "the assignments of two seeds of one configuration (`moe.scoring.metrics.stability`, by the sweep tables)",
    "expert size": "the readable parameters P of one expert (`expert_parameters=`; `moe.training.evaluate` passes "
                   "`ExpertBank.readable_parameters()`)",
    "epochs": "the validation split's top-k experts after every epoch of training (`moe.scoring.saturation`, by `moe.training.loop`; "
              "the record's `routing_dynamics`)",
    "fit allocation": "the validation split's class x expert allocation F [C, E] (`fit_allocation=`; `moe.training.evaluate` "
                      "passes it, and the record keeps it as `validation_allocation`)",
    "trace": "a routing trace of a mixture-of-experts language model (`moe.records.trace`), per MoE layer "
             "(`moe.scoring.token_scores`; the record's `token_scores` and `router_saturation`)",
    "history": "the record's per-epoch history, each epoch marked with its training phase (`moe.regimes`; runs.csv's "
               "columns, by `bench.table.runs`)",
    "removal": "the language model evaluated with each expert of each layer removed in turn (`moe.training.lm_loop`; "
               "the record's `causal`)",
}

LETTERS = """\
Letters: N test samples (the kept ones, for the scores of the allocation), C classes, E experts.
y(x) the true class of sample x, yhat(x) the mixture's prediction, yhat_e(x) expert e's own prediction,
a(x) the expert with the largest routing weight (-1: dropped, no expert took the sample), w_e(x) the routing
weights. A [C, E] the allocation: A[c, e] counts the class-c samples assigned to expert e; n_e = sum_c A[c, e].
acc the mixture's accuracy on the kept samples; b = max_c sum_e A[c, e] / N the majority baseline (the
accuracy of always predicting the most frequent class; 1/C on a balanced split); r the router-only accuracy.
H entropy (natural logarithm unless in bits); [P] is 1 when P holds, else 0. D [E, C] the ablation matrix:
D[e, c] = acc_c(full model) - acc_c(without expert e), its samples sent to the router's next choice
(`moe.scoring.ablation`); n_c the test samples of class c. F [C, E] the validation split's allocation; m_e =
argmax_c F[c, e] the majority class of expert e learned on it; S the experts F reaches (sum_c F[c, e] > 0),
N_S their test samples; p_c = sum_e A[c, e] / N the test class shares."""

CHEATING = f"""\
## The cheating index, collapse and near chance

A mixture 'cheats' when its router solves the task and each expert is a constant for one class, so that
the interpretable experts explain nothing (Elazar & Taylor 2022, *Implicit Mixture of Interpretable
Experts*; only the abstract was available to us, so every formula below is **this project's
operationalisation**).

- **Router-only accuracy** r = (1/N) sum_e max_c A[c, e]: the accuracy of the router alone, predicting
  for each sample the majority class of its expert (= purity).
- **Cheating index** = (r - b) / (max(acc, r) - b): the share of the best above-baseline accuracy that the
  router alone achieves; 1 = the router alone does as well as the mixture or better, 0 = the routing carries
  no class information. It lies in [0, 1] by construction, not by a clip: r >= b always (each expert's
  majority count is at least its count of the overall most frequent class, and those counts sum to b N),
  and max(acc, r) >= r. The reference max(acc, r) is the better of the two classifiers the model holds: the
  router alone and the whole mixture. The baseline b is the majority share rather than 1/C (the same on a
  balanced split) so that the lower bound is exact and a class imbalance is not read as routing. (The first
  version, (r - 1/C) / (acc - 1/C), exceeded 1 when the router alone beat the mixture and exploded as the
  accuracy neared chance: 1.76 and 9.82 were seen.) On a finite test split r is biased upwards by roughly
  sqrt(E / N), each expert's majority class being picked from its own samples, so a hash router scores a
  little above 0.
  **This bias is large at large E** (hand-built hash routers on 2,000 test samples: 0.04 at E = 10, 0.10 at
  64, 0.22 at 256, 0.51 at 1,024, 1.00 at 4,096), so the cheating index cannot compare expert counts: read
  the cheating score instead.
- **Cheating score** = (r_cf - r_0) / (max(acc, r_cf) - r_0), the index cross-fitted and corrected for
  chance, so that it means the same at every E. The router-only classifier is *learned* on the validation
  split (each expert predicts m_e, its majority class there) and *scored* on the test split:
  r_cf = sum_(e in S) A[m_e, e] / N_S. Its chance level is the exact expectation of r_cf when the test
  labels are permuted under the same allocation, r_0 = sum_(e in S) n_e p_(m_e) / N_S (as adjusted mutual
  information subtracts the expected mutual information; Vinh et al. 2010). A router blind to the class
  (hash, random) scores about 0 at every E (its expectation is exactly 0), a router whose experts each own
  one class 1, experts that each own a pair of classes (1/2 - 1/C) / (1 - 1/C) = 0.44 under a perfect
  mixture (C = 10). It is at most 1 and can be slightly negative by chance. Its bias: none from picking the
  majority classes; its noise grows as fewer test samples are covered. Only test samples on experts that the
  validation split reached are read (`cheating_coverage` = N_S / N; with 800 validation samples and a
  balanced router that is about 54% at E = 1,024 and 18% at E = 4,096); below {MIN_COVERAGE} coverage the
  score is NaN ("fit split reaches too few experts"), as for a collapsed run or one near chance
  (`moe.scoring.scores.cheating_score_undefined`). `python -m moe.training.controls --allocations` prints the controls
  (cheater, hash, random, class pairs) at E = 10, 64, 256, 1,024 and 4,096.
- **Constant experts** (the functional check): `constant_experts_accuracy` is the accuracy left when every
  expert is replaced by a constant for m_e (an expert the validation split never reached: the validation
  split's most frequent class), the trained router's weights kept: predict argmax_c sum_(e: m_e = c) w_e(x).
  `constant_experts_drop` = acc - constant_experts_accuracy: about 0 when the experts add nothing to the
  router (cheating). Its bias: at large E many experts get the fallback class, which lowers it.
- **Collapsed**: the busiest expert takes at least {COLLAPSE_SHARE:.0%} of the kept samples
  (busiest_share >= {COLLAPSE_SHARE}). The threshold is the seed code's own reading of its runs ('>= 99% of
  test samples to one expert'). With E = 1 every run is collapsed.
- **Near chance**: acc - b <= {NEAR_CHANCE} (1 - b), i.e. the mixture closes at most {NEAR_CHANCE:.0%} of the
  gap from the majority baseline to a perfect score (Cohen's kappa against that baseline at most
  {NEAR_CHANCE}); relative, so that one margin fits 2 classes and 12.
- The cheating index is **NaN** for a collapsed run (it would score 0, 'does not cheat', having learned
  no routing at all), for an accuracy near chance (the ratio is noise there) and when no sample was kept.
  The reason is read from the `collapsed` and `near_chance` scores (`moe.scoring.scores.cheating_undefined`:
  "collapsed", "near chance", "no samples kept"). A NaN cheating index is not a low one: leave such runs
  out of means and Pareto sets of the cheating index, and show how many there were beside them.
- **Expert prediction entropy**: mean over the used experts of H(yhat_e on expert e's samples) / log C;
  0 = every expert is a constant (the other half of cheating), 1 = each expert predicts all classes
  equally often. It was called `expert_constancy`, a name that read backwards (high meant *not* constant).
  Its bias: with few samples per expert each expert's predictions on its own samples have low entropy
  whatever the expert is (one sample: entropy 0), so it falls as E grows. **Expert prediction entropy on all
  inputs** (`expert_prediction_entropy_all`) reads each expert's predictions on every test sample instead:
  a constant expert scores 0 at any E, an expert that classifies scores about H(classes) / log C.

Controls (`python -m moe.training.controls --dataset gm6`) score, through this same code, a mixture built to cheat
(the router trained as the classifier, E = C, each expert a frozen constant for its class), a hash router
(a fixed assignment that knows nothing of the class) and a collapsed router, so that what the scores give
on each can be read before any verdict about cheating."""


def cell(text: str) -> str:
    """A Markdown table cell: pipes escaped."""
    return text.replace("|", "\\|")


def markdown() -> str:
    """The whole page, from the registry (its order is the display order)."""
    rows = ["| score | direction | definition | formula | range | source | ours |", "|---|---|---|---|---|---|---|"]
    for name in SCORES.in_order():
        s = SCORES.get(name)
        cells = [f"`{name}`", ARROWS[s.direction], s.definition, s.formula, s.range, s.source, "yes" if s.ours else "no"]
        rows.append("| " + " | ".join(cell(c) if i else c for i, c in enumerate(cells)) + " |")
    needs = [f"- {k}: {SCORES_NEEDS_WORDS[k]}" for k in NEEDS]
    renamed = [f"- `{old}` is now `{new}` (same values)." for old, new in RENAMED.items()]
    parts = [
        "# Scores",
        f"Generated from the score registry (`moe/scoring/scores.py`) by `python -m moe.scoring.score_docs --write {DOCS}`; do not "
        "edit by hand (a test checks that this file is the generated text).",
        LETTERS,
        "**ours**: *yes* marks this project's own operationalisation of an idea (its formula, threshold or use was "
        "chosen here, not taken from a published source as it is); *no* marks a published or standard formula. "
        "Directions: ↑ higher is better, ↓ lower is better, neutral: neither in itself (read it beside others).",
        "\n".join(rows),
        CHEATING,
        "## What each score needs\n\n" + "\n".join(needs),
        "## Renamed scores\n\n" + "\n".join(renamed),
    ]
    return "\n\n".join(parts) + "\n"



def main(argv: list[str] | None = None) -> int:
    return generated_page_main("moe.scoring.score_docs", DOCS, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
