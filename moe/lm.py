"""A small decoder-only transformer whose feed-forward layers are mixtures of experts over tokens.

Letters: B sequences, S positions (at most the context C), T = B x S tokens, D model width, V vocabulary (256
bytes), E experts, k slots per token, A routed assignments, L layers.

Each block is pre-norm (GPT-2: Radford et al. 2019): x <- x + attn(ln_1(x)); x <- x + ffn(ln_2(x)). The
feed-forward layer of the blocks in ``moe_layers`` is a mixture: a router of the registry (``moe.routers``) reads
the token's hidden state h [T, D] and gives a routing plan; the experts of the registry (``moe.experts``, built
with input width D and D outputs: an ``mlp`` expert is relu(h W1_e + b1_e) W2_e + b2_e) evaluate only the routed
(token, expert) pairs through ``kernels.grouped_mm`` (Triton on a GPU, torch on the CPU); the plan combines them:
ffn(h)_t = sum_j w_tj f_{e_tj}(h_t). A token that no expert took (a capacity limit) gets 0 (the residual passes).
The other blocks have one dense MLP of the same hidden width.

Hard routing (one slot, weight the constant 1: sinkhorn; ``routing: hard | gumbel``) is trained straight-through
as in BASE layers' spirit: the output is scaled by 1 + s_e* - sg(s_e*) (value 1; s the router's ``relaxed``
weights), so the gate gets the gradient of the chosen expert's output. This scaling is this project's choice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from moe.experts import EXPERTS
from moe.routers import ROUTERS, Routing

INIT_STD = 0.02  # GPT-2's initialisation of the linear and embedding weights


@dataclass
class LMOutput:
    logits: Tensor  # [B, S, V]
    routings: list[Routing | None]  # one per layer; None for a dense layer
    hidden_in: list[Tensor | None]  # the feed-forward input of each MoE layer [T, D] (None: dense layer, or not kept)


def moe_layer_indices(spec, n_layers: int) -> list[int]:
    """The blocks whose feed-forward layer is a mixture: ``'all'``, ``'alternate'`` (1, 3, 5, ...: every second
    block from the second, as GShard and Switch place them) or a list of block indices (0-based)."""
    if spec == "all":
        return list(range(n_layers))
    if spec == "alternate":
        return list(range(1, n_layers, 2))
    return sorted(set(int(i) for i in spec))


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        B, S, D = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # [B, H, S, D/H] each
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, S, D))


class DenseFeedForward(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.up, self.down = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, h: Tensor) -> tuple[Tensor, None]:
        return self.down(torch.relu(self.up(h))), None


class MoEFeedForward(nn.Module):
    """A mixture over tokens: router (registry) -> routing plan -> routed experts (registry) -> combine."""

    def __init__(self, cfg, width: int):
        super().__init__()
        self.router = ROUTERS.get(cfg.router, "router")(cfg, (width,), cfg.experts)
        self.experts = EXPERTS.get(cfg.expert, "expert")(cfg, (width,), width)

    def forward(self, h: Tensor) -> tuple[Tensor, Routing]:
        routing = self.router(h)  # h: [T, D]
        plan = routing.plan
        y = plan.combine(self.experts.forward_routed(h, plan))  # [A, D] -> [T, D]
        if routing.relaxed is not None:  # one slot of weight 1: straight-through to the gate
            chosen = plan.expert_ids[:, :1].clamp_min(0)
            s = routing.relaxed.gather(1, chosen).to(y.dtype)  # [T, 1]
            y = y * (1 + s - s.detach())
        return y, routing


class Block(nn.Module):
    def __init__(self, cfg, moe: bool):
        super().__init__()
        D = cfg.lm_width
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = CausalSelfAttention(D, cfg.lm_heads)
        self.ffn = MoEFeedForward(cfg, D) if moe else DenseFeedForward(D, cfg.expert_hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Routing | None, Tensor]:
        B, S, D = x.shape
        x = x + self.attn(self.ln_1(x))
        h = self.ln_2(x).reshape(B * S, D)
        y, routing = self.ffn(h)
        return x + y.view(B, S, D), routing, h


class MoELanguageModel(nn.Module):
    """Token and position embeddings, L pre-norm blocks, a final LayerNorm and an untied output layer."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.context = cfg.context
        self.moe_layers = moe_layer_indices(cfg.moe_layers, cfg.lm_layers)
        self.tok = nn.Embedding(vocab_size, cfg.lm_width)
        self.pos = nn.Embedding(cfg.context, cfg.lm_width)
        self.blocks = nn.ModuleList(Block(cfg, i in self.moe_layers) for i in range(cfg.lm_layers))
        self.ln_f = nn.LayerNorm(cfg.lm_width)
        self.head = nn.Linear(cfg.lm_width, vocab_size)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's: N(0, 0.02) for the embeddings and the attention / dense / output layers, zero biases; the
        residual projections scaled by 1 / sqrt(2 L). Routers and experts keep their own registry initialisation."""
        for name, p in self.named_parameters():
            if ".router." in name or ".experts." in name:
                continue
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                std = INIT_STD / math.sqrt(2 * len(self.blocks)) if name.endswith(("proj.weight", "down.weight")) else INIT_STD
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens: Tensor, keep_hidden: bool = False) -> LMOutput:
        """tokens: int64 [B, S], S <= context."""
        B, S = tokens.shape
        x = self.tok(tokens) + self.pos(torch.arange(S, device=tokens.device))  # [B, S, D]
        routings, hidden = [], []
        for block in self.blocks:
            x, routing, h = block(x)
            routings.append(routing)
            hidden.append(h if keep_hidden and routing is not None else None)
        return LMOutput(self.head(self.ln_f(x)), routings, hidden)

    def routers(self) -> list[nn.Module]:
        """The router of each MoE layer, in layer order."""
        return [self.blocks[i].ffn.router for i in self.moe_layers]

    def gate_parameters(self) -> list[nn.Parameter]:
        return [p for r in self.routers() for p in r.parameters()]

    def set_removed(self, layer: int | None, expert: int | None) -> None:
        """Remove one expert of one MoE layer (its router routes around it, ``moe.ablation``'s convention), or none
        (``layer`` None)."""
        for i, router in zip(self.moe_layers, self.routers()):
            if layer == i:
                mask = torch.zeros(router.n_experts, dtype=torch.bool)
                mask[expert] = True
                router.removed = mask
            else:
                router.removed = None


def build_lm(cfg, vocab_size: int) -> MoELanguageModel:
    return MoELanguageModel(cfg, vocab_size)


def lm_parameter_counts(model: MoELanguageModel) -> dict[str, int]:
    """``total``, ``gate`` (the routers), ``experts`` (every expert of every MoE layer) and ``active`` (the
    parameters one token uses: total minus the experts it is not routed to, at k of E)."""
    count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    experts = count(p for i in model.moe_layers for p in model.blocks[i].ffn.experts.parameters())
    return {"total": count(model.parameters()), "gate": count(model.gate_parameters()), "experts": experts}
