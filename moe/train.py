"""``python -m moe.train``: train one model and write its run record. The code is ``moe.training.loop``;
``run`` and ``main`` are re-exported here as the entry point."""
from __future__ import annotations

import sys

from moe.training.loop import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    sys.exit(main())
