"""compare.md and compare.html: the result of ``bench.compare.core.compare`` for people."""
from __future__ import annotations

from typing import Any

import pandas as pd

from bench.report import html as h
from bench.report.stats import BOOTSTRAP, LEVEL

ARROWS = {"higher": "↑", "lower": "↓", "neutral": ""}


def _n(v: float) -> str:
    return h.num(v)


def method_text(ignore: list[str]) -> str:
    text = (f"B − A: the difference of the means over seeds (ok runs); interval: {LEVEL:.0%} percentile bootstrap "
            f"({BOOTSTRAP} resamples of each side's seeds, seed 0); ≠ marks an interval that excludes zero, and the "
            "score's direction (↑ higher is better, ↓ lower is better) says whether B is better or worse there. With one "
            "seed a side has no spread, and with a few seeds the bootstrap understates the spread: more seeds, "
            "narrower and more honest intervals.")
    if ignore:
        text += f" Configurations matched with the fields {', '.join(ignore)} left out of their names."
    return text


def _side(label: str, d: dict[str, Any]) -> str:
    return (f"{label}: `{d['dir']}` (sweep {d['sweep']}, {d['ok']}/{d['runs']} ok runs; git {', '.join(d['git']) or '?'}; "
            f"device {', '.join(d['device']) or '?'}; kernels {', '.join(d['backend']) or '?'}; data "
            f"{', '.join(d['data_sha256']) or '?'})")


def markdown(result: dict[str, Any]) -> str:
    t: pd.DataFrame = result["table"]
    lines = ["# Comparison of two sweeps", "", "- " + _side("A", result["a"]), "- " + _side("B", result["b"]), "",
             f"{t['configuration'].nunique() if len(t) else 0} shared configurations; "
             f"{int(t['flag'].sum()) if len(t) else 0} of {len(t)} differences with an interval that excludes zero.", "",
             "| configuration | metric | A | B | B − A [95% interval] | |", "|---|---|---:|---:|---:|---|"]
    for _, r in t.iterrows():
        arrow = ARROWS.get(r["direction"], "")
        mark = f"**≠ {r['verdict']}**" if r["flag"] else ""
        lines.append(f"| `{r['configuration']}` | {r['metric']} {arrow} | {_n(r['mean_a'])} (n={r['n_a']}) | "
                     f"{_n(r['mean_b'])} (n={r['n_b']}) | {_n(r['diff'])} [{_n(r['low'])}, {_n(r['high'])}] | {mark} |")
    lines += ["", method_text(result["ignore"])]
    for key, label in (("only_a", "Only in A"), ("only_b", "Only in B")):
        if result[key]:
            lines += ["", f"{label}: " + ", ".join(f"`{n}`" for n in result[key])]
    return "\n".join(lines) + "\n"


def html_page(result: dict[str, Any]) -> str:
    t: pd.DataFrame = result["table"]
    rows = []
    for _, r in t.iterrows():
        flag = f'<td class="best" data-v="1">≠ {h.esc(r["verdict"])}</td>' if r["flag"] else '<td data-v="0"></td>'
        rows.append([f"<code>{h.esc(r['configuration'])}</code>",
                     f"{h.esc(r['metric'])} {ARROWS.get(r['direction'], '')}",
                     f'<td data-v="{r["mean_a"]}">{_n(r["mean_a"])} <span class=muted>n={r["n_a"]}</span></td>',
                     f'<td data-v="{r["mean_b"]}">{_n(r["mean_b"])} <span class=muted>n={r["n_b"]}</span></td>',
                     f'<td data-v="{r["diff"]}">{_n(r["diff"])} <span class=muted>[{_n(r["low"])}, {_n(r["high"])}]</span></td>',
                     flag])
    head = ['<th data-type="text">configuration</th>', '<th data-type="text">metric</th>', '<th data-type="num">A</th>',
            '<th data-type="num">B</th>', '<th data-type="num">B − A [95%]</th>', '<th data-type="num">flag</th>']
    only = "".join(f"<p>{label}: " + ", ".join(f"<code>{h.esc(n)}</code>" for n in result[key]) + "</p>"
                   for key, label in (("only_a", "Only in A"), ("only_b", "Only in B")) if result[key])
    body = ["<h1>Comparison of two sweeps</h1>", f"<p>{h.esc(_side('A', result['a']))}</p>",
            f"<p>{h.esc(_side('B', result['b']))}</p>",
            '<input class="filter" data-table="compare" placeholder="filter (configuration or metric)">',
            h.table(head, rows, table_id="compare", sortable=True), f"<p class=muted>{h.esc(method_text(result['ignore']))}</p>", only]
    return h.page("Comparison of two sweeps", "\n".join(body))
