"""Routing traces: the per-token record of which experts a mixture-of-experts language model chose, the one input
of the per-token analyses (``moe.scoring.token_scores``, the report's token pictures). The in-house language model writes
one (``moe.training.lm_loop``); a trace converted from another model (``moe.hf_trace`` for Hugging Face ``transformers``
MoE models, or any dump that follows this format) is analysed the same way.

Format ``moe-routing-trace``, version 1: one ``.npz`` file (numpy's zip of arrays, read with ``allow_pickle=False``)
holding

- ``meta``: a 0-d string array, a JSON object: ``format`` ("moe-routing-trace"), ``version`` (1), ``layers`` (the
  name of each MoE layer, in depth order, e.g. "block 1"), ``n_experts`` (per layer), ``top_k`` (slots per token,
  per layer), ``domain_names``, ``document_names``, ``source`` (free-form: the model, the dataset, the split);
- ``token_ids``: int32 [N] the token at each position (bytes for the in-house model);
- ``document``: int32 [N] the document of each token (an index into ``document_names``; -1: unknown);
- ``domain``: int32 [N] the domain of each token (an index into ``domain_names``; -1: unknown);
- ``sequence``: int32 [N] the sequence (window) the token was routed in, positions consecutive within it;
- for each MoE layer l (0-based, in ``layers`` order): ``experts_l`` int32 [N, k_l] the chosen experts, by
  descending weight (-1: an unused slot, e.g. a token dropped by a capacity limit), ``weights_l`` float32 [N, k_l]
  their routing weights, and optionally ``logits_l`` float32 [N, E_l] the router's logits.

Letters: N tokens, k slots, E experts, L MoE layers.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "moe-routing-trace"
VERSION = 1


class TraceError(ValueError):
    """A trace file or object that does not follow the format; the message names the array or field and the fault."""


@dataclass
class LayerRouting:
    experts: np.ndarray  # int32 [N, k]
    weights: np.ndarray  # float32 [N, k]
    logits: np.ndarray | None = None  # float32 [N, E]

    def top1(self) -> np.ndarray:
        """[N] the expert with the largest weight (-1 for a token no expert took)."""
        return self.experts[:, 0]


@dataclass
class Trace:
    token_ids: np.ndarray  # int32 [N]
    document: np.ndarray  # int32 [N]
    domain: np.ndarray  # int32 [N]
    sequence: np.ndarray  # int32 [N]
    layers: list[LayerRouting]
    layer_names: list[str]
    n_experts: list[int]
    domain_names: list[str]
    document_names: list[str]
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.token_ids)

    def top_k(self, layer: int) -> int:
        return self.layers[layer].experts.shape[1]

    def meta(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "layers": self.layer_names, "n_experts": self.n_experts,
                "top_k": [self.top_k(i) for i in range(len(self.layers))], "domain_names": self.domain_names,
                "document_names": self.document_names, "source": self.source}


def check(trace: Trace) -> Trace:
    """Shapes, dtypes and ranges of every array against the metadata; raises :class:`TraceError`."""
    n = len(trace.token_ids)
    for name in ("token_ids", "document", "domain", "sequence"):
        a = getattr(trace, name)
        if a.ndim != 1 or len(a) != n or not np.issubdtype(a.dtype, np.integer):
            raise TraceError(f"{name}: expected integers [N = {n}], got {a.dtype} {list(a.shape)}")
    for name, a, names in (("domain", trace.domain, trace.domain_names), ("document", trace.document, trace.document_names)):
        if n and (a.min() < -1 or a.max() >= len(names)):
            raise TraceError(f"{name}: ids must lie in [-1, {len(names)}) (its names), got [{a.min()}, {a.max()}]")
    if not (len(trace.layers) == len(trace.layer_names) == len(trace.n_experts)):
        raise TraceError(f"layers: {len(trace.layers)} routings, {len(trace.layer_names)} names, {len(trace.n_experts)} expert counts")
    for i, (layer, E) in enumerate(zip(trace.layers, trace.n_experts)):
        ex, w = layer.experts, layer.weights
        if ex.ndim != 2 or ex.shape[0] != n or w.shape != ex.shape or not np.issubdtype(ex.dtype, np.integer):
            raise TraceError(f"experts_{i}, weights_{i}: expected integers and floats [N = {n}, k], got "
                             f"{ex.dtype} {list(ex.shape)} and {w.dtype} {list(w.shape)}")
        if ex.size and (ex.min() < -1 or ex.max() >= E):
            raise TraceError(f"experts_{i}: ids must lie in [-1, {E}) (layer {trace.layer_names[i]!r} has {E} experts), "
                             f"got [{ex.min()}, {ex.max()}]")
        if not np.isfinite(w).all():
            raise TraceError(f"weights_{i}: NaN or infinite weights")
        if layer.logits is not None and layer.logits.shape != (n, E):
            raise TraceError(f"logits_{i}: expected [N = {n}, E = {E}], got {list(layer.logits.shape)}")
    return trace


def to_arrays(trace: Trace) -> dict[str, np.ndarray]:
    check(trace)
    arrays = {"meta": np.array(json.dumps(trace.meta())), "token_ids": trace.token_ids.astype(np.int32),
              "document": trace.document.astype(np.int32), "domain": trace.domain.astype(np.int32),
              "sequence": trace.sequence.astype(np.int32)}
    for i, layer in enumerate(trace.layers):
        arrays[f"experts_{i}"] = layer.experts.astype(np.int32)
        arrays[f"weights_{i}"] = layer.weights.astype(np.float32)
        if layer.logits is not None:
            arrays[f"logits_{i}"] = layer.logits.astype(np.float32)
    return arrays


def write(trace: Trace, path: str | os.PathLike) -> Path:
    """Write a trace atomically (a temporary file beside it, then a rename); returns the path."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez_compressed(buf, **to_arrays(trace))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return path


def read(path: str | os.PathLike) -> Trace:
    """Read and check a trace file (format and version first)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise TraceError(f"{path}: not a readable .npz routing trace ({err})") from None
    return from_arrays(arrays, where=str(path))


def from_arrays(arrays: dict[str, np.ndarray], where: str = "trace") -> Trace:
    if "meta" not in arrays:
        raise TraceError(f"{where}: no 'meta' array (not a {FORMAT} file)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError:
        raise TraceError(f"{where}: 'meta' is not JSON") from None
    if meta.get("format") != FORMAT:
        raise TraceError(f"{where}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise TraceError(f"{where}: version {meta.get('version')!r}; this reader reads version {VERSION}")
    missing = [k for k in ("token_ids", "document", "domain", "sequence") if k not in arrays]
    n_layers = len(meta.get("layers", []))
    missing += [f"{kind}_{i}" for i in range(n_layers) for kind in ("experts", "weights") if f"{kind}_{i}" not in arrays]
    if missing:
        raise TraceError(f"{where}: missing arrays {', '.join(missing)}")
    layers = [LayerRouting(arrays[f"experts_{i}"], arrays[f"weights_{i}"], arrays.get(f"logits_{i}")) for i in range(n_layers)]
    return check(Trace(arrays["token_ids"], arrays["document"], arrays["domain"], arrays["sequence"], layers,
                       list(meta["layers"]), [int(e) for e in meta["n_experts"]], list(meta["domain_names"]),
                       list(meta["document_names"]), dict(meta.get("source") or {})))
