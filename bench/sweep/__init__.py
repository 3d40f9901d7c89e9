"""Sweeps: ``sweeps/NAME.yaml`` run as Ray Tune trials, one run record each, into one sweep directory.

    spec      sweep files: load, ``--set`` overrides, grid expansion, canonical names, validation (no Ray)
    layout    the one owner of a sweep directory's layout (SweepDir): state, records, checkpoints
    cluster   connecting to Ray and checking what its nodes can hold
    early     Ray started first, while a run's modules import (``python -m bench.sweep``)
    trial     one trial inside a Ray worker (the trainable)
    progress  the driver's Tune callback: each finished trial's record and a progress line
    runner    ``run_trials(name, out=None, address=None, **overrides)``: prepare, run the trials under Tune
    groups    seeds of one configuration trained together as one stacked model
    shape     the shape of a sweep file's grid, checked before it is expanded
    estimate  a sweep's cost before it runs
    lock      one writer per sweep directory
    command   the command's arguments, ``--list``, ``--dry-run``, its errors (no Ray, pandas or matplotlib)
    cli       ``python -m bench.sweep`` (the tables and the report after the trials: ``bench.pipeline``)

This file imports nothing: ``bench.table``, ``bench.report``, compare, the figures and the reproduction read
sweep directories through ``bench.sweep.layout``; the runner imports none of them.
"""
