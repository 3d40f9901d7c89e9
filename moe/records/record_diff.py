"""How far apart two records are, leaf by leaf: the check behind every claim of 'the same numbers' (two versions of
the code, ``bench.speed.same_records``; stacked seeds against separate runs, ``tests/moe/test_stacked.py``).

A float leaf's difference is |a - b| / max(1, |b|): absolute for values up to 1 (accuracies, losses, shares),
relative above. Equal floats (NaN equal to NaN) differ by 0. Leaves that are not floats (integers, strings,
booleans, None) and structures (keys, lengths, types) either match or differ by inf.

The weight images of ``views`` are int8 quantisations (``moe.records.model_views``): weights 1e-8 apart can round to
neighbouring steps. With ``one_step_views`` their scales (each image's largest |w|) compare as floats and their
values decoded, as equal within one step (and the scale's change) and otherwise inf; without it, byte for byte.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from moe.records.view_codes import decode

IMAGE_VIEWS = (".views.expert_weights", ".views.prototypes")


def differences(a: Any, b: Any, path: str = "", skip: tuple[str, ...] = (),
                one_step_views: bool = False) -> Iterator[tuple[str, float]]:
    """(path, difference) of every differing leaf of records a and b (see the module); keys in ``skip`` are not
    compared, at any depth."""
    if one_step_views and path.endswith(IMAGE_VIEWS) and isinstance(a, dict) and isinstance(b, dict) and a != b:
        yield from differences(a.get("scale"), b.get("scale"), f"{path}.scale")  # each image's largest |w|, as floats
        if not within_one_step(a, b):
            yield f"{path}.int8", math.inf
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted((set(a) | set(b)) - set(skip)):
            if k in a and k in b:
                yield from differences(a[k], b[k], f"{path}.{k}", skip, one_step_views)
            else:
                yield f"{path}.{k}", math.inf
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield path, math.inf
        for i, (u, v) in enumerate(zip(a, b)):
            yield from differences(u, v, f"{path}[{i}]", skip, one_step_views)
    elif isinstance(a, float) and isinstance(b, float):
        if a != b and not (math.isnan(a) and math.isnan(b)):
            yield path, abs(a - b) / max(1.0, abs(b)) if math.isfinite(a - b) else math.inf
    elif type(a) is not type(b) or a != b:
        yield path, math.inf


def largest(a: Any, b: Any, **options) -> tuple[str, float]:
    """The path and size of the largest difference of two records; ("", 0.0) when they are equal."""
    return max(differences(a, b, **options), key=lambda d: d[1], default=("", 0.0))


def within_one_step(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two int8 views (``moe.records.model_views.encode``) of one shape whose decoded values are at most one quantisation step
    apart, plus the change of their scale (a value q / 127 * scale moves with it)."""
    try:
        da, db = decode(a), decode(b)
        step = max(max(a["scale"]), max(b["scale"])) / 127
        moved = max(abs(u - v) for u, v in zip(a["scale"], b["scale"]))
    except (KeyError, ValueError, TypeError):
        return False
    return da.shape == db.shape and float(np.abs(da - db).max(initial=0.0)) <= (step + moved) * 1.001
