"""Training regimes: phases, class splits, frozen sides, fresh experts, temperature decay, learning-rate asymmetry."""
import copy
import math

import pytest
import torch

from moe.training import evaluate
from moe.training import loop as train
from moe.config import ConfigError
from moe.data import load_dataset, prepare
from moe.model import build_model
from moe.regimes import SPLITS, phases, resolve_split
from moe.training.epochs import pretrain_epoch
from moe.training.loop import run, temperature_at
from moe.training.optim import build_optimizer
from moe.validate import from_dict
from tests.helpers import config_problem

SMALL = {"dataset": "gm6", "n_train": 120, "n_test": 60, "epochs": 2}


@pytest.fixture(scope="module")
def gm6():
    return load_dataset("gm6")


@pytest.fixture
def snapshots(monkeypatch):
    """Record, at the start of every phase (each build_optimizer call), the model and a copy of its state."""
    seen = []
    original = train.build_optimizer

    def spy(cfg, model, train_gate=True, train_experts=True):
        seen.append({"model": model, "state": copy.deepcopy(model.state_dict()), "gate": train_gate, "experts": train_experts})
        return original(cfg, model, train_gate, train_experts)

    monkeypatch.setattr(train, "build_optimizer", spy)
    return seen


def experts_state(state):
    return {k: v for k, v in state.items() if k.startswith("experts.")}


def router_state(state):
    return {k: v for k, v in state.items() if k.startswith("router.")}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_phases_of_each_regime():
    as_tuples = lambda cfg: [(p.name, p.epochs, p.train_gate, p.train_experts) for p in phases(from_dict(cfg))]  # noqa: E731
    assert as_tuples({"epochs": 3}) == [("joint", 3, True, True)]
    split = {"experts": 3, "class_split": [[0, 1], [2, 3], [4, 5]], "pretrain_epochs": 4, "epochs": 3}
    assert as_tuples({**split, "regime": "pretrain"}) == [("pretrain", 4, False, True), ("joint", 3, True, True)]
    assert as_tuples({**split, "regime": "pretrain", "freeze_experts": True}) == [("pretrain", 4, False, True), ("gate", 3, True, False)]
    assert as_tuples({"regime": "frozen_gate", "epochs": 3, "refit_epochs": 5}) == [("joint", 3, True, True), ("experts", 5, False, True)]
    assert as_tuples({**split, "regime": "pretrain_frozen_gate"}) == [("pretrain", 4, False, True), ("joint", 3, True, True), ("experts", 3, False, True)]


@pytest.mark.parametrize("values,field,text", [
    ({"regime": "pretrain", "experts": 3, "class_split": [[0, 1], [1, 2], [3, 4, 5]]}, "class_split", "more than once"),
    ({"regime": "pretrain", "experts": 3, "class_split": [[0, 1], [3], [4, 5]]}, "class_split", "left out"),
    ({"regime": "pretrain", "experts": 3, "class_split": [[0, 1], [2, 3]]}, "class_split", "one list of classes per expert"),
    ({"regime": "pretrain", "experts": 3, "class_split": "fmnist_mnits"}, "class_split", "did you mean 'fmnist_mnist'"),
    ({"regime": "pretrain", "experts": 4, "class_split": "fmnist_mnist"}, "class_split", "per expert (4), got 6"),
    ({"regime": "pretrain"}, "class_split", "needs a class split"),
    ({"class_split": [[0], [1]]}, "class_split", "only the pretrain regimes"),
    ({"freeze_experts": True}, "freeze_experts", "pretrain regimes"),
    ({"regime": "pretrain", "class_split": "contiguous", "router": "hash", "freeze_experts": True}, "freeze_experts", "hash"),
    ({"regime": "frozen_gate", "refit_init": "other"}, "refit_init", "same, new"),
    ({"regime": "frozen_gate", "refit_epochs": 0}, "refit_epochs", ">= 1"),
    ({"regime": "annealed"}, "regime", "valid choices"),
    ({"experts": 3, "expert_lrs": [0.1, 0.1]}, "expert_lrs", "one learning rate per expert"),
    ({"temperature_decay": 1.5}, "temperature_decay", "(0, 1]"),
    ({"temperature": 0.5, "temperature_decay": 0.9, "temperature_min": 1.0}, "temperature_min", "<= temperature"),
])
def test_invalid_regime_settings_fail_before_training(values, field, text):
    line = config_problem(values)
    assert line.startswith(f"{field}:") and text in line


def test_class_split_from_the_command_line_and_presets():
    cfg = from_dict({"regime": "pretrain", "experts": 2, "class_split": "[[0, 2, 4], [1, 3, 5]]"})
    assert cfg.class_split == [[0, 2, 4], [1, 3, 5]]
    cfg = from_dict({"dataset": "fmnist_mnist", "regime": "pretrain", "experts": 6, "class_split": "fmnist_mnist"})
    assert resolve_split(cfg, 12) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]] == SPLITS["fmnist_mnist"]
    cfg = from_dict({"regime": "pretrain", "experts": 4, "class_split": "contiguous"})
    assert resolve_split(cfg, 6) == [[0, 1], [2, 3], [4], [5]]
    with pytest.raises(ConfigError, match=r"^class_split: expected a list of a list of int or str"):
        from_dict({"class_split": 3})


def test_a_split_that_leaves_out_a_class_of_the_data_fails_before_training(gm6):
    epochs = []
    cfg = {**SMALL, "regime": "pretrain", "experts": 2, "class_split": [[0, 1], [2, 3, 4]]}  # gm6 has class 5 too
    with pytest.raises(ConfigError, match=r"^class_split: classes \[5\] are left out"):
        run(cfg, data=gm6, on_epoch=epochs.append)
    assert epochs == []


def test_pretraining_each_expert_alone_equals_separate_training():
    """One step of the vectorised pretraining = one SGD step of each expert alone on its own batch."""
    cfg = from_dict({"experts": 2, "optimizer": "sgd", "momentum": 0.0, "lr": 0.5, "expert": "mlp", "expert_hidden": 3})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 3)
    reference = copy.deepcopy(model)
    x, y = torch.randn(9, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    owner = torch.tensor([0, 1, 1] * 3)  # expert 0: class 0, expert 1: classes 1 and 2
    stats = pretrain_epoch(model, build_optimizer(cfg, model, False, True), x, y, owner, 4, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    for e, mine in enumerate([torch.nonzero(owner == e).flatten() for e in range(2)]):
        order = mine[torch.randperm(len(mine), generator=g)]
        expert = reference.experts.experts[e]
        opt = torch.optim.SGD(expert.parameters(), lr=0.5)
        for batch in order.split(4):
            loss = torch.nn.functional.cross_entropy(expert(x[batch]), y[batch])
            opt.zero_grad(), loss.backward(), opt.step()
    for a, b in zip(model.experts.parameters(), reference.experts.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert stats["expert_share"] == pytest.approx([1 / 3, 2 / 3])


def test_pretrain_then_gate_with_frozen_experts(gm6, snapshots):
    cfg = {**SMALL, "regime": "pretrain", "experts": 3, "class_split": [[0, 1], [2, 3], [4, 5]], "pretrain_epochs": 2,
           "freeze_experts": True}
    rec = run(cfg, data=gm6)
    assert [(h["phase"], h["phase_epoch"], h["epoch"]) for h in rec["history"]] == \
        [("pretrain", 1, 1), ("pretrain", 2, 2), ("gate", 1, 3), ("gate", 2, 4)]
    start, gate_phase = snapshots
    assert (start["gate"], start["experts"], gate_phase["gate"], gate_phase["experts"]) == (False, True, True, False)
    assert same(router_state(start["state"]), router_state(gate_phase["state"]))  # a fresh gate: untouched by pretraining
    assert not same(experts_state(start["state"]), experts_state(gate_phase["state"]))  # the experts learnt
    final = gate_phase["model"].state_dict()
    assert same(experts_state(gate_phase["state"]), experts_state(final))  # frozen while the gate trained
    assert not same(router_state(gate_phase["state"]), router_state(final))
    assert all(p.requires_grad for p in gate_phase["model"].parameters())  # unfrozen again afterwards
    assert rec["status"] == "ok" and 0 <= rec["test"]["accuracy"] <= 1


@pytest.mark.parametrize("init", ["same", "new"])
def test_frozen_gate_then_fresh_experts(gm6, snapshots, init):
    rec = run({**SMALL, "regime": "frozen_gate", "refit_epochs": 1, "refit_init": init}, data=gm6)
    assert [h["phase"] for h in rec["history"]] == ["joint", "joint", "experts"]
    start, refit = snapshots
    model = refit["model"]
    final = model.state_dict()
    assert same(router_state(refit["state"]), router_state(final))  # the gate is frozen
    assert not same(experts_state(refit["state"]), experts_state(final))  # the experts train
    # the fresh experts start from the initial weights ('same') or from a new draw ('new')
    fresh = copy.deepcopy(model)
    train.fresh_experts(from_dict({**SMALL, "refit_init": init, "regime": "frozen_gate"}), fresh,
                        experts_state_local(start["state"]), init, (2,), 6)
    assert same(experts_state(fresh.state_dict()), experts_state(start["state"])) == (init == "same")
    # the record's test and validation scores are those of the final model; the last epoch's are the validation split's
    data = prepare(gm6, from_dict({**SMALL, "regime": "frozen_gate"}))
    assert rec["test"]["accuracy"] == evaluate.accuracy(model, data.x_test, data.y_test)
    assert rec["history"][-1]["val_accuracy"] == rec["validation"]["accuracy"] == evaluate.accuracy(model, data.x_val, data.y_val)
    assert not any(k.startswith("test") for h in rec["history"] for k in h)


def experts_state_local(state):
    return {k[len("experts."):]: v for k, v in state.items() if k.startswith("experts.")}


def test_on_epoch_runs_across_phases_and_stops_the_whole_run(gm6):
    seen = []
    cfg = {**SMALL, "regime": "frozen_gate", "refit_epochs": 3}
    rec = run(cfg, data=gm6, on_epoch=lambda m: seen.append((m["epoch"], m["phase"])))
    assert seen == [(1, "joint"), (2, "joint"), (3, "experts"), (4, "experts"), (5, "experts")]
    assert len(rec["history"]) == 5
    seen.clear()
    rec = run(cfg, data=gm6, on_epoch=lambda m: seen.append(m["epoch"]) or m["epoch"] == 3)
    assert seen == [1, 2, 3] and len(rec["history"]) == 3 and rec["status"] == "ok"


def test_temperature_decays_while_the_gate_trains_and_holds_when_frozen(gm6):
    cfg = {**SMALL, "epochs": 4, "temperature": 2.0, "temperature_decay": 0.5, "temperature_min": 0.3,
           "regime": "frozen_gate", "refit_epochs": 2}
    rec = run(cfg, data=gm6)
    assert [h["temperature"] for h in rec["history"]] == pytest.approx([2.0, 1.0, 0.5, 0.3, 0.3, 0.3])
    assert temperature_at(from_dict({"temperature": 3.0}), 10) == 3.0  # no decay by default


def test_dropped_samples_are_counted_and_reported(gm6):
    rec = run({**SMALL, "router": "switch", "capacity": 0.25, "experts": 4}, data=gm6)  # 2 samples per expert of 32
    assert all(h["dropped"] >= 0.5 for h in rec["history"])
    assert rec["test"]["dropped"] > 0.5
    assert sum(h for h in rec["history"][-1]["expert_share"]) == pytest.approx(1 - rec["history"][-1]["dropped"])
    rec = run(SMALL, data=gm6)
    assert rec["test"]["dropped"] == 0 and all(h["dropped"] == 0 for h in rec["history"])


def test_batch_dependent_routers_are_evaluated_in_mixed_training_size_batches(gm6):
    """gm6's test split is sorted by class: expert choice must not be scored on one-class batches."""
    cfg = from_dict({**SMALL, "router": "expert_choice", "experts": 3})
    torch.manual_seed(0)
    model = build_model(cfg, (2,), 6)
    assert evaluate.eval_batch_size(cfg, model) == cfg.batch_size
    x = gm6.x_test[:64]
    p = evaluate.predict(model, x, 32)
    order = evaluate.eval_order(model, 64)
    model.eval()
    with torch.no_grad():
        expected = torch.cat([model(x[order][i:i + 32]).routing.assignment() for i in (0, 32)])
    assert torch.equal(p["assignment"][order], expected)


def test_per_expert_curves_of_the_seed_paper(gm6):
    rec = run({**SMALL, "router": "topk", "top_k": 1, "experts": 3}, data=gm6)
    for h in rec["history"]:
        assert sum(h["expert_weight"]) <= 1 + 1e-9 and len(h["expert_weight"]) == 3
        assert len(h["expert_loss"]) == 3
        for share, loss in zip(h["expert_share"], h["expert_loss"]):
            assert (loss is None) == (share == 0) and (loss is None or loss > 0)
    rec = run({**SMALL, "experts": 3}, data=gm6)  # dense: the weights sum to 1 and every expert sees every sample
    assert sum(rec["history"][-1]["expert_weight"]) == pytest.approx(1.0)


def test_regularisers_are_logged_per_epoch(gm6):
    rec = run({**SMALL, "importance_loss": 0.1, "z_loss": 1e-3}, data=gm6)
    h = rec["history"][-1]
    assert {"loss_task", "loss_importance", "loss_z"} <= set(h)
    assert h["train_loss"] == pytest.approx(h["loss_task"] + 0.1 * h["loss_importance"] + 1e-3 * h["loss_z"], rel=1e-5)


def test_hash_router_trains_only_experts(gm6):
    cfg = from_dict({**SMALL, "router": "hash"})
    model = build_model(cfg, (2,), 6)
    assert [g["name"] for g in build_optimizer(cfg, model).param_groups] == ["expert0", "expert1", "expert2", "expert3"]
    rec = run({**SMALL, "router": "hash", "n_test": None}, data=gm6)
    assert rec["status"] == "ok" and rec["test"]["nmi"] < 0.05  # no learned specialisation


@pytest.mark.parametrize("optimizer,kind", [("adam", torch.optim.Adam), ("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_learning_rate_asymmetry_reaches_every_optimizer(optimizer, kind):
    """The seed paper's toy experiment: gate lr 0.01, expert lrs [0.01, 0.0001], RMSprop with momentum 0.9."""
    cfg = from_dict({"experts": 2, "optimizer": optimizer, "gate_lr": 0.01, "expert_lrs": [0.01, 0.0001], "momentum": 0.9})
    model = build_model(cfg, (2,), 6)
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, kind)
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [("gate", 0.01), ("expert0", 0.01), ("expert1", 0.0001)]
    if optimizer != "adam":
        assert opt.defaults["momentum"] == 0.9
    frozen = build_optimizer(cfg, model, train_gate=False)
    assert [g["name"] for g in frozen.param_groups] == ["expert0", "expert1"]
    ratio = from_dict({"experts": 4, "lr": 0.1, "lr_ratio": 1000.0})
    assert ratio.expert_learning_rates() == pytest.approx([0.1, 0.01, 0.001, 0.0001])  # geometric, expert 0 fastest


def test_learning_rate_asymmetry_slows_the_slow_expert(gm6, snapshots):
    cfg = {**SMALL, "experts": 2, "optimizer": "rmsprop", "gate_lr": 0.01, "expert_lrs": [0.01, 1e-6], "epochs": 1}
    run(cfg, data=gm6)
    (start,) = snapshots
    final = start["model"].state_dict()
    moved = [float((final[f"experts.experts.{e}.weight"] - start["state"][f"experts.experts.{e}.weight"]).abs().max())
             for e in range(2)]
    assert moved[0] > 100 * moved[1]


def test_multi_phase_runs_are_deterministic(gm6):
    cfg = {**SMALL, "regime": "pretrain_frozen_gate", "experts": 3, "class_split": "contiguous", "pretrain_epochs": 1,
           "epochs": 1, "refit_epochs": 1, "refit_init": "new", "router": "topk", "top_k": 2, "noisy_gate": True}
    a, b = run(cfg, data=gm6), run(cfg, data=gm6)
    strip = lambda r: [{k: v for k, v in h.items() if k != "epoch_s"} for h in r["history"]]  # noqa: E731
    assert strip(a) == strip(b) and a["test"] == b["test"]
    assert [h["phase"] for h in a["history"]] == ["pretrain", "joint", "experts"]
    assert all(math.isfinite(h["train_loss"]) for h in a["history"])
