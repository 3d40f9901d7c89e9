"""Pictures of a mixture-of-experts language model's routing, per MoE layer: the domain x expert heat-map of OLMoE's
domain shares, router saturation curves across training, and a passage with each token coloured by its top-1 expert
(HTML). Read from a routing trace (``moe.records.trace``) and, for the saturation curves, the run record.

``token_report(out_dir, stem, trace=None, record=None)`` writes ``STEM.domain_experts.png``, ``STEM.saturation.png``
(a record with ``router_saturation``) and ``STEM.report.html`` (the per-layer scores, the pictures, the passage).

Letters: D domains (rows), E experts (columns), L MoE layers (one panel each).
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from moe.pictures.plots import DPI, save_png
from moe.records.record import atomic_write_bytes
from moe.records.trace import Trace
from moe.scoring.token_scores import LAYER_SCORES, layer_scores

PASSAGE_TOKENS = 600  # tokens of the passage shown coloured by expert
SCORE_COLUMNS = ("effective_experts", *LAYER_SCORES)


def domain_expert_figure(layers: list[dict], domain_names: list[str]) -> Figure:
    """One heat-map per MoE layer of N_{d,e} / N_d (the share of domain d's tokens routed to expert e)."""
    n = len(layers)
    E = max(layer["n_experts"] for layer in layers)
    fig = Figure(figsize=(min(20, 2.5 + n * (1.2 + 0.35 * E)), 1.6 + 0.32 * len(domain_names)), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, layer in zip(axes, layers):
        share = np.array([[math.nan if v is None else v for v in row] for row in layer["domain_share"]], dtype=float)
        image = ax.imshow(share, cmap="Blues", aspect="auto", interpolation="nearest", vmin=0, vmax=max(1e-9, np.nanmax(share)))
        ax.set_title(f"{layer['layer']} (k = {layer['k']})", fontsize=9)
        ax.set_xticks(range(share.shape[1]))
        ax.set_xlabel("expert")
        ax.set_yticks(range(len(domain_names)), domain_names if ax is axes[0] else [""] * len(domain_names))
    fig.colorbar(image, ax=list(axes), label="share of the domain's tokens")
    fig.suptitle("domain x expert: share of each domain's tokens routed to each expert (OLMoE)", fontsize=10)
    return fig


def saturation_figure(saturation: list[dict]) -> Figure:
    """Router saturation of each MoE layer against the training step (1 at the end by definition)."""
    fig = Figure(figsize=(6, 3.6), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for layer in saturation:
        ax.plot(layer["steps"], layer["saturation"], marker="o", label=layer["layer"])
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("router saturation")
    ax.set_ylim(0, 1.02)
    ax.set_title("share of the final top-k choices already made (validation windows)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _token_text(token: int, as_bytes: bool) -> str:
    if not as_bytes:
        return f"{token} "
    ch = chr(token) if 32 <= token < 127 else ("\n" if token == 10 else f"\\x{token:02x}")
    return ch


def passage_html(trace: Trace, n_tokens: int = PASSAGE_TOKENS) -> str:
    """The first ``n_tokens`` tokens of the trace, once per MoE layer, each token's background the colour of its top-1
    expert (tab20; grey: no expert). Byte tokens are shown as characters, other token ids as numbers."""
    as_bytes = trace.source.get("tokens") == "bytes"
    palette = [to_hex(colormaps["tab20"](i % 20)) for i in range(max(trace.n_experts))]
    parts = []
    for i, name in enumerate(trace.layer_names):
        top = trace.layers[i].top1()[:n_tokens]
        spans = []
        for tok, e in zip(trace.token_ids[:n_tokens].tolist(), top.tolist()):
            text = html.escape(_token_text(int(tok), as_bytes))
            colour = palette[e] if e >= 0 else "#dddddd"
            spans.append(f'<span style="background:{colour}" title="expert {e}">{text}</span>')
        legend = " ".join(f'<span style="background:{palette[e]}">&nbsp;{e}&nbsp;</span>' for e in range(trace.n_experts[i]))
        parts.append(f"<h3>{html.escape(name)}: top-1 expert of each token</h3><p>experts: {legend}</p>"
                     f'<pre style="white-space:pre-wrap;font-size:13px;line-height:1.5">{"".join(spans)}</pre>')
    return "\n".join(parts)


def _score_table(layers: list[dict]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("layer", *SCORE_COLUMNS))
    rows = []
    for layer in layers:
        cells = [html.escape(layer["layer"])] + ["n/a" if layer.get(c) is None else f"{layer[c]:.3f}" for c in SCORE_COLUMNS]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table border="1" cellpadding="4" style="border-collapse:collapse"><tr>{head}</tr>{"".join(rows)}</table>'


def token_report(out_dir: str | Path, stem: str, trace: Trace | None = None, record: dict | None = None) -> list[Path]:
    """Write the pictures and ``STEM.report.html`` from a trace and/or a language model's record (the trace's scores
    when a trace is given, else the record's); returns the files written."""
    if trace is None and record is None:
        raise ValueError("token_report: needs a trace or a record")
    out = Path(out_dir)
    layers = layer_scores(trace) if trace is not None else record["token_scores"]
    domain_names = trace.domain_names if trace is not None else record["dataset"]["domain_names"]
    written, images = [], []
    if domain_names and layers:
        written.append(save_png(domain_expert_figure(layers, domain_names), out / f"{stem}.domain_experts.png"))
        images.append(written[-1])
    if record is not None and record.get("router_saturation"):
        written.append(save_png(saturation_figure(record["router_saturation"]), out / f"{stem}.saturation.png"))
        images.append(written[-1])
    body = [f"<h1>{html.escape(stem)}: token routing</h1>"]
    if record is not None and "validation" in record:
        v, t = record["validation"], record["test"]
        body.append(f"<p>validation {v['bits_per_byte']:.3f} bits per byte (unigram {v['unigram_bits_per_byte']:.3f}); "
                    f"test {t['bits_per_byte']:.3f}</p>")
    if trace is not None:
        body.append(f"<p>trace: {len(trace):,} tokens, source {html.escape(str(trace.source))}</p>")
    body.append("<h2>Scores per MoE layer</h2>" + _score_table(layers))
    body += [f'<h2>{p.stem.rsplit(".", 1)[-1]}</h2><img src="{p.name}">' for p in images]
    if trace is not None:
        body.append("<h2>A passage, coloured by expert</h2>" + passage_html(trace))
    page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head><body>{}</body></html>".format(
        html.escape(stem), "\n".join(body))
    written.append(atomic_write_bytes(out / f"{stem}.report.html", page.encode("utf-8")))
    return written
