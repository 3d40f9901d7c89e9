"""report.html: one self-contained HTML page per sweep and per reproduction (images inline, opens offline).

    html          the page's pieces: escaping, inline images, sortable/filterable tables, style and script
    sweep         the sweep page (``write_sweep_report``)
    figures       its drill-down figures: kept by content in the sweep directory, the missing ones drawn in parallel
    reproduction  the reproduction page (``write_reproduction_report``)
    browser       a headless Chromium: the page's self-test, screenshots
    cli           ``python -m bench.report DIR``: rebuild the tables and the page of a sweep or a reproduction
"""
