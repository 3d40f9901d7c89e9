"""Pictures: matplotlib figures and the one-run report.

Owns the heat-maps (``plots``), the pictures of a record's views and curves (``view_plots``) and the report of
one run record (``report``: ``python -m moe.report``).

May import: ``moe.records`` and ``moe.scoring`` (reads records, never a live model). Not ``moe.training``.
This file imports nothing.
"""
