"""report.html of a reproduction directory (``bench.reproduce``): one self-contained page.

Read from what the reproduction wrote: ``reproduction.json`` (budget, versions, per sweep its overrides,
timings and figures, per claim its verdict and conditions), each sweep's directory (its runs, for the
configurations table; its own report.html, linked) and REPRODUCTION.md (kept in full at the end). Claims
are shown as the JSON gives them, so that new fields (intervals) appear without a change here.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.report import page_parts
from bench.uncertainty import RULE_WORDS
from bench.report.sweep import config_table
from bench.sweep.layout import SweepDir
from bench.table.tables import load_runs
from moe.records.record import atomic_write_bytes

REPORT = "report.html"
SKIP = ("label", "statistic", "params", "op", "threshold", "value", "n", "holds", "note", "detail", "level")
VERDICTS = ("SUPPORTED", "CONTRADICTED", "INCONCLUSIVE", "PREMISE FAILED", "NOT RUN")  # bench.reproduce.engine's
VERDICT_CLASS = {"SUPPORTED": "pass", "CONTRADICTED": "fail"}  # the rest muted


def _number(v: Any) -> str:
    """A number as a reader wants it: a whole float as an integer (``runs: 10``), tiny p-values in e-notation."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return page_parts.esc(v)
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, float) and 0 < abs(v) < 1e-3:
        return f"{v:.1e}"
    return page_parts.num(v)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return page_parts.num(v)
    if isinstance(v, (dict, list)):
        return f"<code>{page_parts.esc(json.dumps(v))}</code>"
    return page_parts.esc(v if v is not None else "–")


def _note(key: str, v: Any, cond: dict[str, Any]) -> str | None:
    """One entry of a condition's notes in words, or None when there is nothing to say."""
    if v is None or v == "" or v == [] or (isinstance(v, float) and math.isnan(v)):
        return None
    if key == "interval":
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
            return None
        level = cond.get("level")
        words = f"{level:.0%} interval" if isinstance(level, (int, float)) else "interval"
        return f"{words} [{page_parts.num(v[0])}, {page_parts.num(v[1])}]"
    if key == "verdict":
        return f"this condition: {page_parts.esc(v)}"
    if key == "sensitivity" and isinstance(v, list):
        moved = [f"{_number(s.get('threshold'))} → {page_parts.esc(s.get('verdict'))}" for s in v if isinstance(s, dict)]
        return "threshold moved: " + ", ".join(moved) if moved else None
    if key == "permutation_p" and isinstance(v, dict):
        return "one-sided permutation p: " + ", ".join(f"{page_parts.esc(k)} {_number(p)}" for k, p in v.items())
    if key == "collapsed":
        kept = cond.get("collapsed_kept")
        return f"collapsed runs: {_number(v)}" + (" (kept)" if kept is True else " (left out)" if kept is False else "")
    if key == "collapsed_kept":
        return None  # said with ``collapsed``
    if key == "configurations" and isinstance(v, list):
        return f"configurations ({len(v)}): " + ", ".join(f"<code>{page_parts.esc(c)}</code>" for c in v)
    label = page_parts.esc(key.replace("_", " "))
    if isinstance(v, (dict, list)):
        return f"{label}: {_value(v)}"
    return f"{label}: {_number(v)}"


def claims_table(claims: list[dict[str, Any]]) -> str:
    rows = []
    for c in claims:
        conds = c.get("conditions") or [{}]
        for i, cond in enumerate(conds):
            notes = [page_parts.esc(cond.get("note") or "")]
            notes += [f"{page_parts.esc(k)}: {_number(v)}" for k, v in (cond.get("detail") or {}).items()]
            notes += [_note(k, v, cond) or "" for k, v in cond.items() if k not in SKIP]
            verdict = c.get("verdict", "?")
            cls = VERDICT_CLASS.get(verdict, "muted")
            thr = cond.get("threshold")
            rows.append([f"<code>{page_parts.esc(c.get('claim'))}</code>" if i == 0 else "",
                         f'<span class="{cls}">{page_parts.esc(verdict)}</span>' if i == 0 else "",
                         page_parts.esc(cond.get("label", c.get("reason", ""))), _value(cond.get("value")),
                         page_parts.esc(f"{cond.get('op', '')} {thr:g}" if isinstance(thr, (int, float)) else "–"),
                         page_parts.esc({True: "yes", False: "no"}.get(cond.get("holds"), "–")),
                         page_parts.esc(cond.get("n", "")), "; ".join(x for x in notes if x)])
    return page_parts.scroll(page_parts.table(["claim", "verdict", "statistic", "value", "threshold", "holds", "n", "notes"], rows,
                            table_id="claims", sortable=False))


def sweep_section(folder: Path, name: str, info: dict[str, Any]) -> str:
    sub = folder / name
    out = [f'<h2 id="sweep-{page_parts.esc(name)}">{page_parts.esc(name)}</h2>',
           f"<p class=muted>overrides <code>{page_parts.esc(json.dumps(info.get('overrides') or {}))}</code>; "
           f"{page_parts.esc(info.get('runs'))} runs; wall {page_parts.num(info.get('wall_s'), 0)} s"
           + (f'; <a href="{page_parts.esc(name)}/{REPORT}">its own report</a>' if (sub / REPORT).is_file() else "") + "</p>"]
    if info.get("reason"):
        out.append(f'<p class="fail">The sweep did not run: {page_parts.esc(info["reason"])}</p>')
    if SweepDir(sub).exists() or (sub / "runs.csv").is_file():
        try:
            table_html, _ = config_table(load_runs(sub))
            out.append(table_html.replace('id="configs"', f'id="configs-{page_parts.esc(name)}"').replace('href="#cfg-', f'href="{page_parts.esc(name)}/{REPORT}#cfg-')
                       .replace('href="#score-', f'href="{page_parts.esc(name)}/{REPORT}#score-'))
        except FileNotFoundError:
            pass
    figs = [page_parts.img_file(folder / f, f) for f in info.get("figures") or []]
    out.append(f'<div class="figs">{"".join(figs)}</div>')
    return "\n".join(out)


def render(folder: str | Path) -> str:
    folder = Path(folder).resolve()
    data = json.loads((folder / "reproduction.json").read_text())
    claims = data.get("claims") or []
    counts = {s: sum(c.get("verdict") == s for c in claims) for s in VERDICTS}
    title = "Reproduction of the seed papers' findings"
    body = [f"<h1>{page_parts.esc(title)}</h1>",
            f"<p>Budget <b>{page_parts.esc(data.get('budget'))}</b>; data root <code>{page_parts.esc(data.get('data_root') or 'default')}</code>; "
            f"wall time {page_parts.num(data.get('wall_s'), 0)} s. "
            + ", ".join(f"{counts[v]} {v.lower()}" for v in VERDICTS) + ".</p>",
            "<nav>" + "".join(f'<a href="#sweep-{page_parts.esc(n)}">{page_parts.esc(n)}</a>' for n in data.get("sweeps") or {})
            + '<a href="#markdown">REPRODUCTION.md</a><a href="#environment">environment</a></nav>',
            '<h2 id="claims">Claims</h2>', claims_table(claims),
            "<p class=muted>Each claim: a statistic of a sweep's runs against a threshold; every condition must hold. "
            f"Numbers per configuration below: mean over seeds (ok runs) with the {RULE_WORDS}; ★ best by direction.</p>"]
    body += [sweep_section(folder, n, info) for n, info in (data.get("sweeps") or {}).items()]
    md = folder / "REPRODUCTION.md"
    body += ['<h2 id="markdown">REPRODUCTION.md</h2>', page_parts.pre(md.read_text()) if md.is_file() else "<p>–</p>",
             '<h2 id="environment">Environment</h2>',
             page_parts.table(["package", "version"], [[page_parts.esc(k), page_parts.esc(v)] for k, v in (data.get("versions") or {}).items()])]
    return page_parts.page(title, "\n".join(body))


def write_reproduction_report(folder: str | Path) -> Path:
    """Write report.html beside REPRODUCTION.md (atomically); returns its path."""
    folder = Path(folder).resolve()
    return atomic_write_bytes(folder / REPORT, render(folder).encode("utf-8"))
