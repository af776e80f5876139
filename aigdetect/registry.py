"""One registry type for every table of named things: backbones, built-in detectors, benchmark suites."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries, listed in a fixed order; an unknown name is refused with the known ones.

    Entries should be frozen dataclasses, so that what ``get`` returns cannot change the table.
    """

    def __init__(self, kind: str, entries: Iterable[T], name: Callable[[T], str] = lambda entry: entry.name) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for entry in entries:
            key = name(entry)
            if key in self._entries:
                raise ConfigError(f"{kind} {key!r} is registered twice")
            self._entries[key] = entry

    def names(self) -> list[str]:
        return list(self._entries)

    def list(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def find(self, name: str) -> T | None:
        """The entry called ``name``, or None when there is none."""
        return self._entries.get(name)

    def get(self, name: str) -> T:
        """The entry called ``name``.

        Raises:
            ConfigError: no entry has that name; the message lists the known ones.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        return entry
