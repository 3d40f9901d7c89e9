"""``python -m bench.speed.same_records``: do two versions of the code train the same numbers? The check behind
every speed change that claims 'records bitwise equal before and after'.

    python -m bench.speed.same_records write FILE [--only SUBSTR]   # on the code before, then after the change
    python -m bench.speed.same_records compare BEFORE AFTER [--tolerance 1e-6]  # exit 0: every record equal, 1: some differ

``write`` trains each configuration of :data:`CASES` (every router, hard and Gumbel routing, every expert type,
every objective and optimizer, a regulariser, pretraining, router matching, per-expert learning rates; gm6 and
generated MNIST-shaped data, a few epochs each; the language model on the KJV with its routers; about a minute and
a half on one core) and writes their records, without
what depends on when and where they ran (timing, versions, provenance, epoch times), as JSON. ``compare`` prints
the configurations whose records differ, each with its largest difference and where it is. A configuration that
cannot run is recorded as its error, so a change that breaks one shows as a difference too.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

import moe.training.loop
from bench.speed.train_cases import generated_mnist
from moe.records.record import write_json_atomic
from moe.records.record_diff import largest

GM6 = dict(dataset="gm6", epochs=3, n_train=600, n_test=200, lr=0.05)
MNIST = dict(dataset="mnist", epochs=2, n_train=1000, n_test=300, lr=0.01, optimizer="adam")
KJV = dict(dataset="kjv", epochs=2, n_train=64, n_test=16, context=64)  # the language model (moe.training.lm_loop)
CASES: list[dict[str, Any]] = [
    *(dict(GM6, router=r) for r in ("softmax", "expert_choice", "hash", "linear", "prototype", "sinkhorn", "soft", "switch")),
    dict(GM6, router="attention", expert="mlp"),
    dict(GM6, router="topk", top_k=1),
    dict(GM6, router="topk", top_k=2, noisy_gate=True, load_loss=0.1),
    dict(GM6, router="softmax", routing="hard"),
    dict(GM6, router="softmax", routing="gumbel", temperature_decay=0.5),
    dict(GM6, router="softmax", expert="mlp", optimizer="rmsprop", momentum=0.9, lr_ratio=10),
    dict(GM6, router="softmax", objective="expectation", optimizer="sgd", momentum=0.9, importance_loss=0.1, z_loss=0.01),
    dict(GM6, router="softmax", objective="competitive"),
    dict(GM6, router="softmax", objective="cooperative"),
    dict(GM6, router="softmax", experts=3, regime="pretrain", pretrain_epochs=2, class_split="contiguous"),
    dict(GM6, router="softmax", experts=1),
    dict(GM6, router="softmax", expert="implicit", experts=64),
    dict(GM6, router="softmax", weight_decay=0.01, gate_lr=0.01, match_router="prototype", match_loss=0.1),
    dict(MNIST, experts=10, gate="mlp", gate_hidden=32),
    dict(MNIST, preset="seed_mnist"),
    dict(MNIST, experts=4, gate="cnn", gate_hidden=4, importance_loss=0.1),
    dict(KJV),
    dict(KJV, noisy_gate=True, load_loss=0.1, z_loss=0.01),
    dict(KJV, router="hash", switch_loss=0.0),
    *(dict(KJV, router=r) for r in ("soft", "sinkhorn", "switch")),
    dict(KJV, top_k=1, expert="linear", moe_layers="alternate", lm_layers=3, optimizer="sgd", momentum=0.9),
]
WHEN_AND_WHERE = ("timing", "versions", "provenance", "started_at")  # not what was trained


def key(index: int, config: dict[str, Any]) -> str:
    return f"{index}:{json.dumps(config, sort_keys=True)}"


def record_of(config: dict[str, Any], mnist) -> dict[str, Any]:
    """The record of one configuration, without when and where it ran; {"error": ...} if it cannot run."""
    try:
        rec = moe.training.loop.run({**config, "threads": 1}, data=mnist if config["dataset"] == "mnist" else None)
    except Exception as err:  # a configuration the code refuses or fails on is a result to compare too
        return {"error": f"{type(err).__name__}: {err}"}
    for k in WHEN_AND_WHERE:
        rec.pop(k, None)
    for epoch in rec.get("history") or []:
        epoch.pop("epoch_s", None)
    return rec


def write(path: str, only: str | None = None) -> dict[str, Any]:
    chosen = [(i, c) for i, c in enumerate(CASES) if only is None or only in json.dumps(c, sort_keys=True)]
    if not chosen:
        raise ValueError(f"--only {only!r}: no configuration contains it")
    mnist = generated_mnist(2000, 500)
    out = {}
    for n, (i, c) in enumerate(chosen, 1):
        out[key(i, c)] = record_of(c, mnist)
        print(f"[{n}/{len(chosen)}] {key(i, c)}: {out[key(i, c)].get('status', 'error')}", file=sys.stderr, flush=True)
    write_json_atomic(Path(path), out)
    return out


def compare(before: dict[str, Any], after: dict[str, Any], tolerance: float = 0.0) -> list[tuple[str, str, float]]:
    """(configuration, path of the largest difference, its size) of every configuration whose records differ by
    more than ``tolerance`` (``moe.records.record_diff``: absolute up to 1, relative above; 0: bitwise). With a tolerance,
    the int8 weight images compare as equal within one quantisation step."""
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            out.append((name, "(only in one file)", math.inf))
            continue
        where, size = largest(before[name], after[name], one_step_views=tolerance > 0)
        if size > tolerance or (tolerance == 0 and where):
            out.append((name, where, size))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed.same_records", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="train every configuration and write the records")
    w.add_argument("file")
    w.add_argument("--only", help="only the configurations whose JSON contains this text")
    c = sub.add_parser("compare", help="compare two files written by `write`")
    c.add_argument("before")
    c.add_argument("after")
    c.add_argument("--tolerance", type=float, default=0.0,
                   help="largest difference that counts as equal (absolute up to 1, relative above); 0: bitwise (default)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "write":
        try:
            write(args.file, args.only)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        files = [json.loads(Path(f).read_text()) for f in (args.before, args.after)]
    except (OSError, ValueError) as err:
        print(f"error: cannot read the records: {err}", file=sys.stderr)
        return 2
    if not (args.tolerance >= 0 and math.isfinite(args.tolerance)):
        print(f"error: --tolerance must be a finite number >= 0, got {args.tolerance}", file=sys.stderr)
        return 2
    differ = compare(*files, tolerance=args.tolerance)
    for name, where, size in differ:
        print(f"DIFFERS {name}: largest at {where} ({size:.3g})")
    names = set(files[0]) | set(files[1])
    equal = "have equal records" if args.tolerance == 0 else f"have records within {args.tolerance:g}"
    print(f"{len(names) - len(differ)} of {len(names)} configurations {equal}" + ("" if differ else " (all)"))
    if args.tolerance > 0 and not differ:
        worst = max((largest(files[0][n], files[1][n], one_step_views=True) + (n,) for n in names), key=lambda d: d[1],
                    default=("", 0.0, "-"))
        print(f"largest difference: {worst[1]:.3g} at {worst[0] or '-'} of {worst[2]}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
