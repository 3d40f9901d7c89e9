"""``python -m bench.compare A B [--out DIR] [--metric M ...] [--ignore FIELD ...]``: print the comparison as
Markdown and write compare.md and compare.html (atomically) into ``--out`` (default ``results/compare-<A>-vs-<B>``).
Exit 2 with one ``error:`` line when a directory holds no sweep, the two share no configuration, or they differ in
dataset, data fingerprint, budget (epochs, n_train, n_test) or sweep version (unless ``--force``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.compare.core import compare
from bench.compare.render import html_page, markdown
from bench.sweep.layout import DamagedFile
from moe.records.record import atomic_write_bytes
from moe.scoring.scores import DIRECTIONS


MUST_MATCH = ("dataset", "data fingerprint", "epochs", "n_train", "n_test", "sweep version")  # else refused without --force


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.compare", description="Compare two sweep directories: "
                                 "the configurations they share, each metric's difference B - A with a bootstrap interval.")
    ap.add_argument("a", help="sweep directory A (the baseline)")
    ap.add_argument("b", help="sweep directory B")
    ap.add_argument("--out", help="folder for compare.md and compare.html (default: results/compare-<A>-vs-<B>)")
    ap.add_argument("--metric", action="append", help="a metric to compare (repeatable; default: the table's scores and train_s)")
    ap.add_argument("--force", action="store_true",
                    help="compare although the sides differ in dataset, data fingerprint, budget or sweep version "
                         "(refused otherwise; the differences are listed either way)")
    ap.add_argument("--ignore", action="append", default=[],
                    help="a field left out of the configuration names before matching (repeatable), e.g. --ignore router")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for m in args.metric or []:
        if m not in DIRECTIONS and m not in ("train_s", "trial_s", "eval_s"):
            print(f"error: --metric {m!r} is not a score; valid choices: {', '.join(DIRECTIONS)}, train_s", file=sys.stderr)
            return 2
    try:
        result = compare(args.a, args.b, args.metric, args.ignore)
    except (FileNotFoundError, DamagedFile) as err:  # no sweep there, or a runs.csv that cannot be read
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result["table"].empty:
        print(f"error: {args.a} and {args.b} share no configuration (A: {', '.join(result['only_a'][:5])}; B: "
              f"{', '.join(result['only_b'][:5])}); --ignore FIELD matches names without a field", file=sys.stderr)
        return 2
    unlike = [d for d in result["differences"] if d["field"] in MUST_MATCH]
    if unlike and not args.force:
        said = "; ".join(f"{d['field']}: A {', '.join(map(str, d['a']))[:60]}, B {', '.join(map(str, d['b']))[:60]}"
                         for d in unlike)
        print(f"error: A and B differ in what makes scores comparable ({said}); add --force to compare them anyway",
              file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("results") / f"compare-{Path(args.a).resolve().name}-vs-{Path(args.b).resolve().name}"
    text = markdown(result)
    md = atomic_write_bytes(out / "compare.md", text.encode("utf-8"))
    page = atomic_write_bytes(out / "compare.html", html_page(result).encode("utf-8"))
    print(text)
    print(f"wrote {md} and {page}")
    return 0
