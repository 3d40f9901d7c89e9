"""The run record: what one training run leaves behind, and how it is read and compared.

Owns the record's schema and writing (``record``: JSON writes, versions, error records; ``files``: atomic writes,
no torch), where a record came from (``provenance``), the small pictures of a trained model kept in it
(``model_views``; ``view_codes``: reading them back without torch), full configuration names (``naming``) and
comparison leaf by leaf (``record_diff``).

May import: ``moe.config``, ``moe.registry``, the components (``moe.data``, ``moe.routers``, ``moe.experts``,
``moe.objectives``) and ``moe.model``; ``kernels``. Not ``moe.scoring``, ``moe.training`` nor ``moe.pictures``.
This file imports nothing.
"""
