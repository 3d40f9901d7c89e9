"""report.html of a sweep directory: one self-contained page (images inline, no other file needed).

Sections: the configurations (a sortable, filterable table: mean and 95% t interval over the seeds of the
ok runs, the best value of each column marked by the score's direction, each header linking to the score's
definition); the trade-off plot with its Pareto sets; the routing dynamics (router saturation per epoch,
one line per configuration: ``bench.table.saturation``); per configuration a drill-down (its runs, the
allocation heat-map of its best run titled with the full configuration name, per-epoch curves of every
seed, the gate's regions on 2-D data, linear experts' weights and prototypes on images, an ablation matrix
when the records hold one); the score definitions; the sweep file; the environment (versions, git
commits, data fingerprints, kernel backend, device).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.report import page_parts
from bench.report.sections import environment_section, mixture_note, scores_section, sweep_file_section
from bench.report.figures import Figures
from bench.sweep.layout import SweepDir
from bench.table import drawing
from bench.table.configurations import TABLE_SCORES, collapsed_mask
from bench.table.record_cache import RecordTable
from bench.table.tables import best_position, build
from bench.uncertainty import RULE_WORDS, clean, domain, summarize_many
from moe.config import FIELD_TYPES
from moe.records.naming import full_name, wrapped
from moe.records.record import atomic_write_bytes
from moe.scoring.scores import DIRECTIONS, SCORES

ARROWS = {"higher": "↑", "lower": "↓", "neutral": ""}
DRILL_FIGURES = 30  # configurations with figures in their drill-down (3-4 figures each): more is more than a reader
# looks at, and the figures are most of what a large report costs (the default sweep and every reproduction have <= 30)
RUN_COLUMNS = ("accuracy", "nmi", "cheating_index", "busiest_share", "train_s")


def row_config(row: pd.Series) -> dict[str, Any]:
    """The config fields of a runs.csv row (NaN read back as None)."""
    values = dict(zip(row.index, row.to_numpy()))  # the row's own objects, without a lookup by label per field
    return {k: (None if not isinstance(values[k], (list, dict)) and pd.isna(values[k]) else values[k])
            for k in FIELD_TYPES if k in values}


def best_values(summ: pd.DataFrame, cols: list[str]) -> dict[str, float]:
    """The best configuration mean of each column by its direction (none for a neutral one)."""
    out = {}
    for c in cols:
        vals = pd.to_numeric(summ[f"{c}_mean"], errors="coerce").dropna()
        if len(vals) and DIRECTIONS.get(c, "neutral") != "neutral":
            out[c] = float(vals.max() if DIRECTIONS[c] == "higher" else vals.min())
    return out


def score_header(c: str) -> str:
    arrow = ARROWS.get(DIRECTIONS.get(c, "neutral"), "")
    link = f' <a href="#score-{page_parts.esc(c)}" title="definition">?</a>' if c in SCORES else ""
    return f'<th data-type="num">{page_parts.esc(c)} {arrow}{link}</th>'


def configuration_names(runs: pd.DataFrame) -> list[str]:
    """The configurations in the order of their first trial."""
    return list(dict.fromkeys(runs.sort_values("index")["name"] if "index" in runs.columns else runs["name"]))


def config_table(runs: pd.DataFrame) -> tuple[str, list[str]]:
    """The configurations table (HTML) and the configuration names in its order."""
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    cols = [c for c in TABLE_SCORES if c in runs.columns and pd.to_numeric(ok[c], errors="coerce").notna().any()]
    names = configuration_names(runs)
    by_name = dict(tuple(ok.groupby("name", sort=False, dropna=False))) if len(ok) else {}
    empty = ok.iloc[0:0]
    pairs = [(n, c) for n in names for c in cols]
    values = [clean(pd.to_numeric(by_name.get(n, empty)[c], errors="coerce").tolist()) for n, c in pairs]
    stats: dict[str, dict[str, Any]] = {n: {} for n in names}
    for (n, c), st in zip(pairs, summarize_many(values, [domain(c) for _, c in pairs])):
        stats[n][c] = st
    summ = pd.DataFrame([{f"{c}_mean": stats[n][c].mean for c in cols} for n in names])
    best = best_values(summ, cols) if len(summ) else {}
    collapsed = collapsed_mask(ok)
    rows = []
    all_by_name = dict(tuple(runs.groupby("name", sort=False, dropna=False)))
    collapsed_by_name = collapsed.groupby(ok["name"]).sum() if len(ok) else pd.Series(dtype=int)
    for i, n in enumerate(names):
        g = all_by_name[n]
        n_ok = int((g["status"] == "ok").sum()) if "status" in g else len(g)
        cells = [f'<td><a href="#cfg-{i}"><code>{page_parts.esc(n)}</code></a></td>', f'<td data-v="{n_ok}">{n_ok}/{len(g)}</td>']
        for c in cols:
            st = stats[n][c]
            is_best = c in best and not math.isnan(st.mean) and math.isclose(st.mean, best[c], rel_tol=1e-12, abs_tol=1e-12)
            # a run's stability is already a mean over pairs of seeds: its mean alone
            cells.append(summary_cell(st, c, is_best, spread=not c.startswith("stability_")))
        n_col = int(collapsed_by_name.get(n, 0))
        cells.append(f'<td data-v="{n_col}">{n_col}</td>')
        rows.append(cells)
    head = ['<th data-type="text">configuration</th>', '<th data-type="num">ok runs</th>']
    head += [score_header(c) for c in cols] + ['<th data-type="num">collapsed</th>']
    return page_parts.scroll(page_parts.table(head, rows, table_id="configs", sortable=True)), names


def summary_cell(st, column: str, best: bool = False, spread: bool = True) -> str:
    """One cell of the rule (bench.uncertainty): the mean, and under it the interval (n >= 3, with its bounds
    and the score's domain as data attributes, which the page's self-test checks) or the range and n."""
    cls = ' class="best"' if best else ""
    if math.isnan(st.mean):
        return f'<td{cls} data-v="">–</td>'
    text, attrs = page_parts.num(st.mean), ""
    if spread and st.has_interval:
        text += f'<br><span class="muted ci">[{page_parts.num(st.low)}, {page_parts.num(st.high)}]</span>'
        attrs = page_parts.interval_attrs(st.n, st.low, st.high, domain(column))
    elif spread and st.n >= 2:
        text += f'<br><span class="muted">{page_parts.num(st.min)}–{page_parts.num(st.max)}, n={st.n}</span>'
    return f'<td{cls}{attrs} data-v="{st.mean!r}">{text}</td>'


def table_image(sweep_dir: SweepDir, name: str, alt: str, figures: Figures | None = None,
                built: dict[str, Any] | None = None) -> str:
    """The table's plot ``name`` on the page: a placeholder where its job is in this page's ``figures`` (drawn while
    the page is written), else its file ('' where there is none)."""
    path = sweep_dir.table_path(name)
    if figures is not None and built and built.get("figures") is figures and path in (built.get("figure_jobs") or {}):
        return figures.use(built["figure_jobs"][path], alt)
    return page_parts.img_file(path, alt)


def tradeoff_section(sweep_dir: SweepDir, front: pd.DataFrame | None, image: str | None = None) -> str:
    if image is None:
        image = page_parts.img_file(sweep_dir.table_path("tradeoff.png"), "trade-off plot")
    body = image or "<p>No trade-off plot (no accuracy).</p>"
    if front is not None and len(front):
        rows = [[page_parts.esc(r["score"]), page_parts.esc(r["direction"]), f"<code>{page_parts.esc(r['name'])}</code>", page_parts.num(r["accuracy"]),
                 page_parts.num(r["value"]), page_parts.num(r.get("collapsed_left_out"), 0)] for _, r in front.iterrows()]
        body += ("<h3>Pareto sets</h3><p class=muted>Configurations not dominated in (accuracy, score), from the runs "
                 "that did not collapse (pareto.csv).</p>"
                 + page_parts.table(["score", "better", "configuration", "accuracy", "value", "collapsed left out"], rows))
    return body


def dynamics_section(sweep_dir: SweepDir, image: str | None = None) -> str:
    body = page_parts.img_file(sweep_dir.table_path("saturation.png"), "router saturation per configuration") if image is None else image
    if not body:
        return "<p>No routing dynamics (no validation split, or records written before they existed).</p>"
    return (body + "<p class=muted>Router saturation after OLMoE (arXiv 2409.02060): the share of the validation "
            "split's top-k expert choices after each epoch that match those after the run's last epoch (k = top_k for "
            "the topk router, else 1), mean over the seeds of each configuration's ok runs; saturation_epoch in the "
            "table is the first epoch at or above the dashed 0.9 (saturation.png).</p>")


def run_rows(g: pd.DataFrame) -> str:
    cols = [c for c in RUN_COLUMNS if c in g.columns]
    rows = []
    for _, r in g.iterrows():
        commit = r.get("git_commit") if isinstance(r.get("git_commit"), str) else r.get("git")
        rows.append([page_parts.esc(r.get("seed")), page_parts.esc(r.get("status"))] + [page_parts.num(r[c]) for c in cols]
                    + [f"<code>{page_parts.esc(str(commit)[:10]) if isinstance(commit, str) else '–'}</code>",
                       f"<code>{page_parts.esc(str(r.get('data_sha256'))[:12]) if isinstance(r.get('data_sha256'), str) else '–'}</code>"])
    return page_parts.table(["seed", "status"] + cols + ["git", "data sha256"], rows)


def ablation_html(rec: dict[str, Any], class_names: list[str] | None = None) -> str:
    """An ``ablation`` block of a record (a matrix [E, C], optionally with ``rows``, ``cols``, ``title``) as a
    table with its rows named by expert and its columns by class (``class_names`` when they fit)."""
    a = rec.get("ablation")
    if not a:
        return ""
    a = {"matrix": a} if isinstance(a, list) else a
    m = a.get("matrix") or []
    n_cols = len(m[0]) if m else 0
    names = class_names if class_names and len(class_names) == n_cols else [f"class {j}" for j in range(n_cols)]
    cols = a.get("cols") or names
    rows = a.get("rows") or [f"expert {i}" for i in range(len(m))]
    head = ["expert \\ class"] + [str(c) for c in cols]
    return (f"<h3>{page_parts.esc(a.get('title', 'ablation matrix'))}</h3><p class=muted>Each cell: the drop of the class's "
            "test accuracy when the expert is removed (moe.scoring.ablation); rows: experts, columns: classes.</p>"
            + page_parts.scroll(page_parts.table(head, [[page_parts.esc(rows[i])] + [page_parts.num(v) for v in row] for i, row in enumerate(m)])))


def best_run(ok: pd.DataFrame, class_names: list[str] | None) -> dict[str, Any] | None:
    """The run of a configuration whose allocation its drill-down shows (the tables' rule, :func:`pick_best`:
    validation scores pick), with its allocation, the class names it is drawn with, how it was picked and the
    heat-map's title; None when no ok run has an allocation."""
    if not (len(ok) and "accuracy" in ok.columns and "allocation" in ok.columns and ok["allocation"].notna().any()):
        return None
    position, by_validation = best_position(ok, among=np.flatnonzero(ok["allocation"].notna().to_numpy()))
    best = ok.iloc[position]
    alloc = json.loads(best["allocation"]) if isinstance(best["allocation"], str) else best["allocation"]
    names = class_names if class_names and len(class_names) == len(alloc) else [f"class {c}" for c in range(len(alloc))]
    picked = (f"best run by validation accuracy {best['val_accuracy']:.3f}" if by_validation
              else "first run (no validation scores to pick by)")
    return {"row": best, "alloc": alloc, "names": names, "picked": picked}


def figure_jobs(name: str, g: pd.DataFrame, records: dict[int, dict[str, Any]],
                class_names: list[str] | None) -> list[tuple[str, tuple, str]]:
    """The figures of a configuration's drill-down, in the page's order, as ``Figures.add`` takes them (kind,
    arguments, alt text): the heat-map of its best run, the per-epoch curves of its runs, the best run's views."""
    ok = g[g["status"] == "ok"] if "status" in g.columns else g
    full = full_name(row_config(g.iloc[0]))
    jobs = []
    if (best := best_run(ok, class_names)) is not None:
        row = best["row"]
        title = f"{wrapped(full)}\n{best['picked']}: seed {row.get('seed')}, test accuracy {row['accuracy']:.3f}"
        jobs.append(("heatmap", (best["alloc"], best["names"], title), f"allocation heat-map of {name}"))
    histories = [(f"seed {r.get('seed')}", records[int(r["index"])]["history"]) for _, r in g.iterrows()
                 if "index" in r and not pd.isna(r["index"]) and (records.get(int(r["index"])) or {}).get("history")]
    if histories:
        jobs.append(("curves", (histories, full), f"per-epoch curves of {name}"))
    if best is not None:
        row = best["row"]
        rec = records.get(int(row["index"])) if "index" in row and not pd.isna(row["index"]) else None
        views = (rec or {}).get("views") or {}
        vtitle = f"{full}, seed {row.get('seed')}"
        if views.get("gate_regions"):
            jobs.append(("gate_regions", (views["gate_regions"], class_names, vtitle), f"gate regions of {name}"))
        if views.get("expert_weights"):
            jobs.append(("expert_weights", (views["expert_weights"], class_names, vtitle), f"expert weights of {name}"))
        if views.get("prototypes"):
            jobs.append(("prototypes", (views["prototypes"], vtitle), f"prototypes of {name}"))
    return jobs


def drill_down(i: int, name: str, g: pd.DataFrame, records: RecordTable | dict[int, dict[str, Any]],
               class_names: list[str] | None, figures: Figures, draw: bool = True,
               jobs: list[tuple[str, tuple, str]] | None = None) -> str:
    """A configuration's drill-down; its figures (:func:`figure_jobs`, unless given as ``jobs``) go to ``figures``
    (placeholders here), or, where ``draw`` is False, a line saying which command draws them."""
    ok = g[g["status"] == "ok"] if "status" in g.columns else g
    full = full_name(row_config(g.iloc[0]))
    body = [f"<p>Full configuration: <code>{page_parts.esc(full)}</code></p>", run_rows(g)]
    figs = [figures.add(*job) for job in (figure_jobs(name, g, records, class_names) if jobs is None else jobs)] if draw else []
    if (best := best_run(ok, class_names)) is not None:
        row = best["row"]
        index = int(row["index"]) if "index" in row and not pd.isna(row["index"]) else None
        if isinstance(records, RecordTable):  # its record read only when it holds an ablation
            ablation = records.ablation(index) if index is not None else None
        else:
            ablation = (records.get(index) or {}).get("ablation") if index is not None else None
        if not draw and "index" in row and not pd.isna(row["index"]):
            body.append(f"<p class=muted>Figures not drawn here (see the note above the drill-downs); those of its "
                        f"{page_parts.esc(best['picked'])}: <code>python -m moe.report records/{int(row['index']):04d}.json</code></p>")
        body.append(ablation_html({"ablation": ablation}, class_names))
    body.append(f'<div class="figs">{"".join(figs)}</div>')
    acc = pd.to_numeric(ok["accuracy"], errors="coerce").mean() if "accuracy" in ok.columns else math.nan
    summary = f"<code>{page_parts.esc(name)}</code> <span class=muted>accuracy {page_parts.num(acc)}, {len(ok)}/{len(g)} ok</span>"
    return page_parts.details(summary, "".join(body), anchor=f"cfg-{i}")


def render(folder: str | Path, built: dict[str, Any] | None = None,
           on_built: Callable[[dict[str, Any]], None] | None = None) -> str:
    """The page of a sweep directory, from ``bench.table.tables.build``'s result (built here when not given: its plots
    drawn with the page's figures; ``on_built``, when given, is called with that result as soon as it is built)."""
    sweep_dir = SweepDir(Path(folder).resolve())
    n_records = len(sweep_dir.record_files())
    # the tables' plots too, when they are built here; no cache in a directory of a runs.csv alone (a published one)
    figures = Figures(sweep_dir.figure_cache_dir if n_records else None)
    if built is None and n_records > drawing.PER_WORKER and not sweep_dir.figure_cache_dir.is_dir():
        figures.warm_up()  # a first page of many runs: every figure to draw
    try:
        return _render(sweep_dir, built, figures, on_built)
    finally:
        figures.close(kill=True)  # workers left by a failure (none after a page is filled)


def drill_figures(runs: pd.DataFrame, records: RecordTable | dict[int, dict[str, Any]], class_names: list[str] | None,
                  figures: Figures) -> dict[str, list[tuple[str, tuple, str]]]:
    """The drill-down figures (:func:`figure_jobs`) of the configurations that get them (:func:`drawn_configurations`),
    by configuration, each added to ``figures`` (drawn from now on)."""
    names = configuration_names(runs) if len(runs) else []
    drawn = drawn_configurations(runs, names)
    groups = dict(tuple(runs.groupby("name", sort=False, dropna=False))) if len(runs) else {}
    jobs = {n: figure_jobs(n, groups[n], records, class_names) for n in names if n in drawn}
    for name_jobs in jobs.values():
        for job in name_jobs:
            figures.add_job(*job)
    return jobs


def _render(sweep_dir: SweepDir, built: dict[str, Any] | None, figures: Figures,
            on_built: Callable[[dict[str, Any]], None] | None = None) -> str:
    early: dict[str, Any] = {}

    def hand_out(runs: pd.DataFrame, records: RecordTable) -> None:  # the figures first: drawn while the rest is built
        early["jobs"] = drill_figures(runs, records, records.class_names(), figures)

    if built is None:
        built = build(sweep_dir.root, figures=figures, early=hand_out)
        if on_built is not None:
            on_built(built)
    if built.get("figures") is not None and built["figures"] is not figures:  # plots of a build of their own: kept
        figures.keep |= {built["figures"].jobs[n][3] for n in (built.get("figure_jobs") or {}).values()}
    runs: pd.DataFrame = built["runs"]
    records = built.get("records")
    if records is None:
        records = RecordTable(sweep_dir)
    elif not isinstance(records, RecordTable):  # a list of records already read
        records = RecordTable.of(r for r in records if (r.get("bench") or {}).get("index") is not None)
    meta = sweep_dir.sweep_meta()
    title = f"Sweep {meta.get('name', sweep_dir.root.name)}" + (f" (v{meta['version']})" if "version" in meta else "")
    counts = runs["status"].value_counts().to_dict() if "status" in runs.columns and len(runs) else {}
    names = configuration_names(runs) if len(runs) else []
    classes = records.class_names() if len(records) else sweep_dir.class_names()
    groups = dict(tuple(runs.groupby("name", sort=False, dropna=False))) if len(runs) else {}
    drawn = drawn_configurations(runs, names)
    # the drill-downs first: their figures are drawn by the workers while the rest of the page is written
    jobs = early.get("jobs") or drill_figures(runs, records, classes, figures)
    drills = [drill_down(i, n, groups[n], records, classes, figures, draw=n in drawn, jobs=jobs.get(n)) for i, n in enumerate(names)]
    table_html = config_table(runs)[0] if len(runs) else "<p>No runs.</p>"
    if len(drawn) < len(names):
        drills.insert(0, f"<p class=muted>Figures are drawn for the {len(drawn)} configurations with the highest mean "
                         f"validation accuracy (of {len(names)}); each other drill-down names the command that draws "
                         "its best run's figures.</p>")
    present = {c for c in DIRECTIONS if c in runs.columns}
    body = [f"<h1>{page_parts.esc(title)}</h1>", f"<p>{page_parts.esc(meta.get('description', ''))}</p>", mixture_note(sweep_dir),
            f"<p class=muted>{len(runs)} runs ({page_parts.esc(', '.join(f'{n} {s}' for s, n in counts.items()) or 'none')}), "
            f"{len(names)} configurations; directory <code>{page_parts.esc(sweep_dir.root)}</code>.</p>",
            '<nav><a href="#configurations">configurations</a><a href="#tradeoff">trade-off</a>'
            '<a href="#dynamics">routing dynamics</a><a href="#drill">drill-down</a><a href="#scores">scores</a><a href="#sweep">sweep file</a>'
            '<a href="#environment">environment</a></nav>',
            '<h2 id="configurations">Configurations</h2>',
            '<input class="filter" data-table="configs" placeholder="filter configurations (text)">', table_html,
            f"<p class=muted>Each cell: mean over the seeds of the configuration's ok runs and, under it, the "
            f"{RULE_WORDS} (e.g. <code>0.80–0.83, n=2</code>); stability, whose per-run values are already means over "
            f"pairs of seeds, shows its mean alone. "
            "↑ higher is better, ↓ lower is better; ★ the best mean of the column by that direction; – no value; "
            "? links to the score's definition. Click a header to sort, again to reverse. collapsed: ok runs with at "
            "least 99% of the test samples on one expert.</p>",
            '<h2 id="tradeoff">Trade-off</h2>',
            tradeoff_section(sweep_dir, built.get("pareto"), table_image(sweep_dir, "tradeoff.png", "trade-off plot", figures, built)),
            '<h2 id="dynamics">Routing dynamics</h2>',
            dynamics_section(sweep_dir, table_image(sweep_dir, "saturation.png", "router saturation per configuration", figures, built)),
            '<h2 id="drill">Configurations in detail</h2>', "".join(drills),
            '<h2 id="scores">Scores</h2>', scores_section(present),
            '<h2 id="sweep">Sweep file</h2>', sweep_file_section(sweep_dir),
            '<h2 id="environment">Environment</h2>', environment_section(sweep_dir, runs, records)]
    return figures.fill(page_parts.page(title, "\n".join(body)))


def drawn_configurations(runs: pd.DataFrame, names: list[str], limit: int | None = None) -> set[str]:
    """The configurations whose drill-down shows figures: all of them up to ``limit`` (``DRILL_FIGURES``), else the
    ``limit`` with the highest mean validation accuracy over their ok runs (validation scores pick, never test
    ones; without them, the first ``limit`` in the table's order)."""
    limit = DRILL_FIGURES if limit is None else limit
    if len(names) <= limit:
        return set(names)
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    if "val_accuracy" in ok.columns:
        means = pd.to_numeric(ok["val_accuracy"], errors="coerce").groupby(ok["name"]).mean()
        def rank(item: tuple[int, str]) -> tuple[float, int]:
            m = float(means.get(item[1], math.nan))
            return (-m if not math.isnan(m) else math.inf, item[0])

        return {n for _, n in sorted(enumerate(names), key=rank)[:limit]}
    return set(names[:limit])


def write_sweep_report(folder: str | Path, built: dict[str, Any] | None = None,
                       on_built: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write report.html into the sweep directory (atomically); returns its path. Without ``built``, the page builds
    the tables first (:func:`render`: ``on_built`` is told what they are)."""
    sweep_dir = SweepDir(Path(folder).resolve())
    return atomic_write_bytes(sweep_dir.report_path, render(sweep_dir.root, built, on_built).encode("utf-8"))
