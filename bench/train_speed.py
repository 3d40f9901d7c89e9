"""``python -m bench.train_speed``: a short name for ``python -m bench.speed.train_speed`` (see there)."""
from __future__ import annotations

from bench.speed.train_speed import main

if __name__ == "__main__":
    raise SystemExit(main())
