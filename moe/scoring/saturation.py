"""Router saturation: how early a run's routing settles (after OLMoE, Muennighoff et al. 2024, arXiv 2409.02060,
its analysis of 'router saturation').

OLMoE's definition: the share of the expert activations at an intermediate checkpoint t that match those of
the final checkpoint T on the same data, k-aware:

    saturation(t) = (1/N) sum_x |S_t(x) ∩ S_T(x)| / k

with S_t(x) the set of the k experts sample x is routed to after epoch t. Implemented here (:func:`saturation`)
with the denominator max(|S_t(x)|, |S_T(x)|), which is exactly k for routers that always pick k experts, and
also covers samples with fewer (expert choice, capacity limits: a dropped sample has the empty set; both
empty counts as unchanged, 1). For k = 1 it is the share of samples whose expert is unchanged.

The sets (:func:`top_experts`): the first k slots of the routing plan, whose rows are sorted by descending
routing weight (ties to the lower expert), k = ``top_k`` for the ``topk`` router and 1 for every other router
(the top-weight expert, the assignment every allocation score reads). Dense soft routers (softmax, soft, ...)
route every sample to every expert; their sets are thus the top-k experts of their routing weights.

In a run (``moe.training.loop``): the validation split's sets are taken in the per-epoch validation pass (no second
forward pass), kept in memory and in the training state (never in the record), and at the end every epoch is
compared with the final one: the last epoch that had a validation pass (the last epoch of the run, whatever
its phase: in epochs that do not train the gate the routing stays as it was, so the curve is flat there; a
diverged run's last epoch has no validation pass, so its reference is the last finite epoch). The record keeps
only the summary (:func:`routing_dynamics`): the curve and ``saturation_epoch``, the first epoch at which the
saturation reaches 0.9 (it may dip below 0.9 later, the
curve shows it). Since the final epoch is 1 by construction, saturation_epoch is at most the run's last epoch.

Undefined (None, with the reason in ``undefined``) without a validation split, and where the routing has no
choice to settle: k >= E (one expert, or the top-k router with k = E), every sample always goes to every
expert, so the saturation is 1 from the first epoch whatever the router learned: a degenerate model would
otherwise read as one that settles at once.

Letters: N samples, k experts per sample, E experts.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

THRESHOLD = 0.9  # saturation_epoch: the first epoch whose saturation is at least this
SPLIT = "validation"


def saturation_k(router: str, top_k: int) -> int:
    """k of the sets: the config's ``top_k`` for the ``topk`` router (the only one that reads it), else 1."""
    return top_k if router == "topk" else 1


def top_experts(expert_ids: torch.Tensor, k: int) -> torch.Tensor:
    """int16 [N, k] on the CPU: the first k slots of a routing plan's ``expert_ids`` [N, kmax] (rows by descending
    weight, -1 unused), cut or padded with -1 to k columns."""
    ids = expert_ids[:, :k].to("cpu", torch.int16)
    if ids.shape[1] < k:
        ids = torch.cat([ids, ids.new_full((ids.shape[0], k - ids.shape[1]), -1)], 1)
    return ids


def saturation(at_t: torch.Tensor, final: torch.Tensor) -> float:
    """(1/N) sum_x |S_t(x) ∩ S_T(x)| / max(|S_t(x)|, |S_T(x)|), 1 for a sample with both sets empty.

    ``at_t``, ``final``: integer [N, k], each row the distinct experts of one sample, -1 for an unused slot."""
    if at_t.shape != final.shape or at_t.ndim != 2 or at_t.dtype.is_floating_point or final.dtype.is_floating_point:
        raise ValueError(f"saturation: expected two integer tensors of one shape [N, k], got {at_t.dtype} "
                         f"{list(at_t.shape)} and {final.dtype} {list(final.shape)}")
    if at_t.shape[0] == 0:
        raise ValueError("saturation: no samples")
    a, b = at_t.long(), final.long()
    shared = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).any(2).sum(1)  # [N]
    size = torch.maximum((a >= 0).sum(1), (b >= 0).sum(1))  # [N]
    per_sample = torch.where(size > 0, shared.double() / size.clamp_min(1), torch.ones((), dtype=torch.float64))
    return float(per_sample.mean())


def first_epoch_at(curve: Sequence[float | None], epochs: Sequence[int], threshold: float = THRESHOLD) -> int | None:
    """The first epoch whose saturation is at least ``threshold`` (None: none is, or the curve is empty)."""
    return next((e for e, s in zip(epochs, curve) if s is not None and s >= threshold), None)


def no_choice(k: int, n_experts: int | None) -> str | None:
    """Why the saturation is undefined for k experts per sample out of ``n_experts`` (None: it is defined)."""
    if n_experts is not None and k >= n_experts:
        return (f"undefined: k = {k} >= E = {n_experts}, every sample always goes to every expert, "
                "so the routing has nothing to settle")
    return None


def routing_dynamics(epochs: Sequence[int], sets: dict[int, torch.Tensor], k: int,
                     n_experts: int | None = None) -> dict[str, Any] | None:
    """The record's ``routing_dynamics``: ``router_saturation`` (one value per epoch of ``epochs``, the history's,
    None for an epoch without a validation pass), ``saturation_epoch`` (:func:`first_epoch_at`), the reference
    epoch, k, the split and the threshold. None when no epoch has sets (no validation split). With k >=
    ``n_experts`` (:func:`no_choice`) the curve and saturation_epoch are None and ``undefined`` says why."""
    if not sets:
        return None
    reference = max(sets)
    out = {"split": SPLIT, "k": k, "reference_epoch": reference, "threshold": THRESHOLD}
    if (why := no_choice(k, n_experts)) is not None:
        return {**out, "router_saturation": None, "saturation_epoch": None, "undefined": why}
    curve = [saturation(sets[e], sets[reference]) if e in sets and e <= reference else None for e in epochs]
    return {**out, "router_saturation": curve, "saturation_epoch": first_epoch_at(curve, epochs)}
