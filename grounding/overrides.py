"""Dotted ``key=value`` overrides, checked against the config they change.

A typo in an override (``train.epoch=3``) would otherwise add a key nothing reads while the run uses
the default, and a value of the wrong kind (``train.epochs=two``) would fail deep inside a run. So
every override must name a key the composed config (``_base_`` parts + file) already has, with a value
of the same kind; ``+key=value`` adds a key the config does not have yet.

Kinds: a key whose value is null, ``???``, an interpolation or an empty mapping accepts anything
(under an empty mapping, any sub-key); an integer accepts integers; a float accepts numbers; a boolean
accepts booleans; a string accepts any single value (paths and names may look like numbers); a list
accepts a list; a mapping accepts a mapping whose keys it knows. Null is accepted everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from grounding.errors import GroundingError

ADD_PREFIX = "+"
# Keys that take more than one kind of value by design (a path, or a list of feature-store specs).
ANY_KIND_KEYS = frozenset({"data.features"})


@dataclass
class Override:
    """One ``[+]dotted.key=value`` item, its value parsed as YAML (as OmegaConf parses it)."""

    text: str
    key: str
    value: Any
    add: bool

    def as_dotlist_item(self) -> str:
        return self.text.removeprefix(ADD_PREFIX)


def parse_override(item: str) -> Override:
    if "=" not in item or item.lstrip(ADD_PREFIX).startswith("="):
        raise GroundingError(f"override '{item}' is not of the form dotted.key=value (e.g. train.epochs=5)")
    add = item.startswith(ADD_PREFIX)
    raw_key, raw_value = item.removeprefix(ADD_PREFIX).split("=", 1)
    key = raw_key.strip()
    if not key or any(not part for part in key.split(".")):
        raise GroundingError(f"override '{item}': '{raw_key}' is not a dotted key (e.g. train.epochs)")
    value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={raw_value}"]))["v"]  # type: ignore[index]
    return Override(item, key, value, add)


def _is_open(node: Any) -> bool:
    """A schema value that accepts anything: null, ``???``, an interpolation, an empty mapping."""
    if node is None or node == {}:
        return True
    return isinstance(node, str) and (node == "???" or node.startswith("${"))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list like [a,b]"
    if isinstance(value, dict):
        return "a mapping like {a: 1}"
    return type(value).__name__


def _show(value: Any) -> str:
    """A value as it is written in YAML and on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _fits(expected: Any, value: Any) -> bool:
    """Whether ``value`` is of the kind the schema value ``expected`` has (containers checked elsewhere)."""
    if value is None or _is_open(expected):
        return True
    if isinstance(expected, bool):
        return isinstance(value, bool)
    if isinstance(expected, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(expected, str):
        return not isinstance(value, list | dict)
    if isinstance(expected, list):
        return isinstance(value, list)
    if isinstance(expected, dict):
        return isinstance(value, dict)
    return True


def _paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, child in node.items():
            path = f"{prefix}{key}"
            yield path
            yield from _paths(child, path + ".")


class OverrideChecker:
    """Checks overrides one by one against the composed config, as plain containers."""

    def __init__(self, schema: dict[str, Any], source: str) -> None:
        self.schema = schema
        self.source = source

    def _unknown(self, key: str, override: Override) -> GroundingError:
        known = list(_paths(self.schema))
        close = difflib.get_close_matches(override.key if key in override.key else key, known, n=1, cutoff=0.6)
        close = close or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        shown = key if key.startswith(override.key) else override.key
        return GroundingError(
            f"override '{override.text}': '{shown}' is not a key of {self.source} (or its _base_ parts); "
            f"{hint}write +{override.as_dotlist_item()} to add a new key"
        )

    def _lookup(self, override: Override) -> tuple[bool, Any]:
        """``(found, schema value)``; ``found`` is True with an open value where anything goes below."""
        node: Any = self.schema
        parts = override.key.split(".")
        for depth, part in enumerate(parts):
            if _is_open(node) and depth > 0:
                return True, None
            path = ".".join(parts[: depth + 1])
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise GroundingError(
                    f"override '{override.text}': '{'.'.join(parts[:depth])}' is {_kind(node)}, not a section "
                    "with sub-keys"
                )
            if part not in node:
                if override.add:
                    return False, None
                raise self._unknown(path, override)
            if path in ANY_KIND_KEYS:
                return True, None
            node = node[part]
        return True, node

    def _check_value(self, key: str, expected: Any, value: Any, override: Override) -> None:
        if not _fits(expected, value):
            raise GroundingError(
                f"override '{override.text}': {key} takes {_kind(expected)} (it is {_show(expected)} in "
                f"{self.source}), not '{_show(value)}'"
            )
        if isinstance(expected, dict) and isinstance(value, dict) and not _is_open(expected):
            for sub, sub_value in value.items():
                path = f"{key}.{sub}"
                if path in ANY_KIND_KEYS:
                    continue
                if sub not in expected:
                    raise self._unknown(path, override)
                self._check_value(path, expected[sub], sub_value, override)

    def _add(self, key: str) -> None:
        node = self.schema
        for part in key.split(".")[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[key.split(".")[-1]] = None  # a new key: later overrides of it may take any value

    def check(self, override: Override) -> None:
        found, expected = self._lookup(override)
        if not found:
            self._add(override.key)
            return
        self._check_value(override.key, expected, override.value, override)


def check_overrides(schema: Any, overrides: Sequence[str], source: str = "the config") -> list[Override]:
    """Parse ``overrides`` and check each against ``schema`` (the composed config before overrides)."""
    plain = OmegaConf.to_container(schema, resolve=False) if OmegaConf.is_config(schema) else dict(schema)
    checker = OverrideChecker(plain, source)  # type: ignore[arg-type]
    parsed = [parse_override(item) for item in overrides]
    for override in parsed:
        checker.check(override)
    return parsed
