"""The MoE language model: its mixture feed-forward layer against a dense loop over tokens and experts (outputs and
every gradient), causality, and a short training run on small text that beats the unigram model."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from moe.config import parse
from moe.lm import MoEFeedForward, MoELanguageModel, moe_layer_indices
from moe.validate import from_dict

ROUTERS = [("topk", {"top_k": 2}), ("topk", {"top_k": 1}), ("softmax", {}), ("switch", {}), ("switch", {"capacity": 1.0}),
           ("hash", {"switch_loss": 0.0}), ("soft", {}), ("sinkhorn", {}), ("linear", {}), ("topk", {"top_k": 2, "noisy_gate": True})]


def lm_config(**over):
    values = {"dataset": "kjv", "lm_width": 8, "lm_heads": 2, "context": 6, "experts": 3, "expert_hidden": 5, "lm_layers": 2}
    return from_dict({**values, **over})


def dense_loop(ffn: MoEFeedForward, h: torch.Tensor) -> torch.Tensor:
    """sum_j w_tj f_{e_tj}(h_t), one token and one slot at a time, each expert's own nn modules."""
    torch.manual_seed(123)  # the same noise draw as the layer's own forward (noisy top-k)
    routing = ffn.router(h)
    ids, w = routing.plan.expert_ids, routing.plan.weights
    rows = []
    for t in range(len(h)):
        out = torch.zeros(h.shape[1], dtype=h.dtype)
        for j in range(ids.shape[1]):
            e = int(ids[t, j])
            if e >= 0:
                out = out + w[t, j] * ffn.experts.experts[e](h[t:t + 1])[0]
        if routing.relaxed is not None and ids[t, 0] >= 0:
            s = routing.relaxed[t, ids[t, 0]]
            out = out * (1 + s - s.detach())
        rows.append(out)
    return torch.stack(rows)


@pytest.mark.parametrize("router,extra", ROUTERS, ids=[f"{r}-{'-'.join(f'{k}{v}' for k, v in e.items())}" for r, e in ROUTERS])
@pytest.mark.parametrize("expert", ["mlp", "linear"])
def test_moe_ffn_matches_dense_loop(router, extra, expert):
    cfg = lm_config(router=router, expert=expert, **({"switch_loss": 0.0} | extra))
    torch.manual_seed(0)
    ffn = MoEFeedForward(cfg, cfg.lm_width).double()
    h = torch.randn(11, cfg.lm_width, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(123)
    y, _ = ffn(h)
    h_ref = h.detach().clone().requires_grad_(True)
    ref = dense_loop(ffn, h_ref)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    params = [p for p in ffn.parameters() if p.requires_grad]
    grads = torch.autograd.grad((y * g).sum(), [h, *params], allow_unused=True)
    ref_grads = torch.autograd.grad((ref * g).sum(), [h_ref, *params], allow_unused=True)
    for name, a, b in zip(["h", *[n for n, p in ffn.named_parameters() if p.requires_grad]], grads, ref_grads):
        if a is None or b is None:
            assert (a is None or not a.abs().sum()) and (b is None or not b.abs().sum()), name
        else:
            torch.testing.assert_close(a, b, msg=name)


def test_whole_model_is_causal_and_shapes():
    cfg = lm_config(lm_layers=3, moe_layers="alternate")
    torch.manual_seed(0)
    model = MoELanguageModel(cfg, 256).eval()
    assert model.moe_layers == [1] and moe_layer_indices([0, 2], 3) == [0, 2]
    x = torch.randint(0, 256, (2, cfg.context))
    out = model(x)
    assert out.logits.shape == (2, cfg.context, 256) and [r is None for r in out.routings] == [True, False, True]
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 256  # the last byte changes nothing before it
    torch.testing.assert_close(model(x2).logits[:, :-1], out.logits[:, :-1])


def test_removed_expert_is_never_routed_to():
    cfg = lm_config(top_k=1)
    torch.manual_seed(0)
    model = MoELanguageModel(cfg, 256).eval()
    model.set_removed(0, 1)
    out = model(torch.randint(0, 256, (3, cfg.context)))
    assert not (out.routings[0].plan.expert_ids == 1).any()
    assert model.routers()[1].removed is None  # the other layer keeps every expert
    model.set_removed(None, None)
    assert all(r.removed is None for r in model.routers())


def test_text_preset_defaults_and_overrides():
    cfg = parse({"dataset": "kjv"})
    assert (cfg.router, cfg.experts, cfg.top_k, cfg.epochs, cfg.expert) == ("topk", 8, 2, 1, "mlp")
    assert parse({"dataset": "kjv", "experts": 4}).experts == 4
    assert parse({"dataset": "gm6"}).router == "softmax"  # other datasets keep the plain defaults
