"""moe-interp-bench: mixture-of-experts models, datasets, training and interpretability scores.

Layers (imports point down only): ``config`` and ``registry`` (leaves); the component packages ``data``,
``routers``, ``experts``, ``objectives`` (each a ``base`` module and its plugins), then ``regimes``;
``validate`` (the rules between components), ``model``, ``checkpoint``, ``evaluate``, ``train``,
``metrics`` and ``scores``, ``record``, ``provenance`` (where a record came from), ``views`` (small
pictures of a trained model kept in its record), ``naming`` (full configuration names), ``plots`` and
``view_plots``, ``report``. The registries by config field:
``moe.validate.registries()``.
"""
from __future__ import annotations

__version__ = "0.2.0"  # 0.2.0: the dense linear experts sum in another float32 order (README, training speed)
