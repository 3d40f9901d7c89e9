"""moe.training.epoch_stats: the statistics reduced once per epoch are bitwise those of the batch-by-batch reductions they
replace (the reference below is the loop's former code), for routers with dense, top-k, dropped and varying slots,
with regularisers on, and when the kept batches are flushed in several chunks."""
import math

import pytest
import torch

from moe.training import epoch_stats
from moe.model import build_model
from moe.objectives import Loss
from moe.validate import from_dict


def reference(model, loss_fn, x, y, batches):
    n_experts = model.experts.n_experts
    total_loss, correct, seen, terms = 0.0, 0, 0, {}
    top_counts = torch.zeros(n_experts, dtype=torch.long)
    weight_sum = torch.zeros(n_experts, dtype=torch.float64)
    nll_sum = torch.zeros(n_experts, dtype=torch.float64)
    pairs = torch.zeros(n_experts, dtype=torch.long)
    dropped = torch.zeros((), dtype=torch.long)
    for idx, out, loss, parts in batches:
        total_loss += float(loss.detach()) * len(idx)
        for name, value in parts.items():
            terms[name] = terms.get(name, 0.0) + value * len(idx)
        correct += int((out.log_probs.argmax(1) == y[idx]).sum())
        seen += len(idx)
        top = out.routing.assignment()
        top_counts += torch.bincount(top[top >= 0], minlength=n_experts)
        dropped += (top < 0).sum()
        with torch.no_grad():
            weight_sum += out.routing.dense_weights().sum(0).double()
            ids = out.routing.plan.expert_ids
            nll = -out.expert_log_probs.gather(2, y[idx][:, None, None].expand(-1, ids.shape[1], 1))[..., 0]
            valid = ids >= 0
            nll_sum.index_add_(0, ids[valid], nll[valid].double())
            pairs += torch.bincount(ids[valid], minlength=n_experts)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen,
            **{f"loss_{name}": float(v) / seen for name, v in terms.items()},
            "expert_share": (top_counts.double() / seen).tolist(), "expert_weight": (weight_sum / seen).tolist(),
            "expert_loss": [float(s / c) if c > 0 else None for s, c in zip(nll_sum.tolist(), pairs.tolist())],
            "dropped": int(dropped) / seen, "finite": True}


CONFIGS = [dict(router="softmax", experts=5), dict(router="topk", top_k=2, experts=4, importance_loss=0.1, z_loss=1e-3),
           dict(router="expert_choice", experts=4), dict(router="switch", experts=4, capacity=0.5, switch_loss=0.01),
           dict(router="hash", experts=3), dict(router="softmax", experts=3, objective="cooperative")]


@pytest.mark.parametrize("flush", [epoch_stats.FLUSH_FLOATS, 50], ids=["one_flush", "many_flushes"])
@pytest.mark.parametrize("fields", CONFIGS, ids=[c["router"] + str(i) for i, c in enumerate(CONFIGS)])
def test_bitwise_equal_to_batch_by_batch(fields, flush, monkeypatch):
    monkeypatch.setattr(epoch_stats, "FLUSH_FLOATS", flush)
    cfg = from_dict({"dataset": "gm6", **fields})
    torch.manual_seed(3)
    model = build_model(cfg, (2,), 6)
    loss_fn = Loss(cfg)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(203, 2, generator=g), torch.randint(0, 6, (203,), generator=g)
    batches = []
    stats = epoch_stats.EpochStats(model.experts.n_experts, y)
    for idx in torch.randperm(203, generator=g).split(32):  # the last batch is smaller
        out = model(x[idx])
        loss, parts = loss_fn(out, x[idx], y[idx])
        batches.append((idx, out, loss, parts))
        stats.add(idx, loss, parts, out)
    expected, got = reference(model, loss_fn, x, y, batches), stats.result()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or (isinstance(value, float) and math.isnan(value) and math.isnan(got[key])), key


def test_runs():
    assert epoch_stats.runs([32, 32, 32, 7]) == [(32, 3), (7, 1)]
    assert epoch_stats.runs([]) == [] and epoch_stats.runs([5, 6, 5]) == [(5, 1), (6, 1), (5, 1)]


def test_all_finite_one_pass_and_its_overflow():
    from moe.training.epochs import all_finite

    assert all_finite([torch.tensor([3e38, 3e38]), torch.ones(3)])  # finite values whose norm overflows
    assert not all_finite([torch.ones(2), torch.tensor([1.0, float("nan")])])
    assert not all_finite([torch.tensor([float("-inf")]), torch.ones(2)])
    assert all_finite([]) and all_finite([torch.zeros(0)])
