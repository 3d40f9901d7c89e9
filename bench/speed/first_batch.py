"""The start-up probe of ``python -m bench.speed.train_speed``: ``python -m bench.speed.first_batch SHAPE
[--data-root DIR]`` runs ``moe.training.loop.run`` on the shape's config from a fresh process and prints the wall-clock
time (``time.time()``) at which its first training epoch starts, then exits at once.

The parent takes the time before it starts the process: the difference is the start-up of a run (Python,
imports, data, model, optimizer) up to its first batch.
"""
from __future__ import annotations

import os
import sys
import time

import moe.training.loop
from bench.speed.train_cases import config_of, dataset_for


def main(argv: list[str]) -> None:
    name, root = argv[0], (argv[argv.index("--data-root") + 1] if "--data-root" in argv else None)
    cfg = config_of(name, root)

    def first_batch(*args, **kwargs):
        print(f"{time.time():.6f}", flush=True)
        os._exit(0)  # nothing after the first batch is measured

    moe.training.loop.train_epoch = first_batch  # the loop run() calls
    generated = root is None and cfg.get("dataset") != "gm6"  # MNIST's shape without its files: made here
    data = dataset_for(cfg, None) if generated else None  # else run() loads it, as a run would
    moe.training.loop.run({**cfg, "threads": 1}, data=data)
    sys.exit("error: the run ended without a training batch")


if __name__ == "__main__":
    main(sys.argv[1:])
