"""The sections of a sweep's page that show the sweep rather than its runs' scores: the score definitions, the
environment (versions, git commits, data fingerprints, hosts), the sweep file as it ran, and the notes of a sweep
that was grown or resumed after its inputs changed (``bench.report.sweep`` puts them on the page)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report import page_parts
from bench.sweep.layout import SweepDir
from bench.table.record_cache import RecordTable
from moe.scoring.scores import DOCS, SCORES


def scores_section(present: set[str]) -> str:
    rows = []
    for name in SCORES.in_order():
        s = SCORES.get(name)
        if name not in present:
            continue
        rows.append([f'<span id="score-{page_parts.esc(name)}"><code>{page_parts.esc(name)}</code></span>', page_parts.esc(s.direction),
                     page_parts.esc(s.definition), f"<code>{page_parts.esc(s.formula)}</code>", page_parts.esc(s.range), page_parts.esc(s.source),
                     "yes" if s.ours else "no"])
    return (f"<p class=muted>From the score registry (moe/scoring/scores.py), as in the repository's <code>{DOCS}</code>.</p>"
            + page_parts.table(["score", "better", "definition", "formula", "range", "source", "ours"], rows))


def environment_section(sweep_dir: SweepDir, runs: pd.DataFrame, records: RecordTable) -> str:
    meta = sweep_dir.meta_state()
    rows = [["sweep created", page_parts.esc(meta.get("created", "–"))]]
    rows += [[f"version: {page_parts.esc(k)}", page_parts.esc(v)] for k, v in (meta.get("versions") or {}).items()]
    for col, label in (("git_commit", "git commits of the runs"), ("git_dirty", "tree dirty"), ("data_sha256", "data sha256"),
                       ("kernel_backend", "kernel backend"), ("run_device", "device")):
        if col in runs.columns:
            vals = [str(v) for v in runs[col].dropna().unique()]
            rows.append([label, "<br>".join(f"<code>{page_parts.esc(v)}</code>" for v in vals) or "–"])
    hosts = records.hosts()
    if hosts:
        rows.append(["hosts", page_parts.esc(", ".join(hosts))])
    return page_parts.table(["what", "value"], rows)


def sweep_file_section(sweep_dir: SweepDir) -> str:
    meta = sweep_dir.sweep_meta()
    if meta:
        out = page_parts.pre(json.dumps(meta, indent=1, default=str))
    elif sweep_dir.meta_path.exists():
        print(f"warning: {sweep_dir.meta_path} is damaged: the report shows no sweep file", file=sys.stderr)
        out = "<p>sweep.json is damaged: no sweep file to show.</p>"
    else:
        out = "<p>No sweep.json (a hand-made runs.csv).</p>"
    path, text = meta.get("path"), meta.get("text")
    if not isinstance(text, str) and isinstance(path, str) and Path(path).is_file():  # a sweep.json of before the text was kept
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            return out
        return f"<h3><code>{page_parts.esc(path)}</code> (as it is now)</h3>" + page_parts.pre(text) + "<h3>Resolved (sweep.json)</h3>" + out
    if isinstance(text, str):
        note = ""
        try:
            if isinstance(path, str) and Path(path).read_text() != text:
                note = "<p class=warn>The file has changed since the sweep ran; shown is its text as it ran.</p>"
        except (OSError, UnicodeDecodeError):
            pass
        out = (f"<h3><code>{page_parts.esc(path)}</code> as it ran</h3>" + note + page_parts.pre(text) + "<h3>Resolved (sweep.json)</h3>"
               + page_parts.pre(json.dumps({k: v for k, v in meta.items() if k != "text"}, indent=1, default=str)))
    return out


def grown_text(note: dict[str, Any]) -> str:
    """``experts 5, 20; seed 3, 4`` of a growth note in sweep.json (``seed(s) 3, 4`` of one written by --add-seeds)."""
    added = note.get("added")
    if isinstance(added, dict) and added:
        return "; ".join(f"{axis} {', '.join(map(str, v if isinstance(v, list) else [v]))}" for axis, v in added.items())
    return f"seed(s) {', '.join(map(str, note.get('seeds', [])))}"


def mixture_note(sweep_dir: SweepDir) -> str:
    """A warning at the top of the page when a resume continued after the sweep file, the data or the code changed, and
    a note of the seeds added to the sweep after it started."""
    mixed = sweep_dir.meta_state().get("mixed") or []
    lines = [f"{page_parts.esc(m.get('at', '?'))}: {page_parts.esc('; '.join(map(str, m.get('changes', []))))}" for m in mixed
             if isinstance(m, dict)]
    grown = [f"{page_parts.esc(g.get('at', '?'))}: {page_parts.esc(grown_text(g))} added "
             f"({page_parts.esc(g.get('trials', '?'))} trials)" for g in sweep_dir.meta_state().get("grown") or [] if isinstance(g, dict)]
    out = ("<p><b>Grown:</b> more values of its grid were added to this sweep after it started (--resume --add, "
           "--add-seeds); the runs there were kept: " + "<br>".join(grown) + "</p>") if grown else ""
    if not lines:
        return out
    return out + ("<p class=warn><b>Mixed runs:</b> this sweep was resumed after its inputs changed, so its records mix "
                  "them (see each run's provenance columns): " + "<br>".join(lines) + "</p>")
