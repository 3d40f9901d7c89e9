"""The language model's bare loop computes what the in-house model computes (the ratio compares equal work)."""
from __future__ import annotations

import torch

from bench.speed.lm_speed import BareLM, lm_fns, small_text
from moe.lm import build_lm
from moe.training.lm_loop import batch_of, lm_loss, regularisers, window_starts
from moe.validate import from_dict


def test_bare_lm_matches_the_model_and_its_loss():
    cfg = from_dict({"dataset": "kjv", "lm_width": 16, "lm_heads": 2, "context": 12, "experts": 4, "expert_hidden": 8})
    data = small_text(3)
    torch.manual_seed(0)
    model = build_lm(cfg, 256)
    bare = BareLM(model)
    x, y = batch_of(data.train, window_starts(len(data.train), 12)[:3], 12)
    logits, balance = bare(x)
    torch.testing.assert_close(logits, model(x).logits, rtol=1e-5, atol=1e-5)
    total, task = lm_loss(model, x, y, regularisers(cfg))
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
    torch.testing.assert_close(ce + cfg.switch_loss * balance, total, rtol=1e-5, atol=1e-6)


def test_lm_fns_run():
    fns, sizes = lm_fns()
    assert set(fns) == {"moe_train", "bare_train"} and sizes["tokens"] == 64 * 128
