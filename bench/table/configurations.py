"""table.md / table.tex: one row per configuration, the mean over the seeds of its ``ok`` runs with the spread of
``bench.uncertainty`` (the 95% bootstrap interval of the mean from 3 runs on, else the range and n); the terminal
table (:func:`terminal`) fits 120 columns unless asked for every column.

Run counts by status; collapsed runs (when there are any:
ok runs with at least 99% of the test samples on one expert, ``collapsed_mask``), left out of the Pareto sets; headers show
each score's direction (``moe.scoring.metrics.DIRECTIONS``); "–" marks no value.
"""
from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from bench.table.runs import busiest_share
from moe.records.record import STATUSES
from bench.uncertainty import RULE_WORDS, Summary, clean, domain, fixed, summarize_many
from moe.scoring.metrics import COLLAPSE_SHARE
from moe.scoring.scores import DOCS
from moe.scoring.scores import DIRECTIONS, TABLE_SCORES  # the columns of table.md / .tex (absent or all-NaN ones dropped)

ARROWS = {"higher": "↑", "lower": "↓", "neutral": ""}
TEX_ARROWS = {"higher": r"$\uparrow$", "lower": r"$\downarrow$", "neutral": ""}


def score_columns(runs: pd.DataFrame) -> list[str]:
    """The score columns present in a runs table, in DIRECTIONS order."""
    return [k for k in DIRECTIONS if k in runs.columns and pd.api.types.is_numeric_dtype(runs[k])]


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (in first-trial order): router, run counts, ``<score>_mean``, ``<score>_std`` and
    the rule's ``<score>_n``, ``_low``, ``_high`` (the interval, NaN below 3 runs), ``_min``, ``_max``.

    Means and stds are over the configuration's ``ok`` runs (std with ddof=1; NaN for a single run, and
    for the stability columns, whose per-run values are already means over pairs of seeds); NaN scores
    are left out. ``n_collapsed``: ok runs whose test samples all went to one expert (NaN when no run's
    allocation is known).
    """
    if runs.empty:
        return pd.DataFrame(columns=["name", "router", "runs"])
    scores = score_columns(runs) + [c for c in ("train_s", "trial_s") if c in runs.columns]
    rows = []
    order = runs.sort_values("index") if "index" in runs.columns else runs
    # each float score column as one array, read per configuration by position: the same numbers as a Series of
    # the configuration's values gives (pandas takes numpy's sums), without making one per configuration and score
    arrays = {c: order[c].to_numpy(dtype=float) for c in scores if pd.api.types.is_float_dtype(order[c])}
    status = order["status"].to_numpy()
    busiest = busiest_shares(order).to_numpy(dtype=float, na_value=np.nan)  # each configuration's ok runs: collapsed_count
    spreads: list[tuple[dict[str, Any], str, np.ndarray]] = []  # (row, column, values): their intervals drawn together
    for name, where in _groups(order):  # by position, column by column: no copy of the configuration's rows
        is_ok = status[where] == "ok"
        ok_rows = where[is_ok]
        row: dict[str, Any] = {"name": name, "router": order["router"].iloc[where[0]] if "router" in order else name.split("[")[0],
                               "runs": len(where)}
        for s in STATUSES:
            row[f"n_{s}"] = int((status[where] == s).sum())
        row["n_collapsed"] = collapsed_count(busiest[ok_rows])
        for c in scores:
            if c in arrays:
                vals = arrays[c][ok_rows]
                vals = vals[~np.isnan(vals)]
            else:  # integers, flags, text read as numbers: as a Series, as always
                vals = pd.to_numeric(order[c].iloc[ok_rows], errors="coerce").dropna()
            row[f"{c}_mean"] = float(vals.mean()) if len(vals) else math.nan
            spread = len(vals) > 1 and not c.startswith("stability_")  # a run's stability is already a mean over pairs
            row[f"{c}_std"] = float(vals.std(ddof=1)) if spread else math.nan
            st = Summary(len(vals), row[f"{c}_mean"])
            if spread:  # the rule's summary (bench.uncertainty.summarize), filled in below
                spreads.append((row, c, vals[np.isfinite(vals)] if isinstance(vals, np.ndarray) else clean(vals.tolist())))
            row.update({f"{c}_n": st.n, f"{c}_low": st.low, f"{c}_high": st.high, f"{c}_min": st.min, f"{c}_max": st.max})
        rows.append(row)
    for (row, c, _), st in zip(spreads, summarize_many([v for *_, v in spreads], [domain(c) for _, c, _ in spreads])):
        row.update({f"{c}_n": st.n, f"{c}_low": st.low, f"{c}_high": st.high, f"{c}_min": st.min, f"{c}_max": st.max})
    return pd.DataFrame(rows)


def _groups(order: pd.DataFrame) -> list[tuple[Any, np.ndarray]]:
    """(configuration name, the positions of its rows in ``order``), in order of first appearance."""
    codes, names = pd.factorize(order["name"], sort=False)
    return [(name, np.flatnonzero(codes == k)) for k, name in enumerate(names)]


def busiest_shares(runs: pd.DataFrame) -> pd.Series:
    """Each run's share of test samples on its busiest expert (NaN where its allocation is unknown)."""
    if "busiest_share" in runs.columns:
        return pd.to_numeric(runs["busiest_share"], errors="coerce")
    if "allocation" in runs.columns:  # a runs.csv written before busiest_share existed, or by hand
        return runs["allocation"].map(busiest_share).astype(float)
    return pd.Series(math.nan, index=runs.index, dtype=float)


def collapsed_mask(runs: pd.DataFrame) -> pd.Series:
    """Runs that are collapsed: busiest_share >= moe.scoring.metrics.COLLAPSE_SHARE (the score ``collapsed``,
    docs/scores.md); False where unknown."""
    return busiest_shares(runs) >= COLLAPSE_SHARE


def collapsed_runs(ok: pd.DataFrame) -> float:
    """How many of these runs are collapsed (:func:`collapsed_mask`); NaN when no run's allocation is known."""
    return collapsed_count(busiest_shares(ok).to_numpy(dtype=float, na_value=np.nan))


def collapsed_count(shares: np.ndarray) -> float:
    """:func:`collapsed_runs` of runs given by their busiest shares (NaN: unknown): how many are at least
    COLLAPSE_SHARE, NaN when none is known."""
    return float((shares >= COLLAPSE_SHARE).sum()) if (~np.isnan(shares)).any() else math.nan


def shows_collapsed(summ: pd.DataFrame) -> bool:
    """The collapsed column appears when some configuration has a collapsed run."""
    return "n_collapsed" in summ.columns and bool((summ["n_collapsed"] > 0).any())


def _collapsed_cell(row: pd.Series) -> str:
    n = row.get("n_collapsed", math.nan)
    return "–" if pd.isna(n) else f"{int(n)}/{row['n_ok']}"


def row_summary(row: pd.Series, c: str) -> Summary:
    """The rule's summary of column ``c`` of a :func:`summary` row."""
    get = lambda k: row.get(f"{c}_{k}", math.nan)  # noqa: E731
    n = get("n")
    return Summary(0 if pd.isna(n) else int(n), get("mean"), get("low"), get("high"), get("min"), get("max"))


def _cell(row: pd.Series, c: str, digits: int = 3) -> str:
    """The rule's text (bench.uncertainty): ``0.812 [0.790, 0.834]``, ``0.812 (range 0.800–0.830, n = 2)``, '–'."""
    st = row_summary(row, c)
    if c.startswith("stability_") and not math.isnan(st.mean):
        return fixed(st.mean, digits)
    return st.text(digits)


def _runs_cell(row: pd.Series) -> str:
    extra = [f"{row[f'n_{s}']} {s}" for s in STATUSES[1:] if row.get(f"n_{s}", 0)]
    return f"{row['n_ok']}/{row['runs']}" + (f" ({', '.join(extra)})" if extra else "")


def table_columns(summ: pd.DataFrame) -> list[str]:
    return [s for s in TABLE_SCORES if f"{s}_mean" in summ.columns and summ[f"{s}_mean"].notna().any()]


def markdown(summ: pd.DataFrame, title: str | None = None) -> str:
    """table.md: configuration, ok runs / runs, mean ± std of each table score (header arrows: better direction)."""
    cols, collapsed = table_columns(summ), shows_collapsed(summ)
    head = ["configuration", "ok runs"] + [f"{c} {ARROWS[DIRECTIONS.get(c, 'neutral')]}".strip() for c in cols]
    head += ["collapsed"] if collapsed else []
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(cols) + collapsed)) + "|"]
    for _, r in summ.iterrows():
        cells = [f"`{r['name']}`", _runs_cell(r)] + [_cell(r, c) for c in cols]
        cells += [_collapsed_cell(r)] if collapsed else []
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"mean over seeds (ok runs) with the {RULE_WORDS}; ↑ higher is better, ↓ lower is better; – no value; "
              "stability: NMI / ARI between the test assignments of two seeds. Every score (formula, range, "
              f"direction, source) is defined in the project's `{DOCS}`."]
    if collapsed:
        lines[-1] += (f" collapsed: ok runs with at least {COLLAPSE_SHARE:.0%} of the test samples on one expert; "
                      "they learned no split: their stability and cheating index are undefined and left out of "
                      "those means, and they are left out of the Pareto sets.")
    return "\n".join(lines) + "\n"


def latex(summ: pd.DataFrame, caption: str | None = None) -> str:
    """table.tex: the same table as a ``tabular`` (booktabs rules)."""
    cols, collapsed = table_columns(summ), shows_collapsed(summ)
    esc = lambda s: str(s).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")  # noqa: E731
    head = ["configuration", "ok"] + [f"{esc(c)} {TEX_ARROWS[DIRECTIONS.get(c, 'neutral')]}".strip() for c in cols]
    head += ["collapsed"] if collapsed else []
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l r " + "r " * (len(cols) + collapsed) + "}",
             r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for _, r in summ.iterrows():
        cells = [r"\texttt{" + esc(r["name"]) + "}", f"{r['n_ok']}/{r['runs']}"]
        cells += [_cell(r, c).replace("–", "--") for c in cols]
        cells += [_collapsed_cell(r).replace("–", "--")] if collapsed else []
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        note = "; collapsed: runs with every test sample on one expert, left out of the stability means" if collapsed else ""
        lines.append(r"\caption{" + esc(caption) + " (mean over seeds [95\\% bootstrap interval], or (range, n) below 3 "
                     "runs" + note + ").}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


WIDTH = 120  # the terminal table's width unless --wide
NAME_WIDTH = 38  # longer configuration names are cut with '…' (the full names are in table.md)


def _short_cell(row: pd.Series, c: str) -> str:
    """A terminal cell: ``0.812 [0.79,0.83]`` (interval, n >= 3), ``0.812 (0.80–0.83)`` (range, n < 3), ``0.812``."""
    st = row_summary(row, c)
    if math.isnan(st.mean):
        return "–"
    if c.startswith("stability_") or st.n < 2:
        return fixed(st.mean)
    if st.has_interval:
        return f"{fixed(st.mean)} [{fixed(st.low, 2)},{fixed(st.high, 2)}]"
    return f"{fixed(st.mean)} ({fixed(st.min, 2)}–{fixed(st.max, 2)})"


def terminal(summ: pd.DataFrame, wide: bool = False, width: int = WIDTH) -> str:
    """The configurations table for a terminal: the table scores in order, as many as fit ``width`` characters
    (all of them, with full names, when ``wide``), then a line saying what the brackets are and what was left out."""
    cols = table_columns(summ)
    names = [str(n) for n in summ["name"]] if len(summ) else []
    name_w = max([len("configuration")] + [len(n) for n in names]) if wide else \
        min(NAME_WIDTH, max([len("configuration")] + [len(n) for n in names]))
    cut = lambda n: n if len(n) <= name_w else n[:name_w - 1] + "…"  # noqa: E731
    table = [[cut(n) for n in names], [_runs_cell(r) for _, r in summ.iterrows()]]
    heads, widths = ["configuration", "ok"], [name_w, max([2] + [len(x) for x in table[1]])]
    shown = []
    for c in cols:
        head = f"{c} {ARROWS[DIRECTIONS.get(c, 'neutral')]}".strip()
        cells = [_short_cell(r, c) for _, r in summ.iterrows()]
        w = max([len(head)] + [len(x) for x in cells])
        if not wide and sum(widths) + 2 * len(widths) + w > width:
            continue
        heads.append(head), widths.append(w), table.append(cells), shown.append(c)
    fmt = lambda cells: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(cells, widths)))  # noqa: E731
    lines = [fmt(heads).rstrip(), "  ".join("-" * w for w in widths)]
    lines += [fmt([col[i] for col in table]).rstrip() for i in range(len(names))]
    note = (f"mean over seeds; [a,b]: 95% bootstrap interval of the mean (>= 3 runs); (a–b): range of the runs "
            f"(fewer than 3 runs, no interval)")
    left = [c for c in cols if c not in shown]
    if left:
        note += f"; not shown: {', '.join(left)} (--wide: every column; table.md has them all)"
    return "\n".join(lines + textwrap.wrap(note, max(width, 60))) + "\n"
