"""moe-interp-bench: mixture-of-experts models, datasets, training and interpretability scores.

Layers (imports point down only): ``config``, ``registry`` and ``files`` (leaves); the component packages
``data``, ``routers``, ``experts``, ``objectives`` (each a ``base`` module and its plugins), then ``regimes``,
``validate`` (the rules between components) and ``model``. Above them, one subpackage per job, each ``__init__``
saying what it owns and what it may import: ``records`` (the run record, provenance, views, naming, comparison),
``scoring`` (the score registry and the maths behind it), ``training`` (the loop, epochs, optimizers,
checkpoints, evaluation, stacked seeds, controls) and ``pictures`` (figures and the one-run report).
``train`` and ``report`` are the entry points of ``python -m moe.train`` and ``python -m moe.report``.
The registries by config field: ``moe.validate.registries()``. The version is written once, in pyproject.toml
(``moe.records.record.project_version``).
"""
from __future__ import annotations
