"""One training run of the mixture-of-experts language model on a text dataset (``moe.lm``, ``moe.data.text``):
``run_lm(config, data=None, on_epoch=None) -> record``, which ``moe.train.run`` calls for a text dataset.

Windows: a split's bytes cut into consecutive windows of ``context`` + 1 bytes (the inputs, and the same shifted
by one as the targets); documents follow each other in a split, so a window may cross from one into the next. An
epoch is ``n_train`` training windows (a random subset of the split's, drawn once from ``data_seed``; all when
null) in a fresh order (``seed``). The validation and test splits are scored on ``n_test`` windows each, evenly
spaced over the split. The loss is the mean next-byte cross-entropy in nats; bits per byte = loss / ln 2.

The record holds, besides the usual fields, the unigram baseline (the training split's byte frequencies, add-one
smoothed, scored on the same windows), the per-layer token scores of the validation split's routing trace
(``moe.scoring.token_scores``, read from the trace only), router saturation per layer at :data:`SATURATION_POINTS`
points of training against the end (OLMoE's, on the validation windows), and the causal score: the increase in
each domain's loss when one expert of one layer is removed (its router routes around it).

Device: the model, its batches, its loss and its evaluations run on the config's ``device`` (``moe.validate.
resolve_device``: one line, before any work, when it asks for an absent CUDA device); each split's bytes are copied
there once, its labels stay on the CPU. What leaves the device (the losses summed per domain, the routing trace, the
saturation snapshots) is moved to the CPU where it is read, so the scores and traces never see a device tensor. On the
CPU the numbers are those of a run that never heard of devices.

Letters: B windows in a batch, S = context positions, T = B x S tokens, V = 256 byte values, D domains, E experts.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
import types
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from moe.config import Config
from moe.data import DATASETS
from moe.config import ConfigError
from moe.data.text import TextDataError, TextDataset, TextSplit, is_text_dataset  # noqa: F401  (TextDataError: re-exported)
from moe.lm import MoELanguageModel, build_lm, lm_parameter_counts
from moe.objectives.base import REGULARISERS
from moe.records.provenance import provenance
from moe.training import optim
from moe.training.checkpoint import TrainState, capture_lm_state, load_state, restore_lm_state
from moe.records.record import language_model_record, out_problem, versions
from moe.routers import NonFiniteError
from moe.records import trace as tr
from moe.scoring import token_scores
from moe.validate import resolve_device

CLIP_NORM = 1.0  # gradient norm clipping, as GPT-2-style training does
SATURATION_POINTS = 8  # routing snapshots across training (and the end) for router saturation
SATURATION_WINDOWS = 32  # validation windows (evenly spaced over the split) whose routing the snapshots keep
CAUSAL_WINDOWS = 64  # validation windows (evenly spaced) the causal score evaluates per removed expert
EVAL_WINDOWS_PER_BATCH = 32


def load_text(cfg: Config) -> TextDataset:
    return DATASETS.get(cfg.dataset, field="dataset")(root=cfg.data_root, seed=cfg.data_seed)


def window_starts(n_tokens: int, context: int) -> torch.Tensor:
    """Starts of the consecutive windows of context + 1 bytes (inputs s..s+C-1, targets s+1..s+C)."""
    return torch.arange(0, max(0, n_tokens - context), context)


def evenly_spaced(starts: torch.Tensor, n: int | None) -> torch.Tensor:
    if n is None or n >= len(starts):
        return starts
    return starts[torch.linspace(0, len(starts) - 1, n).round().long().unique()]


def on_device(split: TextSplit, device: torch.device) -> TextSplit:
    """The split with its bytes on ``device`` (the model's inputs and targets); its labels stay on the CPU."""
    return dataclasses.replace(split, tokens=split.tokens.to(device))


def batch_of(split: TextSplit, starts: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) [B, S] of the windows starting at ``starts`` (CPU), on the device of the split's bytes."""
    device = split.tokens.device
    idx = starts.to(device)[:, None] + torch.arange(context + 1, device=device)  # [B, S + 1]
    tokens = split.tokens[idx]
    return tokens[:, :-1], tokens[:, 1:]


def regularisers(cfg: Config) -> list[tuple[Any, float]]:
    return [(r, getattr(cfg, r.field)) for r in map(REGULARISERS.get, REGULARISERS) if getattr(cfg, r.field) != 0]


def lm_loss(model: MoELanguageModel, x: torch.Tensor, y: torch.Tensor, terms) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, next-byte cross-entropy): the task loss plus each regulariser's coefficient times its mean over
    the MoE layers (each layer's routing is one batch of T tokens)."""
    out = model(x)
    task = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y.reshape(-1))
    total = task
    routings = [r for r in out.routings if r is not None]
    for reg, coefficient in terms:
        value = sum(reg.fn(types.SimpleNamespace(routing=r), x) for r in routings) / len(routings)
        total = total + coefficient * value
    return total, task


@torch.no_grad()
def evaluate_split(model: MoELanguageModel, split: TextSplit, starts: torch.Tensor, context: int, n_domains: int,
                   keep_trace: bool = False) -> tuple[dict[str, Any], dict | None]:
    """Loss and bits per byte over the windows, per domain of the target byte too; with ``keep_trace`` the
    routing of every input token (expert ids, weights, logits per MoE layer) and its labels, on the CPU.
    ``split``: its bytes on the model's device, its labels on the CPU (:func:`on_device`)."""
    model.eval()
    nll_sum, count = torch.zeros(n_domains, dtype=torch.float64), torch.zeros(n_domains, dtype=torch.float64)
    kept: dict[str, list] = {"tokens": [], "document": [], "domain": [], "sequence": [], "layers": []}
    for b0 in range(0, len(starts), EVAL_WINDOWS_PER_BATCH):
        s = starts[b0:b0 + EVAL_WINDOWS_PER_BATCH]
        x, y = batch_of(split, s, context)
        out = model(x)
        nll = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y.reshape(-1), reduction="none").double().cpu()
        idx = (s[:, None] + 1 + torch.arange(context)).reshape(-1)  # the targets' positions
        dom = split.domain[idx]
        nll_sum.index_add_(0, dom, nll)
        count.index_add_(0, dom, torch.ones_like(nll))
        if keep_trace:
            inputs = (s[:, None] + torch.arange(context)).reshape(-1)
            kept["tokens"].append(split.tokens[inputs.to(split.tokens.device)].cpu())
            kept["document"].append(split.document[inputs])
            kept["domain"].append(split.domain[inputs])
            kept["sequence"].append((b0 + torch.arange(len(s)))[:, None].expand(-1, context).reshape(-1))
            kept["layers"].append([(r.plan.expert_ids.cpu(), r.plan.weights.cpu(), r.logits.cpu())
                                   for r in out.routings if r is not None])
    model.train()
    total = float(nll_sum.sum() / count.sum())
    per_domain = [float(n / c) / math.log(2) if c > 0 else None for n, c in zip(nll_sum, count)]
    result = {"loss": total, "bits_per_byte": total / math.log(2), "domain_bits_per_byte": per_domain,
              "n_tokens": int(count.sum())}
    return result, (kept if keep_trace else None)


def unigram_bits(train: TextSplit, split: TextSplit, starts: torch.Tensor, context: int, vocab: int) -> float:
    """Cross-entropy in bits per byte of the training split's add-one smoothed byte frequencies on the windows' targets."""
    p = (torch.bincount(train.tokens, minlength=vocab).double() + 1)
    p = p / p.sum()
    idx = (starts[:, None] + 1 + torch.arange(context)).reshape(-1)
    return float(-torch.log2(p[split.tokens[idx]]).mean())


def make_trace(kept: dict, data: TextDataset, model: MoELanguageModel, source: dict) -> tr.Trace:
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    layers = []
    for i in range(len(model.moe_layers)):
        ids = torch.cat([b[i][0] for b in kept["layers"]])
        w = torch.cat([b[i][1] for b in kept["layers"]]).float()
        logits = torch.cat([b[i][2] for b in kept["layers"]]).float()
        layers.append(tr.LayerRouting(ids.numpy().astype(np.int32), w.numpy(), logits.numpy()))
    return tr.check(tr.Trace(cat(kept["tokens"]).astype(np.int32), cat(kept["document"]).astype(np.int32),
                             cat(kept["domain"]).astype(np.int32), cat(kept["sequence"]).astype(np.int32), layers,
                             [f"block {i}" for i in model.moe_layers], [r.n_experts for r in model.routers()],
                             list(data.domain_names), list(data.document_names), source))


@torch.no_grad()
def routing_snapshot(model: MoELanguageModel, split: TextSplit, starts: torch.Tensor, context: int) -> list[np.ndarray]:
    """[N, k] expert ids per MoE layer for the saturation windows (evaluation mode)."""
    _, kept = evaluate_split(model, split, starts, context, 1 + int(split.domain.max()), keep_trace=True)
    return [torch.cat([b[i][0] for b in kept["layers"]]).numpy() for i in range(len(model.moe_layers))]


def causal_scores(model: MoELanguageModel, split: TextSplit, starts: torch.Tensor, context: int,
                  domain_names: list[str]) -> list[dict]:
    """Per MoE layer: [D, E] the increase of each domain's validation loss (bits per byte) when expert e alone is
    removed, and its summaries: the mean over experts of the overall increase and of the largest domain's."""
    D = len(domain_names)
    full, _ = evaluate_split(model, split, starts, context, D)
    out = []
    for layer, router in zip(model.moe_layers, model.routers()):
        matrix = np.full((D, router.n_experts), np.nan)
        overall = []
        for e in range(router.n_experts):
            model.set_removed(layer, e)
            try:
                removed, _ = evaluate_split(model, split, starts, context, D)
            finally:
                model.set_removed(None, None)
            overall.append(removed["bits_per_byte"] - full["bits_per_byte"])
            for d in range(D):
                if full["domain_bits_per_byte"][d] is not None:
                    matrix[d, e] = removed["domain_bits_per_byte"][d] - full["domain_bits_per_byte"][d]
        present = matrix[~np.isnan(matrix).any(1)]
        out.append({"layer": f"block {layer}", "domain_increase_bits": token_scores.clean_matrix(matrix),
                    "causal_loss_increase": float(np.mean(overall)),
                    "causal_domain_increase": float(present.max(0).mean()) if len(present) else None})
    return out


def trace_problem(trace: str | None, dataset: str) -> str | None:
    """Why ``--trace`` cannot be written (None: it can, or none asked for)."""
    if trace is None:
        return None
    if not is_text_dataset(dataset):
        return f"--trace: routing traces are written for text datasets only; dataset {dataset!r} is not one"
    problem = out_problem(trace)
    return None if problem is None else problem.replace("--out", "--trace", 1)


def lm_summary(record: dict) -> str:
    """The one line ``python -m moe.train`` prints after a language model's run."""
    val, test = record["validation"], record["test"]
    return (f"status {record['status']}  validation bits per byte {val['bits_per_byte']:.4f} (unigram "
            f"{val['unigram_bits_per_byte']:.4f})  test bits per byte {test['bits_per_byte']:.4f}  "
            f"train {record['timing']['train_s']:.1f}s")


def build_optimizer(cfg: Config, model: MoELanguageModel) -> torch.optim.Optimizer:
    gate_ids = {id(p) for p in model.gate_parameters()}
    rest = [p for p in model.parameters() if id(p) not in gate_ids]
    groups = [{"params": rest, "lr": cfg.lr}]
    if gate_ids:
        groups.append({"params": model.gate_parameters(), "lr": cfg.gate_lr or cfg.lr})
    if cfg.optimizer == "adam":
        return optim.TorchAdam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    cls = optim.TorchSGD if cfg.optimizer == "sgd" else optim.TorchRMSprop
    return cls(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def run_lm(cfg: Config, data: TextDataset | None = None, on_epoch: Callable[[dict], Any] | None = None,
           progress: bool = False, trace_out: str | None = None, state: TrainState | bytes | None = None,
           on_state: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
    """Train the language model of ``cfg`` (validated) on its device and return its record; ``trace_out``: also
    write the validation split's routing trace there (``moe.records.trace``). ``data``: a loaded dataset, or its
    ``to_numpy()`` dict (a sweep's).

    Checkpoints, as ``moe.training.loop.run``'s: ``on_state(state_bytes)`` receives the whole training state
    (``moe.training.checkpoint.TrainState``: model, optimizer, generators, history, saturation snapshots) after each
    finished epoch, just before ``on_epoch``; ``state`` (such bytes or a ``TrainState``) continues the run from there
    with the numbers of a run never stopped (bitwise on the CPU), and the record says ``resumed_from_epoch``. A state
    another config wrote raises ``StateMismatch``."""
    started = time.perf_counter()
    if problem := trace_problem(trace_out, cfg.dataset):
        raise ConfigError([problem])
    device = resolve_device(cfg.device)  # an absent CUDA device: one line (ConfigError), before any work
    resumed = None if state is None else load_state(state, cfg)  # another config's state is refused here
    data = load_text(cfg) if data is None else (TextDataset.from_numpy(data) if isinstance(data, dict) else data)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    C = cfg.context
    train_starts = window_starts(len(data.train), C)
    if len(train_starts) == 0:
        raise ValueError(f"context: the training split has {len(data.train)} bytes, fewer than context + 1 = {C + 1}")
    if cfg.n_train is not None and cfg.n_train < len(train_starts):
        pick = torch.randperm(len(train_starts), generator=torch.Generator().manual_seed(cfg.data_seed))[:cfg.n_train]
        train_starts = train_starts[torch.sort(pick).values]
    val_starts = evenly_spaced(window_starts(len(data.validation), C), cfg.n_test)
    test_starts = evenly_spaced(window_starts(len(data.test), C), cfg.n_test)
    train, validation = on_device(data.train, device), on_device(data.validation, device)
    D = len(data.domain_names)

    # the model, optimizer and batch order, seeded (on the CPU, then moved: the same initial weights on every device)
    torch.manual_seed(cfg.seed)
    model = build_lm(cfg, data.vocab_size).to(device)
    optimizer = build_optimizer(cfg, model)
    terms = regularisers(cfg)
    order = torch.Generator().manual_seed(cfg.seed)
    n_batches = math.ceil(len(train_starts) / cfg.batch_size)
    total_steps = n_batches * cfg.epochs
    snap_every = max(1, total_steps // SATURATION_POINTS)
    sat_starts = evenly_spaced(val_starts, SATURATION_WINDOWS)
    history: list[dict[str, Any]] = []
    snapshots: list[tuple[int, list[np.ndarray]]] = []
    status, diverged, step, saved_s = "ok", None, 0, 0.0
    if resumed is not None:  # where the saved state stopped: after its epoch's last step
        snapshots = restore_lm_state(resumed, model, optimizer, order, device)
        history, saved_s = [dict(h) for h in resumed.history], resumed.train_s
        step = history[-1]["steps"] if history else 0

    train_t0 = time.perf_counter()
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = train_starts[torch.randperm(len(train_starts), generator=order)]
        losses = []  # the task loss of each step, on the device (read once, at the epoch's end)
        with tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, file=sys.stderr) as bar:
            for b0 in range(0, len(perm), cfg.batch_size):
                x, y = batch_of(train, perm[b0:b0 + cfg.batch_size], C)
                try:
                    total, task = lm_loss(model, x, y, terms)
                except NonFiniteError:
                    status, diverged = "diverged", {"epoch": epoch, "reason": "non-finite gate logits"}
                    break
                if not torch.isfinite(total):
                    status, diverged = "diverged", {"epoch": epoch, "reason": "non-finite training loss"}
                    break
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
                optimizer.step()
                losses.append(task.detach())
                step += 1
                if step % snap_every == 0 and step < total_steps:
                    snapshots.append((step, routing_snapshot(model, validation, sat_starts, C)))
                bar.update(1)
                if progress:
                    bar.set_postfix(loss=f"{float(losses[-1]):.3f}")
        if diverged:
            break
        val, _ = evaluate_split(model, validation, val_starts, C, D)
        metrics = {"epoch": epoch, "train_loss": float(np.mean(torch.stack(losses).tolist())), "val_loss": val["loss"],
                   "val_bits_per_byte": val["bits_per_byte"], "steps": step, "epoch_s": time.perf_counter() - t0}
        history.append(metrics)
        if on_state is not None:
            on_state(capture_lm_state(cfg, model, optimizer, order, device, epoch=epoch, history=history,
                                      train_s=saved_s + time.perf_counter() - train_t0, snapshots=snapshots).to_bytes())
        if on_epoch is not None and on_epoch(metrics):
            break
    train_s = saved_s + time.perf_counter() - train_t0
    record = language_model_record(status, diverged, cfg.to_dict(), lm_parameter_counts(model), history, data.describe())
    record["resumed_from_epoch"] = None if resumed is None else resumed.epoch
    t0 = time.perf_counter()
    if status == "ok":
        record.update(final_analyses(cfg, model, data, device, val_starts, test_starts, sat_starts, snapshots, step,
                                     trace_out))
    else:  # a diverged run is scored on nothing
        record.update({"validation": {}, "test": {}})
    record["timing"] = {"train_s": train_s, "eval_s": time.perf_counter() - t0, "total_s": time.perf_counter() - started}
    record["versions"] = versions()
    record["provenance"] = provenance(None, device, started)
    return record


SATURATION_TARGET = 0.9


def flat_layer_scores(layers: list[dict], causal: list[dict], saturation: list[dict]) -> dict[str, float | None]:
    """The per-layer scalars as flat keys for the sweep tables: ``<score>_layer<i>`` (i the MoE layer's place, 0 the
    first), and ``saturation_reached_layer<i>``: the share of training after which the layer's saturation stays at
    or above 0.9 (None: only at the end)."""
    out: dict[str, float | None] = {}
    for i, layer in enumerate(layers):
        for name in token_scores.LAYER_SCORES:
            out[f"{name}_layer{i}"] = layer[name]
        out[f"causal_domain_increase_layer{i}"] = causal[i]["causal_domain_increase"]
        steps, sat = saturation[i]["steps"], saturation[i]["saturation"]
        reached = [s for j, s in enumerate(steps) if all(v >= SATURATION_TARGET for v in sat[j:])]
        out[f"saturation_reached_layer{i}"] = reached[0] / steps[-1] if reached and reached[0] < steps[-1] else None
    return out


def final_analyses(cfg: Config, model: MoELanguageModel, data: TextDataset, device: torch.device, val_starts,
                   test_starts, sat_starts, snapshots, step: int, trace_out: str | None) -> dict[str, Any]:
    """The validation split's scores, trace and analyses, then the test split's loss (scored once, here). The model
    runs on ``device``; the trace, snapshots and losses it gives are on the CPU."""
    C, D = cfg.context, len(data.domain_names)
    validation, test_split = on_device(data.validation, device), on_device(data.test, device)
    val, kept = evaluate_split(model, validation, val_starts, C, D, keep_trace=True)
    trace = make_trace(kept, data, model, {"model": "moe_lm", "dataset": data.name, "split": "validation",
                                           "fingerprint": data.fingerprint, "tokens": "bytes"})
    if trace_out:
        tr.write(trace, trace_out)
    final = routing_snapshot(model, validation, sat_starts, C)
    saturation = [{"layer": f"block {layer}", "steps": [s for s, _ in snapshots] + [step],
                   "saturation": [token_scores.saturation(snap[i], final[i]) for _, snap in snapshots] + [1.0]}
                  for i, layer in enumerate(model.moe_layers)]
    test, _ = evaluate_split(model, test_split, test_starts, C, D)
    layers = token_scores.layer_scores(trace)
    causal = causal_scores(model, validation, evenly_spaced(val_starts, CAUSAL_WINDOWS), C, list(data.domain_names))
    per_domain = {"validation": val.pop("domain_bits_per_byte"), "test": test.pop("domain_bits_per_byte")}
    return {"validation": {**val, "unigram_bits_per_byte": unigram_bits(data.train, data.validation, val_starts, C, data.vocab_size),
                           **flat_layer_scores(layers, causal, saturation)},
            "test": {**test, "unigram_bits_per_byte": unigram_bits(data.train, data.test, test_starts, C, data.vocab_size)},
            "domain_bits_per_byte": per_domain,
            "token_scores": layers,
            "router_saturation": saturation,
            "causal": causal,
            "trace": {"format": tr.FORMAT, "version": tr.VERSION, "tokens": len(trace), "path": trace_out}}
