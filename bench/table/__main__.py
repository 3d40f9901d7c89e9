"""``python -m bench.table``: see bench.table.cli."""
import sys

from bench.table.cli import main

sys.exit(main())
