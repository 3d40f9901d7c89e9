"""Scoring: the score registry (``scores``: name, direction, definition, source) and the maths behind it.

Owns the building blocks (``metrics``, ``ami``, ``causal``, ``cheating``, ``interpretability``), router
saturation (``saturation``), the ablation of each expert (``ablation``) and the generated page of score
definitions (``score_docs``).

May import: ``moe.config``, ``moe.registry``, the components and ``moe.model``; ``moe.records`` (file writing);
``kernels``. Not ``moe.training`` nor ``moe.pictures``. This file imports nothing.
"""
