"""Controls for the cheating scores: mixtures whose answer is known, scored by the code that scores every run.

``python -m moe.training.controls --dataset gm6`` (or ``run_controls("gm6")``) trains three small mixtures on one dataset
and scores each on its test split with ``moe.training.evaluate.evaluate``, the function behind every run record's
``test``:

- ``cheater`` (positive control): cheats by construction. E = C linear experts, expert e held to a constant
  that predicts class e (weights 0, bias ``CONSTANT_LOGIT`` on class e, frozen); the router, trained on the
  mixture's own likelihood, is then the classifier. Expected: cheating index ~1, expert prediction entropy 0.
- ``hash`` (negative control): the hash router (Roller et al. 2021), a fixed assignment that knows nothing of
  the class, with E = C linear experts trained by ``moe.training.loop.run`` like any run. Expected: cheating index ~0
  (a little above: the router-only accuracy is biased upwards on a finite test split).
- ``collapsed``: a router frozen to send every sample to expert 0, the experts trained under it (one linear
  model in effect). Expected: cheating index NaN, reason "collapsed", whatever the accuracy.

A reader sees what the scores give where the answer is known before reading a verdict about cheating. The
cheating index and the expert prediction entropy are this project's operationalisation (``docs/scores.md``).
Same seed, same numbers on the CPU.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

from moe.config import Config, ConfigError
from moe.data import Dataset, declared_input_shape, load_for_config, subset
from moe.data.mnist import DataFileError
from moe.training.evaluate import eval_batch_size, evaluate
from moe.model import MixtureOfExperts, build_model, checked_config
from moe.scoring import cheating as ch
from moe.scoring.metrics import allocation
from moe.scoring.scores import cheating_undefined
from moe.training import optim
from moe.training.loop import run, torch_threads


__all__ = ["CONTROLS", "EXPECTED", "CONSTANT_LOGIT", "control_config", "cheater", "collapsed", "run_controls",
           "summary_rows", "markdown", "main", "ALLOCATION_CONTROLS", "CONTROL_SIZES", "routed", "allocation_controls",
           "allocation_markdown"]

CONTROLS = ("cheater", "hash", "collapsed")
EXPECTED = {
    "cheater": "cheating index ~1, expert prediction entropy 0 (the router is the classifier, experts constant)",
    "hash": "cheating index ~0 (the routing ignores the class)",
    "collapsed": "cheating index NaN: collapsed (every sample on one expert)",
}
EPOCHS = 10  # training epochs of each control (gm6: the hash control's experts reach ~0.8 accuracy)
CONSTANT_LOGIT = 10.0  # a constant expert's logit for its class (0 elsewhere): p(class) = 1 - O(C e^-10)
COLUMNS = ("accuracy", "router_only_accuracy", "cheating_index", "expert_prediction_entropy", "nmi",
           "busiest_share", "collapsed", "near_chance")


def control_config(kind: str, dataset: str = Config.dataset, *, n_classes: int, seed: int = Config.seed,
                   epochs: int = EPOCHS, **fields: Any):
    """The validated config of one control: E = C linear experts; ``hash`` uses the hash router, the others a
    dense softmax router (a linear gate; ``cheater`` on images: the black-box mlp gate). ``fields``: more
    config fields (data_root, n_train, n_test, lr, device, ...). No validation split (``val_fraction`` 0): a
    control selects nothing, and the hash control (``moe.training.loop.run``) trains on the samples the others do."""
    if kind not in CONTROLS:
        raise ConfigError([f"control: unknown control {kind!r}; choose one of {', '.join(CONTROLS)}"])
    image = len(declared_input_shape(dataset) or ()) == 3  # [channels, height, width]
    gate = "mlp" if kind == "cheater" and image else "linear"
    return checked_config({"dataset": dataset, "experts": n_classes, "expert": "linear",
                      "router": "hash" if kind == "hash" else "softmax", "gate": gate, "seed": seed,
                      "epochs": epochs, "val_fraction": 0.0, **fields})


def hold_constant(model: MixtureOfExperts) -> None:
    """Expert e predicts class e for every input: weights 0, bias CONSTANT_LOGIT on class e, frozen."""
    for e, expert in enumerate(model.experts.experts):
        with torch.no_grad():
            expert.weight.zero_()
            expert.bias.zero_()
            expert.bias[e % model.n_classes] = CONSTANT_LOGIT
        expert.requires_grad_(False)


def route_all_to_expert_zero(model: MixtureOfExperts) -> None:
    """The linear gate frozen to logits (CONSTANT_LOGIT, 0, ..., 0) for every input: every sample on expert 0."""
    gate = model.router.gate
    with torch.no_grad():
        gate.weight.zero_()
        gate.bias.zero_()
        gate.bias[0] = CONSTANT_LOGIT
    gate.requires_grad_(False)


def fit(model: MixtureOfExperts, data: Dataset, cfg, device: torch.device) -> None:
    """Adam on the mixture's negative log-likelihood -log sum_e p_e(x) q_e(y | x), over the trainable
    parameters, cfg.epochs epochs of cfg.batch_size samples in a seeded order."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optim.TorchAdam(params, lr=cfg.lr)  # torch's Adam
    order = torch.Generator().manual_seed(cfg.seed)
    x, y = data.x_train.to(device), data.y_train.to(device)
    model.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(y), generator=order).split(cfg.batch_size):
            idx = idx.to(device)
            loss = -model(x[idx]).log_probs.gather(1, y[idx, None]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


def _built(cfg, data: Dataset, device: torch.device) -> MixtureOfExperts:
    torch.manual_seed(cfg.seed)
    return build_model(cfg, data.input_shape, data.n_classes).to(device)


def _trained_and_scored(cfg, data: Dataset, prepare) -> dict[str, Any]:
    """Build the model, ``prepare`` it (freeze what the control fixes), train the rest, and return the record
    fields of ``moe.training.evaluate.evaluate``; on cfg's torch threads, the caller's random generators untouched."""
    device = torch.device("cpu") if cfg.device == "auto" else torch.device(cfg.device)
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = _built(cfg, data, device)
        prepare(model)
        fit(model, data, cfg, device)
        return evaluate(model, data, device, eval_batch_size(cfg, model))


def cheater(cfg, data: Dataset) -> dict[str, Any]:
    """The positive control's record fields (``moe.training.evaluate.evaluate``): constant experts, router trained."""
    return _trained_and_scored(cfg, data, hold_constant)


def collapsed(cfg, data: Dataset) -> dict[str, Any]:
    """The collapsed control's record fields: every sample routed to expert 0, the experts trained."""
    return _trained_and_scored(cfg, data, route_all_to_expert_zero)


def run_controls(dataset: str = Config.dataset, *, seed: int = Config.seed, epochs: int = EPOCHS,
                 data: Dataset | None = None, **fields: Any) -> dict[str, dict[str, float]]:
    """Train and score the three controls on ``dataset``; control name -> its test scores (a run record's
    ``test``: every score of ``moe.scoring.scores.score`` and the loss). ``data``: the dataset, loaded once by the
    caller (else loaded here); ``fields``: more config fields (data_root, n_train, n_test, lr, device, threads)."""
    probe = checked_config({"dataset": dataset, "seed": seed, "val_fraction": 0.0, **fields})  # as control_config: no split
    data = load_for_config(probe) if data is None else subset(data, probe.n_train, probe.n_test, probe.data_seed)
    out: dict[str, dict[str, float]] = {}
    with torch_threads(probe.threads), torch.random.fork_rng():  # moe.training.loop.run sets the threads and reseeds
        for kind in CONTROLS:
            cfg = control_config(kind, dataset, n_classes=data.n_classes, seed=seed, epochs=epochs, **fields)
            record = run(cfg, data) if kind == "hash" else (cheater if kind == "cheater" else collapsed)(cfg, data)
            out[kind] = dict(record["test"])
    return out


def summary_rows(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per control: its name, what is expected, the scores of ``COLUMNS`` and why the cheating index
    is undefined (None when it is defined)."""
    return [{"control": k, "expected": EXPECTED[k], **{c: s.get(c, math.nan) for c in COLUMNS},
             "cheating_undefined": cheating_undefined(s)} for k, s in results.items()]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def markdown(results: dict[str, dict[str, float]], dataset: str = Config.dataset) -> str:
    """The controls as a Markdown table, with a footer that links the score definitions."""
    rows = summary_rows(results)
    head = ["control", *COLUMNS, "undefined because", "expected"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(COLUMNS) + ["---", "---"]) + "|"]
    for r in rows:
        cells = [r["control"], *(_fmt(r[c]) for c in COLUMNS), _fmt(r["cheating_undefined"]), r["expected"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Controls for the cheating scores on {dataset}, scored by moe.training.evaluate like every run. "
              "Definitions: docs/scores.md (the cheating index is this project's operationalisation)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Hand-built allocations: the cheating scores at every expert count, with no training
# ---------------------------------------------------------------------------------------------------

ALLOCATION_CONTROLS = ("cheater", "hash", "random", "class pairs")
ALLOCATION_EXPECTED = {
    "cheater": "1 (each expert owns one class)",
    "hash": "about 0 (a fixed balanced assignment that ignores the class)",
    "random": "about 0 (each sample to a uniformly random expert)",
    "class pairs": "(1/2 - 1/C) / (1 - 1/C) = 0.44 for C = 10 (each expert owns a pair of classes)",
}
CONTROL_SIZES = (10, 64, 256, 1024, 4096)
ALLOCATION_COLUMNS = ("cheating_score", "cheating_coverage", "cheating_index", "constant_experts_accuracy")


def routed(kind: str, labels: torch.Tensor, n_experts: int, n_classes: int, gen: torch.Generator) -> torch.Tensor:
    """The expert of each sample under a hand-built router ``kind`` (ALLOCATION_CONTROLS): ``cheater`` sends a
    class-c sample to a random expert among those that own c (e mod C = c); ``hash`` deals the samples out in
    a random order to the experts in a random order (equal loads; neither order depends on the class); ``random``
    draws each expert uniformly; ``class pairs`` sends it to a random expert among those that own its pair
    (e mod floor(C/2) = floor(c/2)). Needs E >= C for ``cheater`` and E >= C/2 for ``class pairs``."""
    y = torch.as_tensor(labels).long()
    n = len(y)
    if kind == "hash":
        out = torch.empty(n, dtype=torch.long)
        experts = torch.randperm(n_experts, generator=gen)  # which experts a split smaller than E reaches: random
        out[torch.randperm(n, generator=gen)] = experts[torch.arange(n) % n_experts]
        return out
    if kind == "random":
        return torch.randint(0, n_experts, (n,), generator=gen)
    groups = {"cheater": n_classes, "class pairs": n_classes // 2}.get(kind)
    if groups is None:
        raise ValueError(f"control: unknown allocation control {kind!r}; choose one of {', '.join(ALLOCATION_CONTROLS)}")
    if n_experts < groups:
        raise ValueError(f"control {kind!r}: needs at least {groups} experts, got {n_experts}")
    owner = y if kind == "cheater" else y // 2  # the group each sample belongs to
    per_group = (n_experts - owner + groups - 1) // groups  # experts e < E with e mod groups = owner
    pick = (torch.rand(n, generator=gen) * per_group).long()
    return owner + groups * pick


def allocation_controls(sizes=CONTROL_SIZES, *, n_test: int = 2000, n_val: int = 800, n_classes: int = 10,
                        seed: int = 0, accuracy: float = 1.0) -> list[dict[str, Any]]:
    """The cheating scores of hand-built routers (``routed``) at each expert count: balanced labels, a
    validation split of ``n_val`` and a test split of ``n_test`` samples routed by the same rule, each scored
    by ``moe.scoring.cheating`` (the cross-fitted ``cheating_score`` and its coverage, the in-sample
    ``cheating_index`` for comparison, and the accuracy of constant experts under one-hot routing weights)
    with a mixture of accuracy ``accuracy`` (1: a perfect mixture). One row per (control, E). Same seed, same
    numbers."""
    rows = []
    y_val = torch.arange(n_val) % n_classes
    y_test = torch.arange(n_test) % n_classes
    for e in sizes:
        for kind in ALLOCATION_CONTROLS:
            gen = torch.Generator().manual_seed(seed * 7919 + e)
            fit = allocation(y_val, routed(kind, y_val, e, n_classes, gen), n_classes, e)
            a_test = routed(kind, y_test, e, n_classes, gen)
            alloc = allocation(y_test, a_test, n_classes, e)
            onehot = torch.nn.functional.one_hot(a_test, e).double()
            rows.append({"control": kind, "experts": e, "n_val": n_val, "n_test": n_test,
                         "cheating_score": ch.cheating_score(alloc, fit, accuracy),
                         "cheating_coverage": ch.cross_fitted_router(alloc, fit)["coverage"],
                         "cheating_index": ch.cheating_index(alloc, accuracy),
                         "constant_experts_accuracy": ch.constant_experts_accuracy(y_test, onehot, fit),
                         "expected": ALLOCATION_EXPECTED[kind]})
    return rows


def allocation_markdown(rows: list[dict[str, Any]]) -> str:
    """The hand-built controls as a Markdown table with a footer that says how they were built."""
    head = ["control", "E", *ALLOCATION_COLUMNS, "expected cheating score"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(ALLOCATION_COLUMNS) + "---|"]
    for r in rows:
        lines.append("| " + " | ".join([r["control"], str(r["experts"]), *(_fmt(r[c]) for c in ALLOCATION_COLUMNS),
                                        r["expected"]]) + " |")
    n_val, n_test = (rows[0]["n_val"], rows[0]["n_test"]) if rows else (0, 0)
    lines += ["", f"Hand-built routers, no training: {n_val} validation and {n_test} test samples, 10 balanced "
              "classes, each routed by the control's rule; a perfect mixture (accuracy 1). `cheating_score` learns "
              "each expert's class on the validation split and corrects for chance; `cheating_index` is the "
              "in-sample index it replaces (biased upwards at large E); `cheating_coverage` the share of test "
              "samples on experts the validation split reached; `constant_experts_accuracy` every expert replaced "
              "by its validation majority class. Definitions: docs/scores.md."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe.training.controls",
                                 description="Train and score the positive and negative controls of the cheating "
                                             "scores (defaults: those of run_controls).")
    ap.add_argument("--dataset", default=None, help=f"a registered dataset (default {Config.dataset})")
    ap.add_argument("--seed", type=int, default=None, help=f"model seed (default {Config.seed})")
    ap.add_argument("--epochs", type=int, default=None, help=f"training epochs of each control (default {EPOCHS})")
    ap.add_argument("--data-root", default=None, help="MNIST-family files")
    ap.add_argument("--n-train", type=int, default=None, help="stratified training subset")
    ap.add_argument("--n-test", type=int, default=None, help="stratified test subset")
    ap.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")
    ap.add_argument("--allocations", action="store_true",
                    help="score hand-built routers (cheater, hash, random, class pairs) at E = "
                         f"{', '.join(map(str, CONTROL_SIZES))} instead (no training; the other options are ignored)")
    args = vars(ap.parse_args(argv))
    as_json = args.pop("json")
    if args.pop("allocations"):
        rows = allocation_controls()
        if as_json:
            print(json.dumps([{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                              for r in rows], indent=1, allow_nan=False))
        else:
            sys.stdout.write(allocation_markdown(rows))
        return 0
    given = {k: v for k, v in args.items() if v is not None}  # the rest keep run_controls' defaults
    try:
        results = run_controls(**given)
    except (ConfigError, DataFileError, OSError) as exc:
        print("error: " + str(exc).replace("\n", "; "), file=sys.stderr)
        return 2
    if as_json:
        rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                for r in summary_rows(results)]
        print(json.dumps(rows, indent=1, allow_nan=False))  # NaN as null: strict JSON
    else:
        sys.stdout.write(markdown(results, given.get("dataset", Config.dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

