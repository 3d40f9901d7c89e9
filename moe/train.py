"""One training run: ``run(config, data=None, on_epoch=None) -> record``, a pure function of its config
and seed. ``python -m moe.train`` is a thin CLI over it.

``data`` lets a caller (a Ray trial) pass a dataset loaded once; ``on_epoch(metrics)`` reports progress
after every epoch and stops training early when it returns a true value.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Callable

import torch
from tqdm import tqdm

from moe.config import FIELD_TYPES, Config, ConfigError, as_config, from_dict, load_file
from moe.data import Dataset, load_for_config, subset
from moe.model import MixtureOfExperts, build_model
from moe.objectives import OBJECTIVES
from moe.routers import NonFiniteError
from moe.record import SCHEMA, error_record, versions, write_json_atomic

EVAL_BATCH = 1024


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["device: 'cuda' asked for but no CUDA device is available; valid choices here: cpu, auto"])
    return torch.device(name)


def build_optimizer(cfg: Config, model: MixtureOfExperts) -> torch.optim.Optimizer:
    """One parameter group for the router and one per expert, each with its own learning rate."""
    groups = [{"name": "gate", "params": list(model.router.parameters()), "lr": cfg.gate_lr or cfg.lr}]
    for e, (expert, lr) in enumerate(zip(model.experts.experts, cfg.expert_learning_rates())):
        groups.append({"name": f"expert{e}", "params": list(expert.parameters()), "lr": lr})
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}, "every parameter belongs to exactly one group"
    groups = [g for g in groups if g["params"]]  # a fixed (non-learned) router has no parameters
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train_epoch(model, optimizer, objective, x, y, batch_size: int, generator: torch.Generator,
                on_batch: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """One pass over shuffled mini-batches; returns mean loss, accuracy and each expert's share of samples.

    Stops at the first non-finite loss and reports it, leaving the parameters of the last good step.
    """
    model.train()
    n, n_experts = len(y), model.experts.n_experts
    total_loss, correct, seen = 0.0, 0, 0
    top_counts = torch.zeros(n_experts, dtype=torch.long, device=y.device)
    for idx in torch.randperm(n, generator=generator).to(y.device).split(batch_size):
        try:
            out = model(x[idx])
        except NonFiniteError:
            return {"train_loss": math.nan, "finite": False}
        loss = objective(out, y[idx])
        if not torch.isfinite(loss):
            return {"train_loss": float(loss.detach()), "finite": False}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(idx)
        correct += int((out.log_probs.argmax(1) == y[idx]).sum())
        seen += len(idx)
        top = out.routing.assignment()
        top_counts += torch.bincount(top[top >= 0], minlength=n_experts)
        if on_batch is not None:
            on_batch(1)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen,
            "expert_share": (top_counts.double() / seen).tolist(), "finite": True}


@torch.no_grad()
def predict(model: MixtureOfExperts, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> dict[str, torch.Tensor]:
    """Mixture predictions, top-weight expert, dense routing weights [N, E] and each expert's own predictions [N, E]."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {"log_probs": [], "preds": [], "assignment": [], "weights": [], "expert_preds": []}
    for xb in x.split(batch_size):
        out = model(xb)
        parts["log_probs"].append(out.log_probs)
        parts["preds"].append(out.log_probs.argmax(1))
        parts["assignment"].append(out.routing.assignment())
        parts["weights"].append(out.routing.dense_weights())
        parts["expert_preds"].append(model.experts.forward_all(xb).argmax(-1))
    return {k: torch.cat(v).cpu() for k, v in parts.items()}


def test_scores(model: MixtureOfExperts, data: Dataset, device: torch.device) -> tuple[dict[str, float], list[list[int]]]:
    """Every score of ``moe.metrics.score`` on the test split, and the class x expert allocation counts."""
    from moe.metrics import allocation, score

    p = predict(model, data.x_test.to(device))
    y = data.y_test
    scores = score(y, p["preds"], p["assignment"], data.n_classes, model.experts.n_experts, weights=p["weights"],
                   expert_preds=p["expert_preds"], grouping=data.grouping)
    scores["loss"] = float(-p["log_probs"].gather(1, y[:, None]).mean())
    return scores, allocation(y, p["assignment"], data.n_classes, model.experts.n_experts).tolist()


@torch.no_grad()
def accuracy(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(sum(int((model(xb).log_probs.argmax(1) == yb).sum()) for xb, yb in zip(x.split(EVAL_BATCH), y.split(EVAL_BATCH))) / len(y))


def run(config: Config | dict[str, Any] | None = None, data: Dataset | dict | None = None,
        on_epoch: Callable[[dict[str, Any]], Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one mixture of experts and return its run record (see ``moe.record``)."""
    started = time.perf_counter()
    cfg = as_config(config)  # every field checked before any work
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if data is None:
        data = load_for_config(cfg)
    else:  # loaded once by a caller (a sweep driver): check it, then take this config's subsets
        data = Dataset.from_numpy(data) if isinstance(data, dict) else data
        if data.name != cfg.dataset:
            raise ValueError(f"data: the dataset passed in is {data.name!r} but the config asks for {cfg.dataset!r}")
        data = subset(data, cfg.n_train, cfg.n_test, cfg.data_seed)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    # model, optimizer, objective: all seeded
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.input_shape, data.n_classes).to(device)
    optimizer = build_optimizer(cfg, model)
    objective = OBJECTIVES.get(cfg.objective, "objective")
    batch_order = torch.Generator().manual_seed(cfg.seed)

    # training loop: one progress bar per epoch when asked
    history, status = [], "ok"
    train_started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        n_batches = math.ceil(len(y_train) / cfg.batch_size)
        with tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, file=sys.stderr) as bar:
            stats = train_epoch(model, optimizer, objective, x_train, y_train, cfg.batch_size, batch_order, bar.update)
            if stats.pop("finite"):
                stats["test_accuracy"] = accuracy(model, x_test, y_test)
            bar.set_postfix(loss=f"{stats['train_loss']:.4f}", test_acc=f"{stats.get('test_accuracy', math.nan):.3f}")
        metrics = {"epoch": epoch, **stats, "epoch_s": time.perf_counter() - t0}
        history.append(metrics)
        if "test_accuracy" not in metrics:  # the loss became NaN or infinite
            status = "diverged"
            break
        if on_epoch is not None and on_epoch(metrics):
            break
    train_s = time.perf_counter() - train_started

    # evaluation on the test split
    t0 = time.perf_counter()
    scores, alloc = test_scores(model, data, device)
    return {"schema": SCHEMA, "status": status, "error": None, "config": cfg.to_dict(), "seed": cfg.seed,
            "dataset": data.describe(), "history": history, "test": scores, "allocation": alloc,
            "timing": {"train_s": train_s, "eval_s": time.perf_counter() - t0, "total_s": time.perf_counter() - started},
            "versions": versions()}


def parser() -> argparse.ArgumentParser:
    """One flag per Config field (``--top-k`` or ``--top_k``), all defaulting to None (the dataclass holds the defaults)."""
    ap = argparse.ArgumentParser(prog="python -m moe.train", description="Train one mixture-of-experts model and write its run record.")
    ap.add_argument("--config", help="YAML or JSON file of config fields (flags override it)")
    ap.add_argument("--out", help="write the run record (JSON) here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    for name in FIELD_TYPES:
        flags = sorted({f"--{name.replace('_', '-')}", f"--{name}"})
        ap.add_argument(*flags, dest=name, default=None, metavar="VALUE", help=f"(default: {getattr(Config(), name)!r})")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    values: dict[str, Any] = {}
    try:
        if args.config:
            values.update(load_file(args.config))
        values.update({k: getattr(args, k) for k in FIELD_TYPES if getattr(args, k) is not None})
        cfg = from_dict(values)
    except ConfigError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        record = run(cfg, progress=not args.quiet)
    except (ConfigError, FileNotFoundError) as err:  # data files missing, device unavailable
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if args.out:
            write_json_atomic(args.out, error_record(cfg.to_dict(), err))
        raise
    test = record["test"]
    print(f"status {record['status']}  test accuracy {test.get('accuracy', math.nan):.4f}  "
          f"train {record['timing']['train_s']:.1f}s")
    if args.out:
        print(f"record written to {write_json_atomic(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
