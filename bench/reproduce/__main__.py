"""``python -m bench.reproduce``: see bench.reproduce.cli."""
import sys

from bench.reproduce.cli import main

sys.exit(main())
