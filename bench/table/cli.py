"""``python -m bench.table DIR [--wide]``: rebuild runs.csv, table.md/.tex, pareto.csv and the plots of a sweep
directory, and print the configurations table (120 columns wide unless ``--wide``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.command_exit import cannot_write
from bench.sweep.layout import DamagedFile, SweepDir
from bench.table.configurations import terminal
from bench.table.tables import build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.table",
                                 description="Rebuild runs.csv, table.md/.tex, pareto.csv and the plots of a sweep directory.")
    ap.add_argument("dir", help="a sweep directory (records/*.json from bench.sweep, or a runs.csv)")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    ap.add_argument("--wide", action="store_true", help="print every column and full configuration names (default: "
                    "what fits 120 columns; table.md always has them all)")
    args = ap.parse_args(argv)
    try:
        out = build(args.dir, plots=not args.no_plots)
    except (FileNotFoundError, DamagedFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or read-only disk
        return cannot_write(err, args.dir)
    print(terminal(out["summary"], wide=args.wide))
    print(f"{len(out['runs'])} runs, {len(out['summary'])} configurations; wrote "
          + ", ".join(str(Path(p).relative_to(Path(args.dir).resolve())) for p in out["files"]))
    return 0
