"""Reading the YAML and JSON files the project reads (configs, sweep files, records), strictly.

``yaml.safe_load`` and ``json.loads`` keep the last of two equal keys silently (``lr: 0.01`` then
``lr: 100`` runs with 100); here a repeated key is an error naming the key and both lines. YAML is read
with a subclass of ``yaml.SafeLoader`` (no object construction), JSON with the standard library.

Anchors and aliases (``&base`` ... ``<<: *base``) are read, but what they expand to is counted before
anything is built: a document whose values, aliases expanded, number more than :data:`MAX_YAML_VALUES`
is refused (:class:`ExpansionError`), so that a few hundred bytes of nested aliases (a 'billion laughs')
cannot take minutes and gigabytes before the one-line error.

A YAML text already read is not parsed again (:func:`load_yaml` keeps the values of the last texts and hands out deep
copies): sweep checks, trials and grid values read the same few texts thousands of times.
"""
from __future__ import annotations

import copy
import functools
import json
from typing import Any

import yaml


class DuplicateKeyError(ValueError):
    """A mapping repeats a key; the message names the key and the lines of both."""


def _key(key: Any) -> str:
    """A repeated key for the message, cut to ~80 characters (as ``moe.registry.shown``; this module is a leaf)."""
    text = repr(key[:320] if isinstance(key, str) else key)
    return text if len(text) <= 80 else f"{text[:75]}...{text[-2:]}"


MAX_YAML_VALUES = 100_000  # scalars, lists and mappings of one YAML document, its aliases expanded


class ExpansionError(yaml.YAMLError):
    """A YAML document whose aliases expand to more than :data:`MAX_YAML_VALUES` values."""


def expanded_size(root: yaml.Node, cap: int) -> int:
    """The number of nodes of ``root`` with every alias expanded (a node reached twice counts twice), counted
    over the distinct nodes only (linear in the text) and stopping once past ``cap``."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            sizes[id(node)] = min(cap + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


class _UniqueKeyLoader(yaml.SafeLoader):
    def compose_document(self):
        node = super().compose_document()
        if self.anchors_used and node is not None and expanded_size(node, MAX_YAML_VALUES) > MAX_YAML_VALUES:
            raise ExpansionError(f"its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values "
                                 f"(anchors nested inside anchors?); write the values out")
        return node

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.anchors_used = True
        return super().compose_node(parent, index)

    anchors_used = False

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
                raise DuplicateKeyError(f"duplicate key {_key(key)} on line {line} (first on line {first})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


YAML_CACHE_SIZE = 512  # texts parsed whose values are kept (a sweep file, its values, --set values: ~100 in a test run)


@functools.lru_cache(maxsize=YAML_CACHE_SIZE)
def _parsed(text: str | bytes) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` that refuses a repeated key in any mapping (:class:`DuplicateKeyError`).

    The same text is parsed once (the last :data:`YAML_CACHE_SIZE` texts are kept: a sweep is read by each check
    and each trial, and its grid values ``name[k=v]`` one by one) and each call gets a deep copy of its values, so a
    caller may change what it gets; a text that fails is parsed again, to the same error."""
    return copy.deepcopy(_parsed(text))


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
        raise DuplicateKeyError(f"duplicate key {_key(key)}{where}") from None
