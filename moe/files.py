"""Reading the YAML and JSON files the project reads (configs, sweep files, records), strictly.

``yaml.safe_load`` and ``json.loads`` keep the last of two equal keys silently (``lr: 0.01`` then
``lr: 100`` runs with 100); here a repeated key is an error naming the key and both lines. YAML is read
with a subclass of ``yaml.SafeLoader`` (no object construction), JSON with the standard library.
"""
from __future__ import annotations

import json
from typing import Any

import yaml


class DuplicateKeyError(ValueError):
    """A mapping repeats a key; the message names the key and the lines of both."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise DuplicateKeyError(f"duplicate key {key!r} on line {line} (first on line {first})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` that refuses a repeated key in any mapping (:class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)


def load_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses a repeated key in any object (:class:`DuplicateKeyError`, with its line)."""
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DuplicateKeyError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=unique)
    except DuplicateKeyError as err:  # json gives no position to a hook: find the second occurrence
        key = str(err).split("'", 2)[1] if "'" in str(err) else ""
        raw = text.decode(errors="replace") if isinstance(text, bytes) else text
        lines = [i + 1 for i, ln in enumerate(raw.splitlines()) if json.dumps(key) in ln]
        where = f" on line {lines[1]} (first on line {lines[0]})" if len(lines) >= 2 else ""
        raise DuplicateKeyError(f"duplicate key {key!r}{where}") from None
