"""The language model's shape of the training-speed benchmark (``python -m bench.speed.train_speed --only kjv``):
``moe.training.lm_loop``'s training step against a bare torch loop of the same model, timed in the same run.

- ``moe_train``: the steps of one epoch as ``moe.training.lm_loop.run_lm`` takes them (``lm_loss``: the model of
  ``moe.lm`` with the registry's router and experts through ``kernels.topk_route`` and ``kernels.grouped_mm``, the
  balance loss; backward, gradient clipping, Adam), on the same windows in the same order each round;
- ``bare_train``: the same architecture in a few obvious lines (:class:`BareLM`): the same attention and embeddings
  (its weights copied), the mixture written as a softmax, ``torch.topk``, renormalised weights and a loop over the
  experts that gathers each expert's tokens and adds its output back (``index_add_``), the same loss with the same
  balance term, backward, clipping and Adam.

Letters: B windows, S positions, T = B x S tokens, D width, H expert hidden width, E experts, k slots.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from moe.data.text import GENRES, TextDataset, kjv_from_lines
from moe.lm import MoELanguageModel
from moe.training.lm_loop import (CLIP_NORM, batch_of, build_lm, build_optimizer, lm_loss, on_device, regularisers,
                                  window_starts)
from moe.validate import from_dict

LM_SHAPE = "kjv[lm=2x64,E=8,k=2,context=128]"
LM_FIELDS: dict[str, Any] = {"dataset": "kjv"}  # the text_lm defaults: 2 MoE blocks of width 64, 8 mlp experts, top-2
LM_WINDOWS = 64  # training windows per timed epoch (4 steps of 16)


class BareMoE(nn.Module):
    """softmax -> top-k -> renormalise -> a loop over experts (gather, MLP, weighted index_add_)."""

    def __init__(self, ffn):
        super().__init__()
        w1, b1, w2, b2 = (t.detach().clone() for t in ffn.experts.weights())
        self.gate = copy.deepcopy(ffn.router.gate)
        self.w1, self.b1, self.w2, self.b2 = (nn.Parameter(t) for t in (w1, b1, w2, b2))
        self.k = ffn.router.k

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        probs = self.gate(h).softmax(-1)  # [T, E]
        w, ids = probs.topk(self.k, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(h)
        for e in range(self.w1.shape[0]):
            tok, slot = (ids == e).nonzero(as_tuple=True)
            y = torch.relu(h[tok] @ self.w1[e] + self.b1[e]) @ self.w2[e] + self.b2[e]
            out.index_add_(0, tok, y * w[tok, slot, None])
        E = probs.shape[1]
        balance = E * (torch.bincount(probs.argmax(1), minlength=E).to(probs.dtype) / len(probs) * probs.mean(0)).sum()
        return out, balance


class BareLM(nn.Module):
    """The in-house model's embeddings, attention and norms (copied), its mixtures as :class:`BareMoE`."""

    def __init__(self, model: MoELanguageModel):
        super().__init__()
        self.model = copy.deepcopy(model)
        self.moes = nn.ModuleList(BareMoE(self.model.blocks[i].ffn) for i in range(len(self.model.blocks)))
        for block in self.model.blocks:
            block.ffn = None  # replaced

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.model
        B, S = x.shape
        hidden = m.tok(x) + m.pos(torch.arange(S, device=x.device))
        balance = hidden.new_zeros(())
        for block, moe in zip(m.blocks, self.moes):
            hidden = hidden + block.attn(block.ln_1(hidden))
            y, b = moe(block.ln_2(hidden).reshape(B * S, -1))
            hidden, balance = hidden + y.view(B, S, -1), balance + b
        return m.head(m.ln_f(hidden)), balance / len(self.moes)


def small_text(n_verses: int = 40) -> TextDataset:
    """A dataset of the KJV's layout made here (no package needed): verses of varied words in every book."""
    words = "and the of that he in unto shall for his they be is him not them with all lord thou thy".split()
    g = torch.Generator().manual_seed(0)
    lines = [json.dumps({"book": b, "text": " ".join(words[int(i)] for i in torch.randint(len(words), (30,), generator=g))})
             for b in GENRES for _ in range(n_verses)]
    return kjv_from_lines(lines)


def lm_fns(threads: int | None = None, device: torch.device | str = "cpu", windows: int = LM_WINDOWS,
           batch_size: int | None = None) -> tuple[dict[str, Callable[[], None]], dict[str, float]]:
    """The timed functions of the language model's shape and its sizes (tokens per epoch): an epoch of ``windows``
    training windows in batches of ``batch_size`` (default: the config's 16), model and batches on ``device``
    (the caller synchronises a GPU around the calls)."""
    device = torch.device(device)
    cfg = from_dict({**LM_FIELDS, "threads": threads or 1, "device": device.type,
                     **({"batch_size": batch_size} if batch_size else {})})
    data = small_text()
    torch.manual_seed(cfg.seed)
    model = build_lm(cfg, data.vocab_size).to(device)
    bare = BareLM(model)
    opt, bare_opt = build_optimizer(cfg, model), torch.optim.Adam(bare.parameters(), lr=cfg.lr)
    terms = regularisers(cfg)
    starts = window_starts(len(data.train), cfg.context)[:windows]
    if len(starts) < windows:
        raise ValueError(f"windows: the benchmark's text has {len(starts)} training windows, fewer than {windows}")
    train = on_device(data.train, device)
    batches = [batch_of(train, starts[i:i + cfg.batch_size], cfg.context) for i in range(0, len(starts), cfg.batch_size)]

    def moe_epoch():
        for x, y in batches:
            total, _ = lm_loss(model, x, y, terms)
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            opt.step()

    def bare_epoch():
        for x, y in batches:
            logits, balance = bare(x)
            total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)) + cfg.switch_loss * balance
            bare_opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(bare.parameters(), CLIP_NORM)
            bare_opt.step()

    return {"moe_train": moe_epoch, "bare_train": bare_epoch}, {"tokens": float(len(starts) * cfg.context)}
