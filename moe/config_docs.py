"""docs/config.md, generated from ``moe.config`` and ``moe.field_limits``: every field with its type, default, range
(``LIMITS``) and whole comment, then why each cap is where it is (``CAP_REASONS``). ``python -m moe.train --help``
shows the short form (``moe.field_limits.help_text``); this page the long one. ``python -m moe.config_docs`` prints the page; ``--write PATH``
writes it; ``--check PATH`` exits 1 when PATH is not the generated text (a test checks the committed page).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from moe.config import FIELD_TYPES, Config, field_help
from moe.field_limits import CAP_REASONS, LIMITS
from moe.records.record import atomic_write_bytes

DOCS = "docs/config.md"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    docs, defaults = field_help(), Config()
    rows = ["| field | type | default | range | meaning |", "|---|---|---|---|---|"]
    for name, kind in FIELD_TYPES.items():
        limit = LIMITS.get(name)
        shown = limit.text().removeprefix("in ") + (f" ({limit.why})" if limit.why else "") if limit else ""
        rows.append(f"| `{name}` | {cell(str(kind))} | `{getattr(defaults, name)!r}` | {cell(shown)} | {cell(docs.get(name, ''))} |")
    reasons = [f"- {fields}: {why}" for fields, why in CAP_REASONS.items()]
    parts = [
        "# Config fields",
        f"Generated from `moe/config.py` by `python -m moe.config_docs --write {DOCS}`; do not edit by hand (a test "
        "checks that this file is the generated text). Every field is a flag of `python -m moe.train` (`--top-k 2`) "
        "and a key of a config or sweep file; `--help` shows each field's range and the first part of its meaning.",
        "\n".join(rows),
        "## Why the caps are where they are\n\n" + "\n".join(reasons),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe.config_docs", description="Print, write or check docs/config.md.")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help=f"write the page to PATH (the committed one: {DOCS})")
    group.add_argument("--check", metavar="PATH", help="exit 1 when PATH is not the generated text")
    args = ap.parse_args(argv)
    text = markdown()
    if args.write:
        atomic_write_bytes(Path(args.write), text.encode("utf-8"))
    elif args.check:
        path = Path(args.check)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"error: {path} is stale or missing: run python -m moe.config_docs --write {path}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
