"""compare.md and compare.html: the result of ``bench.compare.core.compare`` for people."""
from __future__ import annotations

from typing import Any

import pandas as pd

from bench.report import page_parts
from bench.uncertainty import domain
from bench.uncertainty import B, LEVEL, MIN_RUNS

ARROWS = {"higher": "↑", "lower": "↓", "neutral": ""}


def _n(v: float) -> str:
    return page_parts.num(v)


def method_text(ignore: list[str]) -> str:
    text = (f"A and B: the mean over seeds (ok runs) and, under it, the {LEVEL:.0%} bootstrap interval of that mean "
            f"from {MIN_RUNS} runs on, else the range of the runs and n. B − A: the difference of the means; its "
            f"interval: {LEVEL:.0%} percentile bootstrap ({B:,} resamples of each side's seeds), only where both "
            f"sides have at least {MIN_RUNS} runs (fewer: no interval and no verdict). ≠ marks an interval that "
            "excludes zero; the score's direction (↑ higher is better, ↓ lower is better) says whether B is better "
            "(green) or worse (red) there; a neutral score is not coloured.")
    if ignore:
        text += f" Configurations matched with the fields {', '.join(ignore)} left out of their names."
    return text


def differences_text(result: dict[str, Any]) -> str:
    """One line naming what else differs between the sweeps ('' when nothing does)."""
    diffs = result.get("differences") or []
    if not diffs:
        return ""
    parts = [f"{d['field']} (A: {', '.join(d['a'][:3])}{', ...' if len(d['a']) > 3 else ''}; "
             f"B: {', '.join(d['b'][:3])}{', ...' if len(d['b']) > 3 else ''})" for d in diffs]
    return ("Warning: the two sweeps differ in more than the compared fields, so a difference below may come from "
            "these: " + "; ".join(parts) + ".")


def _mean(mean: float, spread: str) -> str:
    """``0.812 [0.790, 0.834]`` or ``0.812 (range 0.80–0.83, n = 2)``; '–' for no value."""
    if not spread:
        return "–"
    return f"{_n(mean)} " + (spread if spread.startswith("[") else f"({spread})")


def _interval(r) -> str:
    if r["note"]:
        return "" if r["diff"] != r["diff"] else "(no interval: n < %d a side)" % MIN_RUNS
    return f"[{_n(r['low'])}, {_n(r['high'])}]"


def _side(label: str, d: dict[str, Any]) -> str:
    return (f"{label}: `{d['dir']}` (sweep {d['sweep']}, {d['ok']}/{d['runs']} ok runs; git {', '.join(d['git']) or '?'}; "
            f"device {', '.join(d['device']) or '?'}; kernels {', '.join(d['backend']) or '?'}; data "
            f"{', '.join(d['data_sha256']) or '?'})")


def markdown(result: dict[str, Any]) -> str:
    t: pd.DataFrame = result["table"]
    lines = ["# Comparison of two sweeps", "", "- " + _side("A", result["a"]), "- " + _side("B", result["b"]), "",
             f"{t['configuration'].nunique() if len(t) else 0} shared configurations; "
             f"{int(t['flag'].sum()) if len(t) else 0} of {len(t)} differences with an interval that excludes zero.", "",
             *([f"**{differences_text(result)}**", ""] if differences_text(result) else []),
             "| configuration | metric | A | B | B − A [95% interval] | |", "|---|---|---:|---:|---:|---|"]
    for _, r in t.iterrows():
        arrow = ARROWS.get(r["direction"], "")
        mark = f"**≠ {r['verdict']}**" if r["flag"] else ""
        lines.append(f"| `{r['configuration']}` | {r['metric']} {arrow} | {_mean(r['mean_a'], r['spread_a'])} | "
                     f"{_mean(r['mean_b'], r['spread_b'])} | {_n(r['diff'])} {_interval(r)} | {mark} |")
    lines += ["", method_text(result["ignore"])]
    for key, label in (("only_a", "Only in A"), ("only_b", "Only in B")):
        if result[key]:
            lines += ["", f"{label}: " + ", ".join(f"`{n}`" for n in result[key])]
    return "\n".join(lines) + "\n"


def html_page(result: dict[str, Any]) -> str:
    t: pd.DataFrame = result["table"]
    rows = []
    for _, r in t.iterrows():
        colour = {"B better": "better", "B worse": "worse"}.get(r["verdict"], "")
        flag = (f'<td class="{colour}" data-v="1">≠ {page_parts.esc(r["verdict"])}</td>' if r["flag"]
                else f'<td data-v="0"><span class=muted>{page_parts.esc("" if not r["note"] else "n < %d" % MIN_RUNS)}</span></td>')
        has_ci = not r["note"] and r["low"] == r["low"]  # NaN != NaN
        attrs, diff_ci = "", '<span class=muted>no interval</span>'
        if has_ci:  # the bounds and the domain of a difference, for the page's self-test
            lo, hi = domain(r["metric"])
            attrs = page_parts.interval_attrs(min(r["n_a"], r["n_b"]), r["low"], r["high"], (lo - hi, hi - lo))
            diff_ci = f'<span class="muted ci">[{_n(r["low"])}, {_n(r["high"])}]</span>'
        rows.append([f"<code>{page_parts.esc(r['configuration'])}</code>",
                     f"{page_parts.esc(r['metric'])} {ARROWS.get(r['direction'], '')}",
                     f'<td data-v="{r["mean_a"]}">{_n(r["mean_a"])}<br><span class=muted>{page_parts.esc(r["spread_a"])}</span></td>',
                     f'<td data-v="{r["mean_b"]}">{_n(r["mean_b"])}<br><span class=muted>{page_parts.esc(r["spread_b"])}</span></td>',
                     f'<td{attrs} data-v="{r["diff"]}">{_n(r["diff"])}<br>{diff_ci}</td>',
                     flag])
    head = ['<th data-type="text">configuration</th>', '<th data-type="text">metric</th>', '<th data-type="num">A</th>',
            '<th data-type="num">B</th>', '<th data-type="num">B − A [95%]</th>', '<th data-type="num">flag</th>']
    only = "".join(f"<p>{label}: " + ", ".join(f"<code>{page_parts.esc(n)}</code>" for n in result[key]) + "</p>"
                   for key, label in (("only_a", "Only in A"), ("only_b", "Only in B")) if result[key])
    body = ["<h1>Comparison of two sweeps</h1>", f"<p>{page_parts.esc(_side('A', result['a']))}</p>",
            f"<p>{page_parts.esc(_side('B', result['b']))}</p>",
            *([f'<p class="warn">{page_parts.esc(differences_text(result))}</p>'] if differences_text(result) else []),
            '<input class="filter" data-table="compare" placeholder="filter (configuration or metric)">',
            page_parts.scroll(page_parts.table(head, rows, table_id="compare", sortable=True)), f"<p class=muted>{page_parts.esc(method_text(result['ignore']))}</p>", only]
    return page_parts.page("Comparison of two sweeps", "\n".join(body))
