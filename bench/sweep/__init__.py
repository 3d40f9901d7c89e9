"""Sweeps: ``sweeps/NAME.yaml`` run as Ray Tune trials, one run record each, into one sweep directory.

    spec      sweep files: load, ``--set`` overrides, grid expansion, canonical names, validation (no Ray)
    layout    the one owner of a sweep directory's layout (SweepDir): state, records, checkpoints
    cluster   connecting to Ray and checking what its nodes can hold
    trial     one trial inside a Ray worker (the trainable)
    progress  the driver's Tune callback: each finished trial's record and a progress line
    runner    ``run(name, out=None, address=None, **overrides)``: prepare, run under Tune, build the tables
    cli       ``python -m bench.sweep``

This file imports nothing: ``bench.table`` reads sweep directories through ``bench.sweep.layout``, and the
runner builds the tables at the end of a sweep, so an eager import of the runner here would be circular.
"""
