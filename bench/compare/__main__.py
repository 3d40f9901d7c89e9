"""``python -m bench.compare``: see bench.compare.cli."""
import sys

from bench.compare.cli import main

sys.exit(main())
