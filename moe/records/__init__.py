"""The run record: what one training run leaves behind, and how it is read and compared.

Owns the record's schema and writing (``record``: atomic JSON writes, versions, error records), where a record
came from (``provenance``), the small pictures of a trained model kept in it (``views``), full configuration
names (``naming``) and comparison leaf by leaf (``record_diff``).

May import: ``moe.config``, ``moe.registry``, the components (``moe.data``, ``moe.routers``, ``moe.experts``,
``moe.objectives``) and ``moe.model``; ``kernels``. Not ``moe.scoring``, ``moe.training`` nor ``moe.pictures``.
This file imports nothing.
"""
