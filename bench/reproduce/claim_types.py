"""The types a claim is written in (``Claim``, ``Condition``, ``ClaimError``) and a reproduction sweep's entry
(``SweepEntry``): what the claims catalogue
(``bench.reproduce.claims``) imports, so that it loads without torch or pandas. The engine
(``bench.reproduce.engine``) judges them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SENSITIVITY = 0.25  # the sensitivity line moves the threshold by this share of itself, either way


class ClaimError(ValueError):
    """A claim that cannot be evaluated as written (unknown statistic, measure or operator)."""


@dataclass(frozen=True)
class Condition:
    statistic: str  # a name in STATISTICS
    params: dict[str, Any]  # its keyword arguments (measure, where, ...)
    op: str  # one of OPS
    threshold: float
    label: str  # the statistic in words, as the report shows it
    shift: float | None = None  # the sensitivity line's move of the threshold (None: SENSITIVITY x |threshold|)
    beside: bool = False  # reported beside the claim's verdict, not part of it (e.g. an unmatched comparison)

    def shifted(self) -> tuple[float, float] | None:
        """The two moved thresholds of the sensitivity line (None: a zero threshold with no ``shift``)."""
        d = self.shift if self.shift is not None else SENSITIVITY * abs(self.threshold)
        return None if d == 0 else (self.threshold - d, self.threshold + d)


@dataclass(frozen=True)
class Claim:
    name: str  # <sweep>.<finding>
    sweep: str  # the sweep in sweeps/ whose runs the claim reads
    text: str  # the finding, in words
    source: str  # where the papers show it
    conditions: tuple[Condition, ...]
    note: str = ""  # how the claim was operationalised, shown under it
    premises: tuple["Claim", ...] = ()  # claims that must be SUPPORTED for this one to be judged
    keep_collapsed: bool = False  # True: collapsed runs count in the statistics (the collapse is the finding)


@dataclass(frozen=True)
class SweepEntry:
    """One reproduction sweep (``sweeps/<name>.yaml``), written beside its claims in ``bench.reproduce.claims.SWEEPS``
    (whose order is the run order): what its report shows and which figure function draws it."""
    name: str
    numbers: tuple[Any, ...]  # the per-configuration numbers shown under it: accuracy and the measures its claims read
    figures: str | None = None  # a key of bench.reproduce.figures.FIGURES (None: no figures)
    figure_options: tuple[tuple[str, Any], ...] = ()  # keyword arguments of that figure function
