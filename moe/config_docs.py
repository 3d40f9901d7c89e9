"""docs/config.md, generated from ``moe.config`` and ``moe.field_limits``: every field with its type, default, range
(``LIMITS``) and whole comment, then why each cap is where it is (``CAP_REASONS``). ``python -m moe.train --help``
shows the short form (``moe.field_limits.help_text``); this page the long one. ``python -m moe.config_docs`` prints the page; ``--write PATH``
writes it; ``--check PATH`` exits 1 when PATH is not the generated text (a test checks the committed page).
"""
from __future__ import annotations

import sys

from moe.config import FIELD_TYPES, Config, field_help
from moe.field_limits import CAP_REASONS, LIMITS
from moe.records.record import generated_page_main

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
    return generated_page_main("moe.config_docs", DOCS, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
