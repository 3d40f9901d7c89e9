"""``accuracy_after_<phase>`` (``bench.reproduce.measures.phase_accuracy``) reads the validation accuracy of the
last epoch of each phase: the per-epoch history carries no test score (the test split is scored once, at the
end); a record written before the validation split still gives its per-epoch test accuracy."""
from __future__ import annotations

from bench.reproduce import measures as M


def test_phase_accuracy_reads_the_validation_accuracy_of_each_phase():
    records = [{"bench": {"index": 0}, "history": [{"phase": "joint", "val_accuracy": 0.6},
                                                   {"phase": "joint", "val_accuracy": 0.7},
                                                   {"phase": "experts", "val_accuracy": 0.9}]},
               {"bench": {"index": 1}, "history": [{"phase": "joint", "test_accuracy": 0.4}]},  # an older record
               {"bench": {"index": 2}, "history": [{"phase": "joint", "train_loss": 0.3}]}]  # val_fraction 0
    out = M.phase_accuracy(records).set_index("index")
    assert out.loc[0, "accuracy_after_joint"] == 0.7 and out.loc[0, "accuracy_after_experts"] == 0.9
    assert out.loc[1, "accuracy_after_joint"] == 0.4
    assert out["accuracy_after_joint"].isna().tolist() == [False, False, True]
