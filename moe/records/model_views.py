"""Views of a trained model small enough to keep in its run record (records hold no model): the record's
``views`` block, drawn later by ``moe.pictures.view_plots`` (``moe.pictures.run_report``, the sweep's report.html).

    gate_regions    2-D inputs (gm6): the top-weight expert of every point of a G x G grid over the data's
                    bounding box (5% margin), G = GRID (64: 4,096 small ints), and up to MAX_POINTS test
                    points (x, y, label; the first ones of a fixed shuffle), rounded to 4 decimals.
                    ``expert[i][j]``: the expert at y = ys[i], x = xs[j] (-1: no expert took the point).
    expert_weights  linear experts on image inputs: W [E, C, H, W] (the channels averaged), each expert's
                    weights scaled by its largest |w| and stored as int8 (``encode``): E x C x H x W bytes,
                    base64; images wider than 28 pixels are average-pooled to at most 28.
    prototypes      the prototype router on image inputs: mu [E, H, W] the same way.

With more than MAX_EXPERTS experts (the expert-count sweeps reach 4,096), the image views keep the MAX_EXPERTS
busiest ones (most test samples as top-weight expert, ties to the lower index), in that order, and say which in
``experts`` (their indices) and ``of`` (E): a few kB a record instead of E x C x 784 bytes, and a picture one can
read.

Choice: a few kB in the record (no file beside it), so that a sweep's records alone draw every view; the
int8 quantisation keeps 1/127 of each expert's range, more than a picture shows.
"""
from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from moe.data import Dataset
from moe.experts.linear import LinearExperts
from moe.model import MixtureOfExperts
from moe.records.view_codes import MAX_EXPERTS, decode, top_indices
from moe.routers.prototype import PrototypeRouter

GRID = 64
MAX_POINTS = 300
MAX_SIDE = 28
MARGIN = 0.05


def encode(arr: torch.Tensor) -> dict[str, Any]:
    """[N, ...] floats -> {"shape", "scale" (per leading index: max |x|), "int8" (base64)}; ``decode`` inverts it."""
    a = arr.detach().float().cpu()
    scale = a.flatten(1).abs().amax(1).clamp_min(1e-12)
    q = torch.round(a / scale.view(-1, *[1] * (a.dim() - 1)) * 127).to(torch.int8)
    return {"shape": list(a.shape), "scale": scale.tolist(), "int8": base64.b64encode(q.numpy().tobytes()).decode()}


def _images(flat: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """[N, D] -> [N, H, W]: channels averaged, pooled down to at most MAX_SIDE pixels a side."""
    img = flat.reshape(len(flat), *input_shape).float()
    img = img.mean(1) if img.dim() == 4 else img
    side = max(img.shape[-2:])
    if side > MAX_SIDE:
        k = -(-side // MAX_SIDE)
        img = F.avg_pool2d(img[:, None], k, ceil_mode=True)[:, 0]
    return img


@torch.no_grad()
def gate_regions(model: MixtureOfExperts, data: Dataset, device: torch.device, batch: int) -> dict[str, Any]:
    x = data.x_test.float()
    lo, hi = x.min(0).values, x.max(0).values
    pad = (hi - lo).clamp_min(1e-6) * MARGIN
    lo, hi = lo - pad, hi + pad
    xs, ys = torch.linspace(float(lo[0]), float(hi[0]), GRID), torch.linspace(float(lo[1]), float(hi[1]), GRID)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1).to(device)
    model.eval()
    experts = torch.cat([model.route(g).assignment().cpu() for g in grid.split(batch)])  # the gate alone decides
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:MAX_POINTS]
    r = lambda t: [round(float(v), 4) for v in t]  # noqa: E731
    return {"x_range": r([lo[0], hi[0]]), "y_range": r([lo[1], hi[1]]),
            "size": GRID, "expert": experts.view(GRID, GRID).tolist(),
            "points": {"x": r(x[pick, 0]), "y": r(x[pick, 1]), "label": data.y_test[pick].tolist()}}


def shown_experts(n_experts: int, assignment: list[int] | None) -> list[int] | None:
    """The experts an image view keeps: None (all) for at most MAX_EXPERTS, else the MAX_EXPERTS with the most
    test samples in ``assignment`` (the expert of each test sample, -1: none), ties to the lower index."""
    if n_experts <= MAX_EXPERTS:
        return None
    a = torch.as_tensor(assignment or [], dtype=torch.long)
    return top_indices(torch.bincount(a[a >= 0], minlength=n_experts), MAX_EXPERTS)


def _kept(view: dict[str, Any], experts: list[int] | None, n_experts: int) -> dict[str, Any]:
    return view if experts is None else {**view, "experts": experts, "of": n_experts}


def views(model: MixtureOfExperts, data: Dataset, device: torch.device, batch: int = 1024,
          assignment: list[int] | None = None) -> dict[str, Any]:
    """The record's ``views`` block for this model and data (empty when none applies). ``assignment``: the top-weight
    expert of each test sample, which picks the experts an image view keeps when there are more than MAX_EXPERTS."""
    out: dict[str, Any] = {}
    shape = data.input_shape
    if shape == (2,):
        out["gate_regions"] = gate_regions(model, data, device, batch)
    if len(shape) >= 2:  # images
        n_experts = model.experts.n_experts
        keep = shown_experts(n_experts, assignment)
        kept = (lambda t: t) if keep is None else (lambda t: t[torch.tensor(keep, device=t.device)])  # noqa: E731
        if isinstance(model.experts, LinearExperts):
            w = kept(model.experts.weights()[0])  # [E', D, C]
            e, d, c = w.shape
            imgs = _images(w.transpose(1, 2).reshape(e * c, d), shape)  # [E' * C, H, W]
            out["expert_weights"] = _kept(encode(imgs.reshape(e, c, *imgs.shape[1:])), keep, n_experts)
        if isinstance(model.router, PrototypeRouter):
            out["prototypes"] = _kept(encode(_images(kept(model.router.prototypes), shape)), keep, n_experts)
    return out
