"""The language model's configuration rules (text datasets, ``moe.lm``): its own fields alone, then the rules
between fields that a text dataset adds; ``moe.validate`` calls both."""
from __future__ import annotations

from typing import Any, Callable

from moe.config import MAX_LM_LAYERS, MOE_LAYER_CHOICES, TEXT_DATASETS
from moe.config import LOSS_COEFFICIENTS, Config


def field_problems(cfg: Config, limit_problem: Callable[[str, Any], str | None]) -> list[str | None]:
    """Each language-model field alone (``limit_problem``: ``moe.validate``'s check of a field's range,
    ``moe.config.LIMITS``)."""
    return [*(limit_problem(name, getattr(cfg, name)) for name in ("lm_layers", "lm_width", "lm_heads", "context")),
            moe_layers_problem(cfg.moe_layers)]


def moe_layers_problem(v: Any) -> str | None:
    if isinstance(v, str) and v in MOE_LAYER_CHOICES:
        return None
    ints = isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
    if ints and v and all(0 <= i < MAX_LM_LAYERS for i in v) and len(set(v)) == len(v):
        return None
    return (f"moe_layers: must be one of {', '.join(MOE_LAYER_CHOICES)} or a non-empty list of distinct block "
            f"indices in [0, {MAX_LM_LAYERS}), got {repr(v)[:80]}")


# What the language model of a text dataset can use: routers that route each token by itself (expert_choice picks
# tokens of the whole batch, future positions included, so it would leak them; attention and prototype routers read
# what a token has not), experts with a width-D output, the mixture's own task loss.
TEXT_ROUTERS = ("softmax", "topk", "switch", "hash", "soft", "sinkhorn", "linear")
TEXT_EXPERTS = ("mlp", "linear")
TEXT_REGULARISERS = ("importance_loss", "load_loss", "switch_loss", "z_loss")


def text_problems(cfg: Config) -> list[str]:
    """The language model's rules, for a text dataset (``moe.data.text``); none for the others."""
    if cfg.dataset not in TEXT_DATASETS:
        return []
    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    check(cfg.lm_width % cfg.lm_heads == 0, f"lm_heads: must divide lm_width ({cfg.lm_width}), got {cfg.lm_heads}")
    if isinstance(cfg.moe_layers, list):
        check(max(cfg.moe_layers) < cfg.lm_layers, f"moe_layers: block indices must lie in [0, lm_layers = {cfg.lm_layers}), "
                                                   f"got {cfg.moe_layers}")
    check(cfg.router in TEXT_ROUTERS, f"router: the language model routes each token by itself; valid choices for a "
                                      f"text dataset: {', '.join(TEXT_ROUTERS)}, got {cfg.router!r}")
    check(cfg.expert in TEXT_EXPERTS, f"expert: valid choices for a text dataset: {', '.join(TEXT_EXPERTS)}, got {cfg.expert!r}")
    check(cfg.objective == "mixture_nll", f"objective: a text dataset trains the language model's next-byte loss; "
                                          f"objective must be 'mixture_nll' (the default), got {cfg.objective!r}")
    check(cfg.regime == "joint", f"regime: a text dataset trains jointly; regime must be 'joint', got {cfg.regime!r}")
    check(cfg.gate == "linear", f"gate: the language model's routers read the hidden state; gate must be 'linear', got {cfg.gate!r}")
    check(cfg.match_router is None, "match_router: router matching does not apply to the language model; set it to null")
    for name in LOSS_COEFFICIENTS:
        if name not in TEXT_REGULARISERS:
            check(getattr(cfg, name) == 0, f"{name}: does not apply to the language model; valid regularisers for a "
                                           f"text dataset: {', '.join(TEXT_REGULARISERS)}; set it to 0")
    check(not cfg.mask_experts, "mask_experts: does not apply to the language model; set it to false")
    return problems
