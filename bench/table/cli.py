"""``python -m bench.table DIR``: rebuild runs.csv, table.md/.tex, pareto.csv and the plots of a sweep directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.sweep.layout import DamagedFile, SweepDir
from bench.table.tables import build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.table",
                                 description="Rebuild runs.csv, table.md/.tex, pareto.csv and the plots of a sweep directory.")
    ap.add_argument("dir", help="a sweep directory (records/*.json from bench.sweep, or a runs.csv)")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    args = ap.parse_args(argv)
    try:
        out = build(args.dir, plots=not args.no_plots)
    except (FileNotFoundError, DamagedFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(SweepDir(args.dir).table_path("table.md").read_text())
    print(f"{len(out['runs'])} runs, {len(out['summary'])} configurations; wrote "
          + ", ".join(str(Path(p).relative_to(Path(args.dir).resolve())) for p in out["files"]))
    return 0
