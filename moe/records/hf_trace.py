"""Routing traces (``moe.records.trace``) from Hugging Face ``transformers`` mixture-of-experts language models
(OLMoE, Mixtral, Qwen-MoE and the other classes that return ``router_logits`` when called with
``output_router_logits=True``), so that their routing is analysed exactly as the in-house model's.

An optional extra: ``transformers`` is not a dependency of this project; this module imports nothing of it and
reads only the model's outputs and its config (``num_experts_per_tok``; ``norm_topk_prob``, where the model has it,
else renormalised as Mixtral does). Each MoE layer's router logits [B x S, E] become the top-k experts by softmax
probability (ties to the lower expert) and their weights (softmax over all E at the chosen experts, renormalised
over the k when the model renormalises), the logits kept. Tokens are ``input_ids`` in batch-major order.
"""
from __future__ import annotations

import numpy as np
import torch

from moe.records.trace import LayerRouting, Trace, check


def routing_from_logits(logits: torch.Tensor, k: int, renormalize: bool) -> LayerRouting:
    """One layer's routing from its router logits [T, E]: top-k of the softmax, ties to the lower expert."""
    probs = logits.detach().float().softmax(-1)
    order = torch.sort(-probs, dim=-1, stable=True).indices[:, :k]  # descending, lower expert first among ties
    weights = probs.gather(1, order)
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    return LayerRouting(order.numpy().astype(np.int32), weights.numpy().astype(np.float32),
                        logits.detach().float().numpy())


@torch.no_grad()
def trace_from_transformers(model, input_ids: torch.Tensor, *, domain: torch.Tensor | None = None,
                            document: torch.Tensor | None = None, domain_names: list[str] | None = None,
                            document_names: list[str] | None = None, source: dict | None = None) -> Trace:
    """The routing trace of ``model(input_ids, output_router_logits=True)``. input_ids: int64 [B, S]; domain and
    document: int [B, S] indices into their names (-1 or absent: unknown)."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids: expected [batch, positions], got {list(input_ids.shape)}")
    was_training = model.training
    model.eval()
    try:
        out = model(input_ids, output_router_logits=True)
    finally:
        model.train(was_training)
    logits = getattr(out, "router_logits", None)
    if not logits:
        raise ValueError(f"{type(model).__name__} returned no router_logits: not a mixture-of-experts model, or one "
                         "that does not report its routing")
    cfg = model.config
    k = int(getattr(cfg, "num_experts_per_tok"))
    renormalize = bool(getattr(cfg, "norm_topk_prob", True))
    n_tokens = input_ids.numel()
    layers = []
    for i, layer_logits in enumerate(logits):
        layer_logits = layer_logits.reshape(-1, layer_logits.shape[-1])
        if layer_logits.shape[0] != n_tokens:
            raise ValueError(f"router_logits[{i}]: {layer_logits.shape[0]} rows for {n_tokens} tokens")
        layers.append(routing_from_logits(layer_logits, k, renormalize))
    B, S = input_ids.shape
    flat = lambda t: np.full(n_tokens, -1, np.int32) if t is None else t.reshape(-1).numpy().astype(np.int32)  # noqa: E731
    return check(Trace(input_ids.reshape(-1).numpy().astype(np.int32), flat(document), flat(domain),
                       np.repeat(np.arange(B, dtype=np.int32), S), layers, [f"moe layer {i}" for i in range(len(layers))],
                       [lay.logits.shape[1] for lay in layers], list(domain_names or []), list(document_names or []),
                       {"model": type(model).__name__, "top_k": k, "renormalized": renormalize, **(source or {})}))
