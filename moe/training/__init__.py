"""Training: one run from config to record, and what it is made of.

Owns the loop (``loop``: ``run(config, data=None, on_epoch=None) -> record``, and its public pieces that the
stacked seeds and a sweep's trials reuse), one epoch (``epochs``, ``epoch_stats``), optimizers (``optim``,
Adam's flat state ``flat_adam``), checkpoints (``checkpoint``), evaluation of a model on a split
(``evaluate``), S seeds trained as one stacked model (``stacked``) and the control mixtures whose scores are
known (``controls``).

May import: everything below it in ``moe`` (config, registry, components, model, validate), ``moe.scoring``
and ``moe.records``; ``kernels``. Not ``moe.pictures``. This file imports nothing.
"""
