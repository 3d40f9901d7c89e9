"""A trial whose run meets a non-finite value is a ``diverged`` record, not an ``error`` (issue #12),
wherever it met it: the loss (``moe.training.loop.run`` stops and says so), or anything raising
``moe.routers.NonFiniteError`` (a gate, an evaluation), in the trial or rebuilt by the driver from Ray's text."""
from __future__ import annotations

import json

import numpy as np
import pytest

import moe.training.loop
from bench.sweep.progress import exception_from_text, failure_record
from bench.sweep.trial import diverged_record, poisoned
from moe.data import load_dataset
from moe.routers import NonFiniteError
from tests.bench.conftest import TINY

CONFIG = {"dataset": "gm6", **TINY["budget"], "router": "softmax", "experts": 2, "seed": 0}


def test_a_non_finite_error_rebuilt_from_ray_text_is_diverged_others_are_errors():
    text = ("ray.exceptions.RayTaskError(NonFiniteError): ray::ImplicitFunc.train() (pid=1)\n"
            "moe.routers.base.NonFiniteError: gate logits are NaN or infinite")
    rec = failure_record(CONFIG, exception_from_text(text))
    assert rec["status"] == "diverged" and rec["error"] == "NonFiniteError: gate logits are NaN or infinite"
    assert failure_record(CONFIG, exception_from_text("ValueError: boom"))["status"] == "error"
    assert failure_record(CONFIG, NonFiniteError("x"))["status"] == "diverged"  # the class itself, too


def test_the_record_of_a_trial_that_raised_on_nan_keeps_its_epochs():
    rec = diverged_record(CONFIG, NonFiniteError("gate logits are NaN or infinite"), [{"epoch": 1, "train_loss": 0.5}])
    assert rec["status"] == "diverged" and rec["history"] == [{"epoch": 1, "train_loss": 0.5}]
    assert rec["config"]["epochs"] == 2 and rec["config"]["top_k"] is not None  # the complete config
    json.dumps(rec)  # a plain JSON record


def test_nan_in_the_evaluation_is_a_non_finite_error_or_a_diverged_record():
    """What the trial meets with ``fault: diverge_in_eval``: moe.training.loop.run either raises NonFiniteError
    (the trial turns it into a diverged record) or returns a diverged record itself; never another error."""
    data = poisoned(load_dataset("gm6", seed=0).to_numpy(), "test")
    assert np.isnan(data["x_test"]).all() and not np.isnan(data["x_train"]).any()
    try:
        rec = moe.training.loop.run(CONFIG, data=data, progress=False)
    except NonFiniteError:
        return
    assert rec["status"] == "diverged"
