"""Field limits as data: each numeric config field's range and the reason it stops there (``LIMITS``), read by
validation (``moe.validate.limit_problem``), ``python -m moe.train --help`` (:func:`help_text`: short lines) and
docs/config.md (``moe.config_docs``). The caps themselves are constants of ``moe.config``.
"""
from __future__ import annotations

from dataclasses import dataclass

from moe.config import (LOSS_COEFFICIENTS, MAX_CAPACITY, MAX_COEFFICIENT, MAX_CONTEXT, MAX_EPOCHS, MAX_EXPERTS,
                        MAX_LM_HEADS, MAX_LM_LAYERS, MAX_LR, MAX_PLANTED_MODULES, MAX_SAMPLES, MAX_SEED, MAX_SOFT_SLOTS,
                        MAX_TEMPERATURE, MAX_THREADS, MAX_VAL_FRACTION, MAX_WEIGHT_DECAY, MAX_WIDTH, MIN_LR,
                        MIN_TEMPERATURE, field_help)


@dataclass(frozen=True)
class Limit:
    """The range of one numeric field and why it stops there: ``moe.validate`` checks it, ``python -m moe.train
    --help`` shows it, docs/config.md explains it (``moe.config_docs``)."""
    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # (low, ...: low itself is refused
    high_open: bool = False
    why: str = ""  # the reason, added to the error message
    high_text: str = ""  # how docs and --help write high (``10**8`` rather than 100000000)

    def text(self) -> str:
        """``in [1, 4096]``, ``in (0, 1]``."""
        def num(v: float, written: str = "") -> str:
            return written or (f"{int(v)}" if self.integer else f"{v:g}")
        return (f"in {'(' if self.low_open else '['}{num(self.low)}, {num(self.high, self.high_text)}"
                f"{')' if self.high_open else ']'}")


_COEFFICIENT = Limit(0, MAX_COEFFICIENT, why="0: off")
_LR = Limit(MIN_LR, MAX_LR, why="a normal float32 up to 10")
_WIDTH = Limit(1, MAX_WIDTH, integer=True)
_EPOCHS = Limit(1, MAX_EPOCHS, integer=True)
_SAMPLES = Limit(1, MAX_SAMPLES, integer=True, high_text="10**8")
# Every numeric field's range and reason, in field order: the one table validation, --help and the docs read.
LIMITS: dict[str, Limit] = {
    "n_train": _SAMPLES,
    "n_test": _SAMPLES,
    "val_fraction": Limit(0, MAX_VAL_FRACTION, why="0: no validation split"),
    "data_seed": Limit(0, MAX_SEED, integer=True, why="torch.Generator takes 64-bit seeds", high_text="2**63 - 1"),
    "planted_modules": Limit(1, MAX_PLANTED_MODULES, integer=True, why="the planted dataset's classes"),
    "planted_entanglement": Limit(0, 1),
    "lm_layers": Limit(1, MAX_LM_LAYERS, integer=True),
    "lm_width": _WIDTH,
    "lm_heads": Limit(1, MAX_LM_HEADS, integer=True),
    "context": Limit(1, MAX_CONTEXT, integer=True),
    "experts": Limit(1, MAX_EXPERTS, integer=True),
    "expert_hidden": _WIDTH,
    "code_width": _WIDTH,
    "expert_channels": _WIDTH,
    "top_k": Limit(1, MAX_EXPERTS, integer=True),
    "capacity": Limit(0, MAX_CAPACITY, low_open=True),
    "soft_slots": Limit(1, MAX_SOFT_SLOTS, integer=True),
    "gate_hidden": _WIDTH,
    "temperature": Limit(MIN_TEMPERATURE, MAX_TEMPERATURE),
    "temperature_decay": Limit(0, 1, low_open=True, why="1: constant temperature"),
    "temperature_min": Limit(MIN_TEMPERATURE, MAX_TEMPERATURE),
    **{name: _COEFFICIENT for name in LOSS_COEFFICIENTS},
    "pretrain_epochs": _EPOCHS,
    "refit_epochs": _EPOCHS,
    "lr": _LR,
    "gate_lr": _LR,
    "lr_ratio": Limit(1, MAX_LR / MIN_LR, why="fastest / slowest"),
    "momentum": Limit(0, 1, high_open=True),
    "weight_decay": Limit(0, MAX_WEIGHT_DECAY),
    "epochs": _EPOCHS,
    "batch_size": _SAMPLES,
    "seed": Limit(0, MAX_SEED, integer=True, why="torch.manual_seed takes 64-bit seeds", high_text="2**63 - 1"),
    "threads": Limit(1, MAX_THREADS, integer=True, why="more aborts OpenMP"),
}
# Why each cap is where it is (docs/config.md): the caps above, by the fields they bound.
CAP_REASONS: dict[str, str] = {
    "n_train, n_test, batch_size": "10**8: beyond any dataset here (MNIST: 60,000)",
    "val_fraction": "0.5: at least half of the training data stays for training",
    "seed, data_seed": "2**63 - 1: torch.manual_seed and torch.Generator take 64-bit integers",
    "planted_modules": "8: the planted dataset's classes",
    "experts, top_k": "4,096: up to 4,096 implicit experts; and the model's estimated memory <= 4 GiB",
    "expert_hidden, expert_channels, code_width, gate_hidden, lm_width": "65,536; and the model's estimated memory <= 4 GiB",
    "capacity": "4,096: c >= E already lets an expert take the whole batch",
    "temperature, temperature_min": "[1e-4, 1e4]: near 0, logits / T overflow float32",
    "lr, gate_lr, expert_lrs": "[1.18e-38, 10]: below, a rate is no longer a normal float32; above 10 every optimizer here diverges",
    "lr_ratio": "lr / lr_ratio, the slowest rate, must stay a normal float32",
    "weight_decay": "10: above, the penalty outweighs any loss here",
    "epochs, pretrain_epochs, refit_epochs": "100,000: a record holds one history entry per epoch",
    "threads": "256: torch.set_num_threads far beyond the cores aborts in OpenMP (libgomp)",
    "loss coefficients": "1,000",
}


def help_text(name: str) -> str:
    """The short ``--help`` text of a field: its range (:data:`LIMITS`) and the first part of its comment (up to
    the first '; '); the rest of the comment, and the reasons, are docs/config.md's."""
    first = field_help().get(name, "").split("; ")[0]
    limit = LIMITS.get(name)
    return f"{limit.text()}: {first}" if limit else first
