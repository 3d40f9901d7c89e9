"""Seeds trained together: S runs of one configuration that differ only in ``seed``, as one stacked model.

``train_stacked(config, seeds, data) -> [record per seed]`` gives the records S separate ``moe.training.loop.run`` calls
give, equal within 1e-5 (the int8 weight images of ``views`` within one quantisation step; ``tests/moe/test_stacked.py``),
at the per-step cost of about one run: every
parameter holds a leading seed axis [S, ...], each seed keeps its own initialisation (``moe.training.loop.set_up``
with its seed: the same draw as its own run), its own batch order (its own generator) and its own record.

The step: the S batches [S, B, ...] go through the gate (a batched matmul per layer over the stacked gate
parameters; ``torch.func.stack_module_state`` stacks the S models), the experts (one batched matmul over the
S seeds, each the product of a run's dense experts: x against every expert's weights side by side,
``kernels.dense``) and the mixture (over each sample's
experts in the routing plan's slot order, as a run sums them); the loss is the sum of
the S seeds' losses, so each seed's gradient is that of its own loss (the seeds share no parameter). The
optimizer is torch's over the stacked parameters, with the groups of ``moe.training.optim.build_optimizer`` (the gate,
each expert with its learning rate): Adam, RMSprop and SGD are elementwise (every seed's slice sees only its
own gradient and state, and every parameter steps at every step, so the shared step count is each seed's), so
one optimizer over stacked parameters is S per-seed optimizers.

The numbers agree within float32 rounding, not bitwise: the forward products are mostly a run's (a batched matmul
gives a run's addmm bits at the benchmark's shapes, not at every shape), and the weight gradients of batched
products sum their rows in another order.

Supported (``problems(cfg)`` says why not, one line per field): the softmax router (soft routing), the topk router
(without noise) and the expert_choice router with a linear or mlp gate, and the hash router; linear experts, the
mixture_nll and expectation objectives, no regulariser, the joint regime, Adam / SGD / RMSprop. A seed whose loss,
gradients, gate logits or parameters become non-finite makes every seed run separately instead (each record then
says so in ``stacked.fallback``), so a diverged record is that of its run.

Letters: S seeds, B samples in a batch, D input features, E experts, C classes, H gate width.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import stack_module_state
from torch.nn import functional as F

from kernels import dense_route, topk_route
from moe.training import loop, optim
from moe.config import Config, ConfigError
from moe.data import Dataset
from moe.model import checked_config
from moe.records.provenance import provenance
from moe.training.epoch_stats import FLUSH_FLOATS, runs as equal_runs
from moe.training.epochs import all_finite, step_checked
from moe.training.evaluate import validation_pass
from moe.routers.base import capacity_slots
from moe.scoring.saturation import saturation_k


ROUTERS = ("softmax", "topk", "hash", "expert_choice")  # dense softmax (k = E), top-k without noise, hash, expert choice
GATES = ("linear", "mlp")
OBJECTIVES = ("mixture_nll", "expectation")
EXPECTATION_EPS = 1e-7
REGULARISERS = ("importance_loss", "load_loss", "switch_loss", "z_loss", "similarity_same", "similarity_diff", "match_loss")


def problems(cfg: Config) -> list[str]:
    """Why ``cfg``'s seeds cannot be trained stacked (empty: they can), one line per field, with the valid choices."""
    out = []
    rule = lambda ok, line: ok or out.append(line)  # noqa: E731
    rule(cfg.router in ROUTERS, f"router: stacked seeds support the routers {', '.join(ROUTERS)}, got {cfg.router!r}")
    rule(not cfg.noisy_gate, f"noisy_gate: stacked seeds support the topk router without noise, got {cfg.noisy_gate!r}")
    rule(cfg.gate in GATES, f"gate: stacked seeds support gates {', '.join(GATES)}, got {cfg.gate!r}")
    rule(cfg.routing == "soft", f"routing: stacked seeds support soft routing only (every expert weighted), got {cfg.routing!r}")
    rule(cfg.expert == "linear", f"expert: stacked seeds support linear experts only, got {cfg.expert!r}")
    rule(cfg.objective in OBJECTIVES, f"objective: stacked seeds support {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    rule(cfg.regime == "joint", f"regime: stacked seeds support the joint regime only, got {cfg.regime!r}")
    rule(cfg.match_router is None, f"match_router: stacked seeds support no router matching, got {cfg.match_router!r}")
    for name in REGULARISERS:
        rule(getattr(cfg, name) == 0, f"{name}: stacked seeds support no regulariser, got {getattr(cfg, name)!r}")
    return out


class StackedMixture:
    """The S seeds' models as one: stacked parameters and the functional forward of the supported mixture."""

    def __init__(self, runs: list[loop.Training]):
        self.runs = runs
        self.models = [t.model for t in runs]
        params, _ = stack_module_state(self.models)  # name -> [S, ...] leaves that require grad
        self.params = params
        gate = getattr(runs[0].model.router, "gate", None)  # the hash router has none
        self.gate_layers = [] if gate is None else [(f"router.gate.{n}" if n else "router.gate", m) for n, m in gate.named_modules()
                                                    if not isinstance(m, nn.Sequential)]
        self.n_experts = runs[0].model.experts.n_experts
        self.gate_names = [n for n in params if n.startswith("router.gate.")]
        self.expert_names = [[f"experts.experts.{e}.weight", f"experts.experts.{e}.bias"] for e in range(self.n_experts)]
        cfg = runs[0].cfg
        self.router = cfg.router
        self.k = {"topk": cfg.top_k, "hash": 1}.get(cfg.router, self.n_experts)  # slots per sample (expert choice: varies)
        self.capacity = 1.0 if cfg.capacity is None else cfg.capacity  # expert choice's capacity factor

    def optimizer(self, cfg: Config) -> torch.optim.Optimizer:
        """``moe.training.optim.build_optimizer``'s groups and optimizer over the stacked parameters."""
        groups = [{"name": "gate", "params": [self.params[n] for n in self.gate_names],
                   "lr": cfg.lr if cfg.gate_lr is None else cfg.gate_lr}]
        for e, lr in enumerate(cfg.expert_learning_rates()):
            groups.append({"name": f"expert{e}", "params": [self.params[n] for n in self.expert_names[e]], "lr": lr})
        return optim.for_config(cfg, [g for g in groups if g["params"]])  # the hash router has no gate parameters

    def log_probs(self, x: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x [S, B, ...] -> (mixture log-probabilities [S, B, C], each sample's experts [S, B, k] (the routing plan's
        slots: descending weight, ties to the lower expert), their weights [S, B, k], every expert's log-probs
        [S, B, E, C]). Every expert is evaluated (an unrouted one gets a zero gradient, as a run's empty group)."""
        flat = x.flatten(2)  # [S, B, D] the linear and mlp gates read the flattened input
        ids, w = self.route(x, flat, temperature)  # [S, B, k]
        S, B, D = flat.shape
        E = self.n_experts
        we = torch.stack([self.params[n] for n, _ in self.expert_names], 1).flatten(1, 2)  # [S, E * C, D]
        be = torch.stack([self.params[n] for _, n in self.expert_names], 1).flatten(1, 2)  # [S, E * C]
        logits_e = torch.baddbmm(be[:, None, :], flat, we.transpose(1, 2))  # [S, B, E * C]: each seed's x W^T + b
        expert_lp = torch.log_softmax(logits_e.view(S, B, E, -1), -1)  # [S, B, E, C]
        # the mixture over slots in the routing plan's order (descending weight, ties to the lower expert), as a run sums them
        C = expert_lp.shape[-1]
        slots = expert_lp.gather(2, ids.clamp_min(0)[..., None].expand(-1, -1, -1, C))  # [S, B, k, C]
        if self.router != "expert_choice":  # every slot holds an expert
            return torch.logsumexp(w.clamp_min(1e-30).log()[..., None] + slots, 2), ids, w, expert_lp
        valid = ids >= 0  # unused slots (-1): no term; a sample no expert took: the uniform 1 / C (moe.model)
        log_w = torch.where(valid, w.clamp_min(1e-30).log(), -math.inf)
        # unused slots read 0, as a run's appended zero row: the NaN that logsumexp's backward gives a sample no expert
        # took (all terms -inf) stops at the two wheres instead of reaching expert 0
        slots = torch.where(valid[..., None], slots, 0.0)
        mixed = torch.logsumexp(log_w[..., None] + slots, 2)  # [S, B, C]
        return torch.where(valid.any(2, keepdim=True), mixed, torch.full_like(mixed, -math.log(C))), ids, w, expert_lp

    def route(self, x: Tensor, flat: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
        """Each sample's experts and weights [S, B, k], in the routing plan's slot order, as each seed's router gives them."""
        if self.router == "hash":  # each seed's own fixed projection (its router's float64 bucket), weight 1
            ids = torch.stack([t.model.router.bucket(x[s]) for s, t in enumerate(self.runs)])[..., None]
            return ids, torch.ones(ids.shape, device=x.device)
        logits = self.gate_forward(flat) / temperature  # [S, B, E]
        if not bool(torch.isfinite(logits).all()):
            raise FloatingPointError("non-finite gate logits in training")
        S, B, E = logits.shape
        if self.router == "expert_choice":
            return self.expert_choice(torch.softmax(logits, -1))
        # the kernels' routing on the S x B rows (row by row what each seed's run computes); softmax: every expert,
        # raw weights, of the logits checked finite above
        rows = logits.reshape(S * B, E)
        plan = topk_route(rows, self.k, renormalize=self.k > 1) if self.router == "topk" else dense_route(rows)
        return plan.expert_ids.view(S, B, self.k), plan.weights.view(S, B, self.k)

    def expert_choice(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Expert-choice routing of each seed's batch (``moe.routers.expert_choice``: expert e takes the
        ceil(c B / E) samples with the largest scores[:, e], weight the score), as its run's plan lays it out
        (``kernels.RoutingPlan.from_assignments``: each sample's slots by descending weight, ties to the lower expert),
        every seed at once; the seeds' slots padded to the most slots any sample has (-1, weight 0). The same integers
        and weights as a plan per seed (stable sorts along each seed's row are that seed's sorts), without the plan's
        grouping by expert, which the stacked step does not read."""
        S, B, E = scores.shape
        k = capacity_slots(self.capacity, B, E)
        weight, token = scores.topk(k, dim=1)  # [S, k, E]: each seed's experts' (columns') top-k samples
        token, weight = token.transpose(1, 2).flatten(1), weight.transpose(1, 2).flatten(1)  # [S, A]: expert-major
        A = token.shape[1]  # already sorted by expert: sort by (sample, -weight, expert) with two stable sorts
        perm = torch.sort(-weight.detach(), dim=1, stable=True).indices
        perm = perm.gather(1, torch.sort(token.gather(1, perm), dim=1, stable=True).indices)
        tok = token.gather(1, perm)  # [S, A] each assignment's sample, in slot order
        per_token = torch.zeros(S, B, dtype=torch.long, device=scores.device).scatter_add_(1, token, torch.ones_like(token))
        width = max(1, int(per_token.max()))
        first = per_token.cumsum(1) - per_token
        slot = tok * width + (torch.arange(A, device=scores.device) - first.gather(1, tok))
        expert = torch.arange(E, device=scores.device).repeat_interleave(k).expand(S, -1)  # [S, A] expert-major
        ids = torch.full((S, B * width), -1, dtype=torch.long, device=scores.device).scatter_(1, slot, expert.gather(1, perm))
        w = torch.zeros(S, B * width, dtype=weight.dtype, device=scores.device).scatter(1, slot, weight.gather(1, perm))
        return ids.view(S, B, width), w.view(S, B, width)

    def gate_forward(self, h: Tensor) -> Tensor:
        """The gate network (an nn.Sequential of Linear and ReLU layers, or one Linear) on [S, B, D], each seed
        with its own weights: a batched matmul per layer."""
        for name, module in self.gate_layers:
            if isinstance(module, nn.Linear):
                w, b = self.params[f"{name}.weight"], self.params[f"{name}.bias"]  # [S, out, in], [S, out]
                h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            elif isinstance(module, nn.ReLU):
                h = torch.relu(h)
            elif not isinstance(module, (nn.Identity, nn.Flatten, nn.Sequential)):
                raise ValueError(f"stacked seeds: no stacked form of gate layer {type(module).__name__}")
        return h

    def write_back(self) -> None:
        """Each seed's slice of the stacked parameters into its own model (for its evaluation and record)."""
        with torch.no_grad():
            for s, model in enumerate(self.models):
                for name, p in model.named_parameters():
                    p.copy_(self.params[name][s])


def task_loss(objective: str, mixed: Tensor, y: Tensor) -> Tensor:
    """[S]: each seed's mean task loss (``moe.objectives.task``: mixture_nll, expectation)."""
    log_p = mixed.gather(2, y[..., None])[..., 0]  # [S, B]
    if objective == "expectation":
        log_p = torch.logaddexp(log_p, log_p.new_tensor(math.log(EXPECTATION_EPS)))
    return -log_p.mean(1)


class SeedStats:
    """Each seed's epoch statistics (``moe.training.epochs.train_epoch``'s keys, ``moe.training.epoch_stats``'s definitions): the share
    of samples whose first slot is each expert, each expert's mean routing weight (0 where not routed), its mean
    NLL over the samples routed to it (None if none).

    Each step only keeps (detached) what the statistics are made of; they are reduced together when the epoch ends
    (or when the kept tensors pass ``moe.training.epoch_stats.FLUSH_FLOATS`` floats), in the order and with the
    arithmetic of step-by-step reductions, so every number is bitwise theirs (``moe.training.epoch_stats`` says how):
    float64 sums of loss * B in step order, float32 sums of the same for ``loss_task``, integer counts, each step's
    float32 column sums of the dense weights then float64 sums in step order, float64 scatter-adds of the routed
    NLL in step, sample, slot order."""

    def __init__(self, S: int, E: int, device: torch.device):
        self.S, self.E = S, E
        self.correct = torch.zeros(S, dtype=torch.long, device=device)
        self.top = torch.zeros(S, E, dtype=torch.long, device=device)
        self.weight = torch.zeros(S, E, dtype=torch.float64, device=device)
        self.nll = torch.zeros(S, E, dtype=torch.float64, device=device)
        self.pairs = torch.zeros(S, E, dtype=torch.long, device=device)
        self.dropped = torch.zeros(S, dtype=torch.long, device=device)
        self.losses: list[Tensor] = []  # [S] per step
        self.sizes: list[int] = []  # B per step
        self.kept: list[tuple[Tensor, ...]] = []  # per step: mixed, ids, w, expert_lp, y (not yet reduced)
        self.kept_sizes: list[int] = []
        self.kept_floats = 0
        self.seen = 0

    def add(self, losses: Tensor, mixed: Tensor, ids: Tensor, w: Tensor, expert_lp: Tensor, y: Tensor) -> None:
        """One step of every seed: losses [S], mixed [S, B, C], ids and w [S, B, k], expert_lp [S, B, E, C], y [S, B]
        (all detached)."""
        B = ids.shape[1]
        self.losses.append(losses)
        self.sizes.append(B)
        self.kept.append((mixed, ids, w, expert_lp, y))
        self.kept_sizes.append(B)
        self.kept_floats += expert_lp.numel()
        self.seen += B
        if self.kept_floats >= FLUSH_FLOATS:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Reduce the kept steps into the running counts and sums, in step order."""
        if not self.kept:
            return
        k = max(t[1].shape[2] for t in self.kept)  # slots per sample may vary by step (expert choice): pad them unused
        kept = [(m, F.pad(i, (0, k - i.shape[2]), value=-1), F.pad(w, (0, k - i.shape[2])), lp, y)
                if i.shape[2] < k else (m, i, w, lp, y) for m, i, w, lp, y in self.kept]
        mixed, ids, w, expert_lp, y = (torch.cat(t, 1) for t in zip(*kept))  # [S, N, ...]: the steps' samples in order
        S, N, E = ids.shape[0], ids.shape[1], self.E
        self.correct += (mixed.argmax(2) == y).sum(1)
        valid, at = ids >= 0, ids.clamp_min(0)  # unused slots (-1, expert choice) count nowhere
        top = ids[..., 0]
        self.top += (F.one_hot(top.clamp_min(0), E) * (top >= 0)[..., None]).sum(1)
        self.dropped += (top < 0).sum(1)
        dense = torch.zeros(S, N, E, dtype=w.dtype, device=w.device).scatter_add(2, at, torch.where(valid, w, 0))
        sums, start = [], 0  # each step's column sums [S, E], runs of equal-sized steps reduced in one op
        for size, run in equal_runs(self.kept_sizes):
            sums.append(dense[:, start:start + size * run].reshape(S, run, size, E).sum(2))
            start += size * run
        steps = torch.cat(sums, 1).double().transpose(0, 1)  # [steps, S, E]
        self.weight = torch.cat([self.weight[None], steps]).cumsum(0)[-1]  # float64 sums in step order
        nll = -expert_lp.gather(3, y[:, :, None, None].expand(-1, -1, E, 1))[..., 0]  # [S, N, E]
        self.nll.scatter_add_(1, at.flatten(1), torch.where(valid, nll.gather(2, at), 0).flatten(1).double())
        self.pairs.scatter_add_(1, at.flatten(1), valid.flatten(1).long())
        self.kept, self.kept_sizes, self.kept_floats = [], [], 0

    def finish(self) -> None:
        """The epoch's last reductions: the kept steps, and the loss sums (float64 ``train_loss``, float32 ``loss_task``)."""
        self.flush()
        losses = torch.stack(self.losses)  # [steps, S]
        sizes = torch.tensor(self.sizes, device=losses.device)[:, None]
        zero = torch.zeros(1, losses.shape[1], dtype=torch.float64, device=losses.device)
        self.loss = torch.cat([zero, losses.double() * sizes.double()]).cumsum(0)[-1]  # sequential float64 sums
        task = torch.zeros(losses.shape[1], dtype=torch.float32, device=losses.device)
        for value in losses.float() * sizes.float():  # value * B rounded to float32, then added in float32
            task = task + value
        self.task = task

    def of(self, s: int) -> dict[str, Any]:
        n = self.seen
        loss = float(self.loss[s]) / n
        return {"train_loss": loss, "train_accuracy": int(self.correct[s]) / n, "loss_task": float(self.task[s]) / n,
                "expert_share": (self.top[s].double() / n).tolist(), "expert_weight": (self.weight[s] / n).tolist(),
                "expert_loss": [float(v / c) if c > 0 else None for v, c in zip(self.nll[s].tolist(), self.pairs[s].tolist())],
                "dropped": int(self.dropped[s]) / n}


def train_stacked(config: Config | dict[str, Any], seeds: list[int], data: Dataset | dict | None = None) -> list[dict[str, Any]]:
    """The records of ``moe.training.loop.run(config with seed s)`` for each s in ``seeds``, trained as one stacked model
    (within 1e-5 of the separate runs). Raises ``ConfigError`` for a config the stacked path does not support."""
    started = time.perf_counter()
    base = checked_config(config)
    if problems(base):
        raise ConfigError(problems(base))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: need distinct seeds, got {seeds}")
    cfgs = [dataclasses.replace(base, seed=s) for s in seeds]
    device = loop.resolve_device(base.device)
    if base.threads:
        torch.set_num_threads(base.threads)
    given, data = data, loop.checked_data(base, data)  # the data as given, for a fallback run to prepare itself
    runs = [loop.set_up(c, data, device) for c in cfgs]  # each seed's own initial model and batch order
    try:
        stack = StackedMixture(runs)
        fit(stack, base, runs, started)
    except FloatingPointError as err:  # some seed diverged: every seed as its own run, so its record is exact
        return [dict(loop.run(c, data=given), stacked={"seeds": len(seeds), "fallback": str(err)}) for c in cfgs]
    stack.write_back()
    shared = provenance(data, device, started)  # one block for every seed: the same data, device, start and checkout
    return [dict(loop.finish(t, started, None, copy.deepcopy(shared)), stacked={"seeds": len(seeds), "fallback": None})
            for t in runs]


def stacked_epoch(stack: StackedMixture, optimizer: torch.optim.Optimizer, cfg: Config, runs: list[loop.Training],
                  temperature: float) -> SeedStats:
    """One training epoch of every seed together (each seed's own shuffled batches); the seeds' statistics.
    Raises FloatingPointError at the first non-finite loss or gradient. The step is a run's
    (``moe.training.epochs.step_checked``) on the seeds' summed loss."""
    x, y, S = runs[0].x_train, runs[0].y_train, len(runs)
    stats = SeedStats(S, stack.n_experts, y.device)
    orders = [torch.randperm(len(y), generator=t.batch_order).to(y.device).split(cfg.batch_size) for t in runs]
    for batch in zip(*orders):
        idx = torch.stack(batch)  # [S, B] each seed's own batch
        yb = y[idx]
        mixed, ids, w, expert_lp = stack.log_probs(x[idx], temperature)
        losses = task_loss(cfg.objective, mixed, yb)  # [S]
        if step_checked(losses.sum(), optimizer, stack) is not None:
            raise FloatingPointError("non-finite training loss" if not bool(torch.isfinite(losses).all())
                                     else "non-finite gradients")
        stats.add(losses.detach(), mixed.detach(), ids, w.detach(), expert_lp.detach(), yb)
    stats.finish()
    return stats


def fit(stack: StackedMixture, cfg: Config, runs: list[loop.Training], started: float) -> None:
    """The joint phase's epochs for every seed together; each seed's history as its run writes it."""
    optimizer = stack.optimizer(cfg)
    for t in runs:
        t.train_started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        temperature = loop.temperature_at(cfg, epoch)
        stats = stacked_epoch(stack, optimizer, cfg, runs, temperature)
        if not all_finite([p.detach() for p in stack.params.values()]):
            raise FloatingPointError("non-finite parameters after the epoch's last step")
        stack.write_back()
        for s, t in enumerate(runs):
            t.epoch = t.gate_epochs = epoch
            t.model.set_temperature(temperature)
            metrics = {"epoch": epoch, "phase": "joint", "phase_epoch": epoch, **stats.of(s), "finite": True}
            metrics.pop("finite")
            if t.x_val is not None:  # the held-out scores of the epoch: the validation split's (as moe.training.loop)
                metrics["val_accuracy"], metrics["val_loss"], t.val_sets[epoch] = validation_pass(
                    t.model, t.x_val, t.y_val, t.eval_batch, saturation_k(cfg.router, cfg.top_k))
            metrics.update(temperature=t.model.router.temperature, epoch_s=time.perf_counter() - t0)
            t.history.append(metrics)
