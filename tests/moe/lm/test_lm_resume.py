"""Checkpoints of the language model: a run resumed from the state saved after any epoch gives the record of the
run never stopped (every number bitwise, on the CPU), through ``moe.training.loop.run`` as a sweep trial calls it;
states of another config, damaged bytes and another device are refused."""
from __future__ import annotations

import copy

import pytest
import torch

from moe.data.text import kjv_from_lines
from moe.training.checkpoint import StateMismatch, TrainState
from moe.training.loop import evaluate_state, run

from tests.moe.lm.test_lm_train import SMALL
from tests.moe.lm.test_text_data import verse_lines

WHEN = ("timing", "versions", "provenance", "resumed_from_epoch")  # when and where, and whether it resumed
RESUMED = {**SMALL, "epochs": 3, "n_train": 48, "n_test": 16}  # 6 steps an epoch: each case trains 12 epochs in all
CASES = {
    "noisy top-2, load and z losses": {**RESUMED, "noisy_gate": True, "load_loss": 0.1, "z_loss": 0.01},
    "sinkhorn top-1, sgd": {**RESUMED, "router": "sinkhorn", "optimizer": "sgd", "momentum": 0.9},
}


@pytest.fixture(scope="module")
def text():
    return kjv_from_lines(verse_lines(6))


@pytest.fixture(scope="module")
def trained(text):
    """``trained(name)``: (the record of ``CASES[name]`` run to the end, its saved state after each epoch), trained
    once per test process on first use and handed out as copies to the tests that read it."""
    made = {}

    def get(name: str):
        if name not in made:
            states = []
            made[name] = (run(CASES[name], data=text, on_state=states.append), states)
        return copy.deepcopy(made[name])

    return get


def what_was_trained(record: dict, k: int) -> dict:
    """The record without when and where it ran; the seconds of the epochs before k kept (a resumed run keeps the
    saved ones), those of the epochs run again left out."""
    out = {key: v for key, v in record.items() if key not in WHEN}
    out["history"] = [h if i < k else dict(h, epoch_s=None) for i, h in enumerate(record["history"])]
    return out


@pytest.mark.parametrize("name", CASES)
def test_a_language_model_resumed_after_any_epoch_gives_the_uninterrupted_record(text, trained, name):
    cfg = CASES[name]
    full, states = trained(name)
    assert full["status"] == "ok" and full["resumed_from_epoch"] is None and len(states) == cfg["epochs"]
    assert len(full["router_saturation"][0]["steps"]) > 3  # snapshots taken inside the epochs travel with the state
    for k in range(1, cfg["epochs"] + 1):
        stopped = run(cfg, data=text, on_epoch=lambda m, k=k: m["epoch"] == k)  # the first k epochs only
        assert [h["train_loss"] for h in stopped["history"]] == [h["train_loss"] for h in full["history"][:k]]
        resumed = run(cfg, data=text.to_numpy(), state=bytes(states[k - 1]))  # a fresh start: nothing shared but bytes
        assert resumed["resumed_from_epoch"] == k and resumed["status"] == "ok"
        assert [h["epoch_s"] for h in resumed["history"][:k]] == [h["epoch_s"] for h in full["history"][:k]]
        assert what_was_trained(resumed, k) == what_was_trained(full, k), f"resumed after epoch {k}"
        assert resumed["timing"]["train_s"] >= sum(h["epoch_s"] for h in resumed["history"][:k])


def test_a_language_model_state_is_read_with_weights_only_and_checked(text, trained, tmp_path):
    cfg = CASES["noisy top-2, load and z losses"]
    _, states = trained("noisy top-2, load and z losses")
    state = TrainState.from_bytes(states[1])
    assert state.epoch == 2 and len(state.history) == 2 and set(state.rng) == {"batch_order", "torch"}
    assert state.val_sets and all(v.dtype == torch.int16 and v.shape[0] == 2 for v in state.val_sets.values())
    assert run(cfg, data=text, state=state)["resumed_from_epoch"] == 2  # a TrainState works as well as its bytes
    with pytest.raises(StateMismatch, match=r"another config \(experts: 4 in the state, 8 here\)"):
        run({**cfg, "experts": 8}, data=text, state=states[0])
    with pytest.raises(StateMismatch, match="state: cannot read it"):
        run(cfg, data=text, state=states[0][:100])
    with pytest.raises(ValueError, match="not scored by itself"):  # a scheduler's stopped trial: no record from a state
        evaluate_state(cfg, states[0], data=text)
    state.rng["cuda"] = state.rng["torch"]  # as if saved on a GPU
    with pytest.raises(StateMismatch, match="saved on CUDA, this run is on cpu"):
        run(cfg, data=text, state=state)
