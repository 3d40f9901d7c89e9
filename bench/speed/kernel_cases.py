"""The CPU cases of the kernel benchmark (``python -m bench.speed.kernel_bench``): a registry of builders by
canonical name, each a candidate and the baselines it is timed against, with the targets of its ratios.

The grid (``CPU``, ``GPU_SHAPES``) is the one place for every size. Inputs are made by ``build``, not at import.
Letters: M grouped rows, E experts, K/N feature widths, T tokens, k slots per token, D model width, H hidden width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from kernels import grouped_mm, moe_mlp, moe_mlp_layer, topk_route
from moe.registry import suggestion

# ---- the grid: one place for every size (the benchmark's figures) -----------------------------------
CPU = dict(rows=8192, experts=8, K=512, N=512, layer_tokens=4096, layer_k=2, route_tokens=8192, route_experts=64,
           route_k=2, step_tokens=2048, step_experts=16, step_k=1, step_D=256, step_H=512)
GPU_SHAPES = [  # (rows M, experts E, K, N): >= 512 rows per expert
    (8192, 8, 2048, 2048), (16384, 16, 4096, 1024), (32768, 64, 1024, 4096),
]
ROUTINGS = ("balanced", "zipf")


@dataclass
class Case:
    """A candidate and its baselines, timed side by side; checks are (numerator, denominator, op, target)."""

    name: str
    fns: dict[str, Callable[[], object]]
    flops: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, str, str, float]] = field(default_factory=list)


def expert_of_rows(M: int, E: int, routing: str, gen: torch.Generator) -> torch.Tensor:
    """Sorted expert of each of M rows: uniform ('balanced') or Zipf(s=1) over the experts ('zipf')."""
    if routing == "balanced":
        return torch.arange(M) * E // M
    p = 1.0 / torch.arange(1, E + 1, dtype=torch.float64)
    return torch.sort(torch.multinomial(p / p.sum(), M, replacement=True, generator=gen)).values


def offsets_of(experts: torch.Tensor, E: int) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(torch.bincount(experts, minlength=E), 0)])


def routing_bias(E: int, routing: str) -> torch.Tensor:
    """Added to router logits: 0 (balanced) or log Zipf probabilities (Gumbel-max gives Zipf-skewed top-1)."""
    if routing == "balanced":
        return torch.zeros(E)
    return -torch.log(torch.arange(1, E + 1, dtype=torch.float32))


# ---- CPU cases: a registry of builders by canonical name ------------------------------------
REGISTRY: dict[str, tuple[Callable[[torch.Generator], Case], tuple[str, ...]]] = {}


def register(name: str, fn_names: tuple[str, ...], builder: Callable[[torch.Generator], Case]) -> None:
    if name in REGISTRY:
        raise ValueError(f"duplicate benchmark case {name!r}")
    REGISTRY[name] = (builder, fn_names)


def build(name: str, gen: torch.Generator | None = None) -> Case:
    """The case `name` with fresh inputs (its tensors are made here, not at import)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown case {name!r}{suggestion(name, REGISTRY)}; valid choices: {', '.join(REGISTRY)}")
    case = REGISTRY[name][0](gen if gen is not None else torch.Generator().manual_seed(0))
    case.name = name
    return case


def _grouped_inputs(routing: str, gen: torch.Generator):
    c = CPU
    M, E, K, N = c["rows"], c["experts"], c["K"], c["N"]
    x = torch.randn(M, K, generator=gen)
    w, wd = torch.randn(E, K, N, generator=gen) / math.sqrt(K), torch.randn(K, N, generator=gen) / math.sqrt(K)
    return x, w, wd, offsets_of(expert_of_rows(M, E, routing, gen), E)


def grouped_fwd_case(routing: str, gen: torch.Generator) -> Case:
    x, w, wd, off = _grouped_inputs(routing, gen)
    ends32 = off[1:].to(torch.int32)
    flops = 2.0 * x.shape[0] * w.shape[1] * w.shape[2]
    return Case("", {"grouped_mm": lambda: grouped_mm(x, w, off, backend="torch"), "dense_mm": lambda: x @ wd,
                     "torch._grouped_mm": lambda: torch._grouped_mm(x, w, offs=ends32)},
                dict.fromkeys(("grouped_mm", "dense_mm", "torch._grouped_mm"), flops),
                [("grouped_mm", "dense_mm", "<=", 1.1), ("grouped_mm", "torch._grouped_mm", "<=", 1.0)])


def grouped_gather_case(routing: str, gen: torch.Generator) -> Case:
    """The model's call: rows of x [T, K] gathered on load (T = M / 2 tokens, k = 2)."""
    x, w, wd, off = _grouped_inputs(routing, gen)
    M = x.shape[0]
    tokens = torch.randint(0, M // 2, (M,), generator=gen)
    xt = x[: M // 2].clone()
    flops = 2.0 * M * w.shape[1] * w.shape[2]
    return Case("", {"grouped_mm": lambda: grouped_mm(xt, w, off, gather_index=tokens, backend="torch"),
                     "dense_mm": lambda: x @ wd},
                dict.fromkeys(("grouped_mm", "dense_mm"), flops), [("grouped_mm", "dense_mm", "<=", 1.1)])


def grouped_fwd_bwd_case(routing: str, gen: torch.Generator) -> Case:
    x, w, wd, off = _grouped_inputs(routing, gen)
    xg, wg, wdg = (t.requires_grad_(True) for t in (x, w, wd))
    dy = torch.randn(x.shape[0], w.shape[2], generator=gen)

    def fwd_bwd_grouped():
        xg.grad = wg.grad = None
        grouped_mm(xg, wg, off, backend="torch").backward(dy)

    def fwd_bwd_dense():
        xg.grad = wdg.grad = None
        (xg @ wdg).backward(dy)

    flops = 6.0 * x.shape[0] * w.shape[1] * w.shape[2]
    return Case("", {"grouped_mm": fwd_bwd_grouped, "dense_mm": fwd_bwd_dense},
                dict.fromkeys(("grouped_mm", "dense_mm"), flops), [("grouped_mm", "dense_mm", "<=", 1.4)])


def _shape(keys) -> str:
    return ",".join(f"{k}={CPU[v]}" for k, v in keys)


_G = (("M", "rows"), ("E", "experts"), ("K", "K"), ("N", "N"))
_L = (("T", "layer_tokens"), ("k", "layer_k"), ("E", "experts"), ("D", "K"), ("H", "N"))
for _r in ROUTINGS:
    register(f"grouped_fwd[routing={_r},{_shape(_G)}]", ("grouped_mm", "dense_mm", "torch._grouped_mm"),
             lambda gen, r=_r: grouped_fwd_case(r, gen))
    register(f"grouped_fwd_gather[routing={_r},{_shape(_G)}]", ("grouped_mm", "dense_mm"),
             lambda gen, r=_r: grouped_gather_case(r, gen))
    register(f"grouped_fwd_bwd[routing={_r},{_shape(_G)}]", ("grouped_mm", "dense_mm"),
             lambda gen, r=_r: grouped_fwd_bwd_case(r, gen))
    register(f"moe_layer_fwd[routing={_r},{_shape(_L)}]", ("moe_layer", "dense_mlp"),
             lambda gen, r=_r: layer_case(r, gen))
    register(f"moe_layer_fwd_bwd[routing={_r},{_shape(_L)}]", ("moe_layer", "dense_mlp"),  # no target
             lambda gen, r=_r: layer_case(r, gen, backward=True))


def layer_case(routing: str, gen: torch.Generator, backward: bool = False) -> Case:
    """Routing + gather + grouped expert MLP + weighted combine vs a dense MLP of equal FLOPs (D -> k*H -> D)."""
    T, k, E, D = CPU["layer_tokens"], CPU["layer_k"], CPU["experts"], CPU["K"]
    H = CPU["N"]
    randn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    x = randn(T, D)
    router = randn(D, E) / math.sqrt(D)
    bias = routing_bias(E, routing)
    moe_p = [randn(E, D, H) / math.sqrt(D), randn(E, H), randn(E, H, D) / math.sqrt(H), randn(E, D)]
    dense_p = [randn(D, k * H) / math.sqrt(D), randn(k * H), randn(k * H, D) / math.sqrt(H), randn(D)]
    dy = randn(T, D)
    if backward:
        for p in moe_p + dense_p + [router]:
            p.requires_grad_(True)

    def moe():
        plan = topk_route(x @ router + bias, k, backend="torch")
        out = moe_mlp(x, plan, *moe_p, backend="torch")
        if backward:
            for p in moe_p + [router]:
                p.grad = None
            out.backward(dy)

    def dense():
        w1, b1, w2, b2 = dense_p
        out = torch.addmm(b2, torch.relu(torch.addmm(b1, x, w1)), w2)
        if backward:
            for p in dense_p:
                p.grad = None
            out.backward(dy)

    flops = 4.0 * T * k * D * H * (3 if backward else 1)
    return Case("", {"moe_layer": moe, "dense_mlp": dense}, {"moe_layer": flops, "dense_mlp": flops},
                [("moe_layer", "dense_mlp", "<=", 1.4 if backward else 1.3)])


def route_case(gen: torch.Generator) -> Case:
    """topk_route on [8192, 64] logits against the grouped forward of the first case (balanced)."""
    c = CPU
    logits = torch.randn(c["route_tokens"], c["route_experts"], generator=gen)
    M, E, K, N = c["rows"], c["experts"], c["K"], c["N"]
    x, w = torch.randn(M, K, generator=gen), torch.randn(E, K, N, generator=gen)
    off = offsets_of(torch.arange(M) * E // M, E)
    return Case("",
                {"topk_route": lambda: topk_route(logits, c["route_k"], backend="torch"),
                 "grouped_fwd": lambda: grouped_mm(x, w, off, backend="torch")},
                {}, [("topk_route", "grouped_fwd", "<=", 0.1)])


def train_step_case(gen: torch.Generator) -> Case:
    """One SGD step of an MoE MLP layer (E = 16, k = 1): routed experts vs every expert on every sample."""
    c = CPU
    T, E, k, D, H = c["step_tokens"], c["step_experts"], c["step_k"], c["step_D"], c["step_H"]
    randn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    x, target = randn(T, D), randn(T, D)
    params = [randn(D, E) / math.sqrt(D), randn(E, D, H) / math.sqrt(D), torch.zeros(E, H),
              randn(E, H, D) / math.sqrt(H), torch.zeros(E, D)]
    params = [p.requires_grad_(True) for p in params]

    def sgd(loss):
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 1e-3 * p.grad
                p.grad = None

    def routed():
        r, w1, b1, w2, b2 = params
        sgd(torch.nn.functional.mse_loss(moe_mlp_layer(x, r, w1, b1, w2, b2, k, backend="torch"), target))

    def every_expert():  # the seed code's way: all E experts on all T samples, mixed by the same top-k gates
        r, w1, b1, w2, b2 = params
        plan = topk_route(x @ r, k, backend="torch")
        gates = torch.zeros(T, E).scatter(1, plan.expert_ids, plan.weights)
        h = torch.relu(torch.einsum("td,edh->teh", x, w1) + b1)
        y = torch.einsum("teh,ehd->ted", h, w2) + b2
        sgd(torch.nn.functional.mse_loss(torch.einsum("te,ted->td", gates, y), target))

    return Case("",
                {"routed": routed, "every_expert": every_expert}, {},
                [("every_expert", "routed", ">=", 0.7 * E / k)])


register(f"topk_route[{_shape((('T', 'route_tokens'), ('E', 'route_experts'), ('k', 'route_k')))}]",
         ("topk_route", "grouped_fwd"), route_case)
register(f"train_step[{_shape((('T', 'step_tokens'), ('E', 'step_experts'), ('k', 'step_k'), ('D', 'step_D'), ('H', 'step_H')))}]",
         ("routed", "every_expert"), train_step_case)
