"""Pictures: matplotlib figures and the one-run report.

Owns the heat-maps (``plots``), the pictures of a record's views and curves (``view_plots``), the figures a report
draws by name (``drawers``: no torch, what the report's worker processes import) and the report of one run record
(``run_report``: ``python -m moe.report``).

May import: ``moe.records`` and ``moe.scoring`` (reads records, never a live model). Not ``moe.training``.
This file imports nothing.
"""
