"""``python -m bench.report DIR``: (re)write report.html of a sweep directory (its tables rebuilt first) or of
a reproduction directory (the one holding REPRODUCTION.md and reproduction.json, and each of its sweeps')."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.command_exit import cannot_write
from bench.report.reproduction import write_reproduction_report
from bench.report.sweep import write_sweep_report
from bench.sweep.layout import DamagedFile, SweepDir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0].strip("`"))
    ap.add_argument("dir", help="a sweep directory (records/ or runs.csv) or a reproduction directory (reproduction.json)")
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    try:
        if (folder / "reproduction.json").is_file():
            written = [write_sweep_report(d) for d in sorted(folder.iterdir()) if SweepDir(d).exists()]
            written.append(write_reproduction_report(folder))
        elif folder.is_dir():
            written = [write_sweep_report(folder)]
        else:
            raise FileNotFoundError(f"{folder}: no such directory")
    except (FileNotFoundError, DamagedFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or read-only disk
        return cannot_write(err, folder)
    for p in written:
        print(f"wrote {p}")
    return 0
