"""moe.records.record_diff: two records compared leaf by leaf (absolute up to 1, relative above; inf for structure, integers
and strings), the int8 weight images exact or within one quantisation step."""
from __future__ import annotations

import math

import torch

from moe.records.record_diff import differences, largest
from moe.records.model_views import encode


def test_floats_absolute_up_to_one_relative_above():
    assert list(differences({"a": 0.5, "n": math.nan}, {"a": 0.5, "n": math.nan})) == []  # NaN equals NaN
    (path, size), = differences({"a": 0.5}, {"a": 0.5 + 1e-7})
    assert path == ".a" and math.isclose(size, 1e-7, rel_tol=1e-6)
    (_, size), = differences({"a": 1000.0}, {"a": 1000.1})
    assert math.isclose(size, 0.1 / 1000.1, rel_tol=1e-6)  # relative to the second record
    assert largest({"a": math.inf}, {"a": 1.0}) == (".a", math.inf)
    assert largest({"a": math.nan}, {"a": 1.0}) == (".a", math.inf)
    assert largest({"a": 1.0}, {"a": 1.0}) == ("", 0.0)


def test_structure_integers_and_strings_differ_by_inf():
    base = {"h": [{"loss": 1.0, "epoch_s": 3.0}], "n": 3, "status": "ok"}
    assert largest(base, {**base, "n": 4}) == (".n", math.inf)
    assert largest(base, {**base, "status": "diverged"}) == (".status", math.inf)
    assert largest(base, {**base, "h": base["h"] * 2}) == (".h", math.inf)
    assert largest(base, {k: v for k, v in base.items() if k != "n"}) == (".n", math.inf)
    assert largest(base, {**base, "n": 3.0}) == (".n", math.inf)  # an int became a float
    later = {**base, "h": [{"loss": 1.0, "epoch_s": 9.0}]}
    assert largest(base, later)[0] == ".h[0].epoch_s"
    assert largest(base, later, skip=("epoch_s",)) == ("", 0.0)  # skipped at any depth


def test_weight_images_exact_or_within_one_step():
    w = torch.linspace(-1, 1, 2 * 3 * 4).view(2, 3, 4)
    near = w + 0.004 * (torch.arange(24).view(2, 3, 4) % 2)  # under one step (1 / 127 ~ 0.0079): some values round apart
    far = w.clone()
    far[0, 0, 1] += 0.1  # ~13 steps
    a, b, c = ({"views": {"expert_weights": encode(t)}} for t in (w, near, far))
    assert a != b  # the int8 bytes (or scales) differ
    assert largest(a, b)[1] == math.inf  # exact: byte for byte
    path, size = largest(a, b, one_step_views=True)
    assert size < 1e-2 and (path == "" or path.startswith(".views.expert_weights.scale"))
    assert largest(a, c, one_step_views=True) == (".views.expert_weights.int8", math.inf)
