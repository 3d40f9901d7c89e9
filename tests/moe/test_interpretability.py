"""Local and global interpretability scores on hand-built cases."""
import math

import pytest

from moe.scoring.interpretability import experts_used, local_fidelity, used_expert_parameters
from moe.scoring.scores import score


def test_local_fidelity_counts_the_samples_whose_routed_expert_alone_gives_the_mixtures_prediction():
    assignment = [0, 1, 1, -1]  # the last sample was dropped
    preds = [2, 0, 1, 1]
    expert_preds = [[2, 0], [1, 0], [1, 2], [1, 1]]  # sample 0: expert 0 says 2 (agrees); 1: expert 1 says 0 (agrees); 2: 2 != 1
    assert local_fidelity(assignment, preds, expert_preds) == pytest.approx(2 / 3)
    assert math.isnan(local_fidelity([-1, -1], [0, 0], [[0], [0]]))


def test_hard_routing_is_locally_faithful_by_construction():
    expert_preds = [[0, 1, 2], [2, 2, 0], [1, 0, 0]]
    assignment = [2, 0, 1]
    preds = [expert_preds[t][e] for t, e in enumerate(assignment)]  # the mixture is the routed expert
    assert local_fidelity(assignment, preds, expert_preds) == 1.0


def test_global_scores_count_the_experts_in_use_and_their_parameters():
    usage = [5, 0, 3, 0, 1]
    assert experts_used(usage) == 3.0
    assert used_expert_parameters(usage, 7850) == 3 * 7850.0
    assert experts_used([0, 0]) == 0.0


def test_score_returns_them_with_their_inputs():
    labels, preds, assignment = [0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0]
    expert_preds = [[0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 0, 0]]  # routed experts say 0, 1, 0, 1: 3 of 4 agree
    s = score(labels, preds, assignment, 2, 3, expert_preds=expert_preds, expert_parameters=10)
    assert s["local_fidelity"] == 0.75 and s["experts_used"] == 2.0 and s["used_expert_parameters"] == 20.0
    assert "used_expert_parameters" not in score(labels, preds, assignment, 2, 3)
    with pytest.raises(ValueError, match="expert_parameters"):
        score(labels, preds, assignment, 2, 3, expert_parameters=-1)
