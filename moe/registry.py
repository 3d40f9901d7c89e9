"""Registries by name: datasets, routers, experts, objectives and sweeps are looked up here.

A registry raises on a duplicate name and answers an unknown name with the valid choices and the
closest match, so that a typo in a config or a sweep file fails before any work starts.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


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
        close = difflib.get_close_matches(str(name), list(self._items), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{field or self.kind}: unknown {self.kind} {name!r}{hint}; valid choices: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
