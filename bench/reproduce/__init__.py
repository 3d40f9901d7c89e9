"""Reproduction of the seed papers' findings: claims judged on the runs of sweeps, written to REPRODUCTION.md.

    measures  the rows and per-run measures a claim reads from a runs table
    engine    conditions, statistics and verdicts (the claims engine)
    claims    the catalogue of claims
    runner    ``reproduce``: run the sweeps the chosen claims need and judge them
    results   what a reproduction produced (per-sweep results, verdicts)
    report    REPRODUCTION.md and reproduction.json
    figures   the figures of each sweep
    cli       ``python -m bench.reproduce [NAME|all]``
"""
