"""The one rule for showing uncertainty over runs: every table, page, figure, comparison and claim uses it.

- Fewer than :data:`MIN_RUNS` (3) runs: no interval. What is shown is the mean, the range of the runs
  (min-max) and n: with 2 runs a percentile interval is about [min, max] and covers the mean about half the
  time, and a Student t interval (t = 12.7 at 1 degree of freedom) leaves the score's range.
- 3 runs or more: the 95% percentile bootstrap interval of the mean (Efron & Tibshirani 1993, ch. 13):
  :data:`B` resamples of the runs with replacement, the mean of each, the 2.5% and 97.5% quantiles of those
  means (``inverted_cdf``). A mean of values inside the score's domain stays inside it, so the interval
  respects the domain by construction; it is clipped to the domain all the same (:func:`clip`). With 3-5
  runs the percentile interval is narrower than its nominal 95% (it cannot reach past the runs' range).
- The domain of a column: the score registry's (``moe.scoring.scores.Score.domain``: [0, 1] for shares, accuracies
  and NMI, >= 0 for bits, ...); a time (``*_s``) is >= 0; a ``val_`` score has its test score's domain;
  anything else is unbounded.
- A difference of two means (``bench.compare``): the percentile bootstrap of mean(B) - mean(A), each side
  resampled on its own; no interval (and no verdict of a difference) unless both sides have 3 runs or more.

The generator is seeded (:data:`SEED`): the same runs give the same interval every time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from moe.scoring.scores import RENAMED, SCORES

MIN_RUNS = 3  # fewer runs than this: no interval, the range and n instead
LEVEL = 0.95  # two-sided coverage of every interval
B = 2_000  # bootstrap resamples
SEED = 20_211_213  # the generator's seed: fixed, so the intervals repeat exactly
UNBOUNDED = (-math.inf, math.inf)

# The words every figure and page uses for its bars and brackets.
INTERVAL_WORDS = f"{LEVEL:.0%} percentile bootstrap interval of the mean over runs ({B:,} resamples)"
RULE_WORDS = (f"{INTERVAL_WORDS}, shown only with at least {MIN_RUNS} runs and kept within the score's range; "
              f"with fewer runs no interval: the range of the runs (min-max) and n")
BAR_WORDS = (f"bars: {LEVEL:.0%} bootstrap interval of the mean over runs (n >= {MIN_RUNS}); thin grey bars: the range "
             f"(min-max) of the runs where n < {MIN_RUNS}")


def fixed(v: float, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals, never a negative zero: -0.0004 reads ``0.000``, not ``-0.000``."""
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def generator() -> np.random.Generator:
    return np.random.default_rng(SEED)


def domain(column: str) -> tuple[float, float]:
    """The values ``column`` can take (module docstring): (low, high), either end possibly infinite."""
    name = RENAMED.get(column, column)
    for key in (name, name[4:] if name.startswith("val_") else None):
        if key and key in SCORES:
            return SCORES.get(key).domain
    if name.endswith("_s"):
        return 0.0, math.inf
    return UNBOUNDED


def clip(low: float, high: float, bounds: tuple[float, float] = UNBOUNDED) -> tuple[float, float]:
    lo, hi = bounds
    return (min(max(low, lo), hi), min(max(high, lo), hi))


def clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values, as floats (None and NaN left out)."""
    a = np.asarray([v for v in np.ravel(np.asarray(values, dtype=object)) if v is not None], dtype=float)
    return a[np.isfinite(a)]


def resampled_means(values: np.ndarray, rng: np.random.Generator, b: int = B) -> np.ndarray:
    """[b] means of resamples (with replacement, same size) of ``values`` [n]."""
    values = np.asarray(values, dtype=float)
    return values[rng.integers(0, len(values), size=(b, len(values)))].mean(axis=1)


@lru_cache(maxsize=64)
def _first_resamples(n: int, b: int = B) -> np.ndarray:
    """The indices [b, n] of the first ``resampled_means`` drawn by a fresh :func:`generator` for n values: the same
    for every set of n values (the generator is seeded), so drawn once per n (read-only)."""
    idx = generator().integers(0, n, size=(b, n))
    idx.flags.writeable = False
    return idx


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(low, high): the (1 - level) / 2 and (1 + level) / 2 quantiles of the defined replicates."""
    reps = np.asarray(replicates, dtype=float)
    reps = reps[~np.isnan(reps)]
    if reps.size == 0:
        return math.nan, math.nan
    q = (1 - level) / 2
    return (float(np.quantile(reps, q, method="inverted_cdf")), float(np.quantile(reps, 1 - q, method="inverted_cdf")))


@dataclass(frozen=True)
class Summary:
    """The runs of one configuration (or group) on one score, as the rule shows them."""
    n: int
    mean: float
    low: float = math.nan  # the interval: NaN unless n >= MIN_RUNS
    high: float = math.nan
    min: float = math.nan
    max: float = math.nan

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def bar(self) -> tuple[float, float, bool]:
        """(below, above, is_interval): the error bar around the mean, the interval where there is one, else
        the range of the runs (0, 0 for one run or none)."""
        if math.isnan(self.mean):
            return 0.0, 0.0, False
        if self.has_interval:
            return max(self.mean - self.low, 0.0), max(self.high - self.mean, 0.0), True
        if self.n >= 2:
            return max(self.mean - self.min, 0.0), max(self.max - self.mean, 0.0), False
        return 0.0, 0.0, False

    def spread_text(self, digits: int = 3) -> str:
        """``[0.790, 0.834]``, ``range 0.80-0.83, n = 2``, ``n = 1`` or '' (no value)."""
        if math.isnan(self.mean):
            return ""
        if self.has_interval:
            return f"[{fixed(self.low, digits)}, {fixed(self.high, digits)}]"
        if self.n >= 2:
            return f"range {fixed(self.min, digits)}–{fixed(self.max, digits)}, n = {self.n}"
        return f"n = {self.n}"

    def text(self, digits: int = 3) -> str:
        """The mean with its spread (:meth:`spread_text`) in one string; '–' for no value."""
        if math.isnan(self.mean):
            return "–"
        spread = self.spread_text(digits)
        return f"{fixed(self.mean, digits)} " + (spread if self.has_interval else f"({spread})")


def summarize(values: Sequence[float] | np.ndarray, column: str | None = None,
              bounds: tuple[float, float] | None = None) -> Summary:
    """The rule applied to one score's runs: mean, range, n, and the bootstrap interval from MIN_RUNS runs on,
    clipped to ``bounds`` (default: the domain of ``column``)."""
    return summarize_many([clean(values)], [bounds if bounds is not None else domain(column) if column else UNBOUNDED])[0]


_KEPT: dict[tuple[bytes, tuple[float, float]], Summary] = {}  # summaries computed, by values and bounds
_KEEP = 1 << 17  # at most this many kept (then forgotten all at once)
_CHUNK = 1 << 21  # bootstrap means computed together: at most this many numbers resampled at once (16 MB)


def summarize_many(values: Sequence[np.ndarray], bounds: Sequence[tuple[float, float]]) -> list[Summary]:
    """:func:`summarize` of each array of finite floats (``clean``'s) with its bounds: the same numbers, with the
    bootstrap means of all the arrays of one size drawn in one numpy call (the resample indices are the same for
    every array of that size: the generator is seeded) and both quantiles of all of them in another. Summaries are
    kept: a table and its page ask for the same runs' summary several times."""
    out: list[Summary | None] = [None] * len(values)
    keys: list[tuple[bytes, tuple[float, float]]] = []
    todo: dict[int, list[tuple[int, np.ndarray, tuple, tuple[float, float]]]] = {}
    for i, (a, b) in enumerate(zip(values, bounds)):
        a = np.ascontiguousarray(a, dtype=float)
        key = (a.tobytes(), (float(b[0]), float(b[1])))
        keys.append(key)
        if key in _KEPT:
            out[i] = _KEPT[key]
            continue
        n = len(a)
        if n == 0:
            out[i] = Summary(0, math.nan)
            continue
        mean, lo, hi = float(a.mean()), float(a.min()), float(a.max())
        if n < MIN_RUNS or lo == hi:
            out[i] = Summary(n, mean, *((lo, hi) if n >= MIN_RUNS else (math.nan, math.nan)), lo, hi)
        else:
            todo.setdefault(n, []).append((i, a, (mean, lo, hi), key[1]))
    for n, items in todo.items():
        resamples = _first_resamples(n)  # = the indices resampled_means(a, generator()) draws
        step = max(1, _CHUNK // (B * n))
        for start in range(0, len(items), step):
            part = items[start:start + step]
            drawn = np.stack([a for _, a, _, _ in part])[:, resamples]  # [k, B, n]
            means = drawn.reshape(-1, n).mean(axis=1).reshape(len(part), -1)  # as 2-D: the sums of resampled_means
            lows, highs = bootstrap_quantiles(means)
            for (i, _, (mean, lo, hi), b), low, high in zip(part, lows, highs):
                out[i] = Summary(n, mean, *clip(float(low), float(high), b), lo, hi)
    if len(_KEPT) > _KEEP:
        _KEPT.clear()
    _KEPT.update(zip(keys, out))
    return out


def bootstrap_quantiles(replicates: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(lows, highs): :func:`percentile_interval` of each row of ``replicates`` [k, b] (rows without NaN)."""
    q = (1 - level) / 2
    lows, highs = np.quantile(replicates, [q, 1 - q], axis=1, method="inverted_cdf")
    return lows, highs


@dataclass(frozen=True)
class Difference:
    """mean(b) - mean(a) with its interval (NaN unless both sides have MIN_RUNS runs) and why not."""
    diff: float
    low: float = math.nan
    high: float = math.nan
    note: str = ""  # why there is no interval

    @property
    def excludes_zero(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high)) and (self.low > 0 or self.high < 0)


def difference(a: Sequence[float], b: Sequence[float], column: str | None = None, b_: int = B) -> Difference:
    """The percentile bootstrap of mean(b) - mean(a), each side resampled on its own (module docstring);
    clipped to the differences the domain allows."""
    x, y = clean(a), clean(b)
    if len(x) == 0 or len(y) == 0:
        return Difference(math.nan, note="no runs on one side")
    d = float(y.mean() - x.mean())
    if min(len(x), len(y)) < MIN_RUNS:
        return Difference(d, note=f"fewer than {MIN_RUNS} runs a side (n = {len(x)}, {len(y)}): no interval")
    rng = generator()
    low, high = percentile_interval(resampled_means(y, rng, b_) - resampled_means(x, rng, b_))
    lo, hi = domain(column) if column else UNBOUNDED
    return Difference(d, *clip(low, high, (lo - hi, hi - lo)))
