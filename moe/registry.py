"""Registries by name: datasets, routers, experts, objectives and sweeps are looked up here.

A registry raises on a duplicate name and answers an unknown name with the valid choices and the
closest match, so that a typo in a config or a sweep file fails before any work starts.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def shown(value: object, limit: int = 80) -> str:
    """A value for a message: its repr, cut to ``limit`` characters (a list of a million rates, or a name of a
    megabyte, stays one short line). Every message that echoes what a user wrote shows it through this."""
    text = repr(value) if not isinstance(value, str) or len(value) <= 4 * limit else repr(value[:4 * limit])
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


def shown_key(key: object, limit: int = 80) -> str:
    """A key for the start of a message (``lrr: unknown config key``): as written, unquoted, cut like :func:`shown`."""
    text = key[:4 * limit] if isinstance(key, str) else shown(key, limit)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


MAX_NAME_RATIO = 2  # 'did you mean' is tried only for names at most this many times (+ 4) the longest choice


def did_you_mean(name: object, choices: Iterable[str]) -> str | None:
    """The valid choice a user most likely meant by ``name``, or None when nothing is close.

    Ranked, best first: the same name in another case; a plural or singular of it (``epoch`` ->
    ``epochs``); a choice that ``name`` begins (``lr_r`` -> ``lr_ratio``), the shortest first; then the
    fewest edits (an adjacent swap counts as one), preferring a choice with exactly the same letters
    (``experst`` -> ``experts``, not ``expert``), then the most letters in common (difflib's ratio).
    The one 'did you mean' of the project: configs, registries, sweep files, claims, benchmarks.
    A name far longer than every choice (:data:`MAX_NAME_RATIO`) is no typo of one: None at once, so that
    the edit distances (quadratic in the lengths) never run on a pasted megabyte.
    """
    choices = list(dict.fromkeys(choices))
    longest = max((len(str(c)) for c in choices), default=0)
    if not isinstance(name, (str, int, float)):  # a list or a mapping where a name belongs: no name is close
        return None
    s = str(name).lower()
    if len(s) > MAX_NAME_RATIO * longest + 4:
        return None
    best: tuple | None = None
    for choice in choices:
        c = str(choice).lower()
        ratio = difflib.SequenceMatcher(None, s, c).ratio()
        if c == s:
            key: tuple = (0,)
        elif c in (s + "s", s + "es") or s in (c + "s", c + "es"):
            key = (1, -ratio)
        elif len(s) >= 2 and c.startswith(s):
            key = (2, abs(len(c) - len(s)), -ratio)
        elif (dist := _edit_distance(s, c)) <= max(1, len(s) // 3):
            key = (3, dist, sorted(c) != sorted(s), -ratio)
        elif ratio >= 0.6:
            key = (4, -ratio)
        else:
            continue
        if best is None or key < best[0]:
            best = (key, choice)
    return None if best is None else best[1]


def suggestion(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid choice (:func:`did_you_mean`), else ``''``."""
    close = did_you_mean(name, choices)
    return f" (did you mean {close!r}?)" if close is not None else ""


class UnknownNameError(ValueError):
    """An unknown registry name; the message names the field and the valid choices."""


class Registry(Generic[T]):
    """A name -> object table. ``@REG.register("name")`` adds a class or function."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str, field: str | None = None) -> T:
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name, field))
        return self._items[name]

    def unknown_message(self, name: object, field: str | None = None) -> str:
        return f"{field or self.kind}: unknown {self.kind} {shown(name)}{suggestion(name, self._items)}; valid choices: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """The names in the order they were registered (a display order, where one matters)."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
