"""A tiny name -> factory registry for the kinds a user picks by name in a config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from grounding.errors import GroundingError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; ``@REG.register("name")`` adds one, ``REG.get("name")`` finds it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = factory
            return factory

        return add

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise GroundingError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
