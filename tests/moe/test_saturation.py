"""Router saturation (moe.scoring.saturation): hand-built sets with known answers, the first epoch at 0.9, and the
curve a training run writes into its record, against a reference computed another way."""
import io

import pytest
import torch

from moe.training.checkpoint import TrainState, load_model_state
from moe.data import load_dataset
from moe.training.evaluate import eval_batch_size, predict
from moe.scoring.saturation import first_epoch_at, routing_dynamics, saturation, saturation_k, top_experts
from moe.training.loop import initial_model, run, run_data
from moe.validate import from_dict

T = lambda rows: torch.tensor(rows, dtype=torch.int16)  # noqa: E731
SMALL = {"dataset": "gm6", "n_train": 240, "n_test": 120, "epochs": 4, "experts": 3}


def test_k1_identical_is_one_and_all_changed_is_zero():
    a = T([[0], [1], [2], [1]])
    assert saturation(a, a) == 1.0
    assert saturation(a, T([[1], [2], [0], [0]])) == 0.0
    assert saturation(a, T([[0], [2], [2], [0]])) == 0.5  # samples 0 and 2 kept their expert


def test_k2_half_overlap_is_one_half_and_order_in_a_row_does_not_matter():
    assert saturation(T([[0, 1], [2, 3]]), T([[1, 2], [3, 0]])) == 0.5  # one of two shared in each row
    assert saturation(T([[0, 1], [2, 3]]), T([[1, 0], [3, 2]])) == 1.0  # the same sets, other order


def test_a_mixed_case_by_hand():
    # k = 3, four samples: shared 3, 2, 0, 1 of 3 -> (1 + 2/3 + 0 + 1/3) / 4 = 0.5
    at_t = T([[0, 1, 2], [0, 1, 2], [0, 1, 2], [3, 4, 5]])
    final = T([[2, 0, 1], [1, 0, 5], [3, 4, 5], [5, 0, 1]])
    assert saturation(at_t, final) == pytest.approx(0.5, abs=1e-15)


def test_unused_slots_and_dropped_samples():
    # sample 0: {0} vs {0, 1}: 1 / max(1, 2); sample 1 dropped both times: unchanged; sample 2 dropped at the end
    at_t, final = T([[0, -1], [-1, -1], [2, -1]]), T([[0, 1], [-1, -1], [-1, -1]])
    assert saturation(at_t, final) == pytest.approx((0.5 + 1 + 0) / 3, abs=1e-15)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="one shape"):
        saturation(T([[0]]), T([[0, 1]]))
    with pytest.raises(ValueError, match="integer"):
        saturation(torch.zeros(2, 1), T([[0], [1]]))
    with pytest.raises(ValueError, match="no samples"):
        saturation(T([[0]])[:0], T([[0]])[:0])


def test_top_experts_cuts_or_pads_the_plan_slots():
    ids = torch.tensor([[2, 0, 1], [1, -1, -1]])
    assert top_experts(ids, 2).tolist() == [[2, 0], [1, -1]] and top_experts(ids, 2).dtype == torch.int16
    assert top_experts(ids[:, :1], 3).tolist() == [[2, -1, -1], [1, -1, -1]]
    assert saturation_k("topk", 3) == 3 and saturation_k("softmax", 3) == 1 and saturation_k("expert_choice", 2) == 1


def test_the_first_epoch_at_0_9_on_a_hand_made_curve():
    epochs = [1, 2, 3, 4, 5]
    assert first_epoch_at([0.5, 0.92, 0.85, 0.95, 1.0], epochs) == 2  # the first to pass, though it dips after
    assert first_epoch_at([0.5, 0.9, 1.0, 1.0, 1.0], epochs) == 2  # 0.9 itself passes
    assert first_epoch_at([None, 0.89, 0.95, 1.0, 1.0], epochs) == 3
    assert first_epoch_at([0.1, 0.2], [1, 2]) is None and first_epoch_at([], []) is None


def test_routing_dynamics_against_the_last_epoch_with_sets():
    sets = {1: T([[0], [0], [1], [1]]), 2: T([[0], [1], [1], [1]]), 3: T([[0], [1], [1], [0]])}
    d = routing_dynamics([1, 2, 3, 4], sets, 1)  # epoch 4 had no validation pass (a diverged epoch)
    assert d["reference_epoch"] == 3 and d["router_saturation"] == [0.5, 0.75, 1.0, None]
    assert d["saturation_epoch"] == 3 and d["k"] == 1 and d["split"] == "validation" and d["threshold"] == 0.9
    assert routing_dynamics([1, 2], {}, 1) is None  # no validation split


# ---- in a training run ----

@pytest.fixture(scope="module")
def gm6():
    return load_dataset("gm6")


def reference_curve(cfg, states, gm6):
    """k = 1: the share of validation samples whose top-weight expert (moe.training.evaluate.predict's assignment, its own
    forward pass) after each saved epoch equals the last one's."""
    config = from_dict(cfg)
    data = run_data(config, gm6)
    assignments = []
    for state in states:
        model = initial_model(config, data, data.x_train)
        load_model_state(TrainState.from_bytes(state), model)
        assignments.append(predict(model, data.x_val, eval_batch_size(config, model))["assignment"])
    return [float((a == assignments[-1]).double().mean()) for a in assignments]


@pytest.mark.parametrize("router", ["softmax", "expert_choice"])
def test_a_run_records_the_curve_of_every_epoch_ending_at_one(gm6, router):
    cfg = {**SMALL, "router": router, "lr": 0.05}
    states = []
    rec = run(cfg, data=gm6, on_state=states.append)
    d = rec["routing_dynamics"]
    curve = d["router_saturation"]
    assert len(curve) == len(rec["history"]) == 4 and curve[-1] == 1.0 and d["reference_epoch"] == 4
    assert all(0.0 <= s <= 1.0 for s in curve) and d["k"] == 1
    assert d["saturation_epoch"] == next(e for e, s in zip([1, 2, 3, 4], curve) if s >= 0.9)
    assert curve == pytest.approx(reference_curve(cfg, states, gm6), abs=1e-12)
    assert "router_saturation" not in rec["history"][0]  # the history stays what on_epoch saw


def test_top_k_two_uses_both_experts_of_each_sample(gm6):
    rec = run({**SMALL, "router": "topk", "top_k": 2, "experts": 4, "lr": 0.05}, data=gm6)
    d = rec["routing_dynamics"]
    assert d["k"] == 2 and d["router_saturation"][-1] == 1.0
    assert all(round(s * 2 * 24) == s * 2 * 24 for s in d["router_saturation"])  # multiples of 1/(k N_val)


def test_a_resumed_run_gives_the_uninterrupted_dynamics_and_an_old_state_still_loads(gm6):
    cfg = {**SMALL, "router": "softmax", "lr": 0.05}
    states = []
    full = run(cfg, data=gm6, on_state=states.append)
    resumed = run(cfg, data=gm6, state=bytes(states[1]))
    assert resumed["routing_dynamics"] == full["routing_dynamics"]
    saved = torch.load(io.BytesIO(states[1]), weights_only=True)
    assert set(saved["val_sets"]) == {1, 2} and saved["val_sets"][1].shape == (24, 1)
    del saved["val_sets"]  # a state written before the sets existed
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    old = run(cfg, data=gm6, state=buffer.getvalue())
    assert [h["val_loss"] for h in old["history"]] == [h["val_loss"] for h in full["history"]]
    assert old["routing_dynamics"]["router_saturation"] == [None, None] + full["routing_dynamics"]["router_saturation"][2:]


def test_no_validation_split_no_dynamics(gm6):
    assert run({**SMALL, "epochs": 1, "val_fraction": 0}, data=gm6)["routing_dynamics"] is None


def test_saturation_is_undefined_where_the_routing_has_no_choice():
    """k >= E: every sample always goes to every expert; the curve would be 1 from epoch 1 whatever was learned."""
    sets = {1: T([[0], [0]]), 2: T([[0], [0]])}
    one = routing_dynamics([1, 2], sets, 1, n_experts=1)
    assert one["saturation_epoch"] is None and one["router_saturation"] is None and "k = 1 >= E = 1" in one["undefined"]
    assert routing_dynamics([1, 2], {1: T([[0, 1]]), 2: T([[1, 0]])}, 2, n_experts=2)["saturation_epoch"] is None
    two = routing_dynamics([1, 2], sets, 1, n_experts=2)  # a choice exists: defined (here settled at once)
    assert two["saturation_epoch"] == 1 and "undefined" not in two


def test_a_one_expert_run_records_its_saturation_as_undefined(gm6):
    d = run({**SMALL, "experts": 1, "epochs": 2}, data=gm6)["routing_dynamics"]
    assert d["saturation_epoch"] is None and d["router_saturation"] is None and "E = 1" in d["undefined"]
