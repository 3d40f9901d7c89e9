"""``python -m moe.report RUN.json``: the report of one run record. The code is ``moe.pictures.run_report``."""
from __future__ import annotations

import sys

from moe.pictures.run_report import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
