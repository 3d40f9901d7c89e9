"""Reproduction of the seed papers' findings: claims judged on the runs of sweeps, written to REPRODUCTION.md.

    measures  the rows and per-run measures a claim reads from a runs table
    engine    conditions, statistics and verdicts (the claims engine)
    claim_types  the types a claim and a sweep's entry are written in (no torch, no pandas)
    claims    the catalogue: the claims, and each reproduction sweep's entry (SWEEPS: run order, numbers, figures)
    bootstrap, trend  intervals, seeds needed, trend tests over runs
    seed_results  the seed code's own numbers, to compare with
    runner    ``reproduce``: run the sweeps the chosen claims need and judge them
    results   what a reproduction produced (per-sweep results, verdicts)
    report    REPRODUCTION.md and reproduction.json
    figures   the figures of each sweep
    cli       ``python -m bench.reproduce [NAME|all]``

This file imports nothing: importing the claims catalogue loads only it and its types.
"""
