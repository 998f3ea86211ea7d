"""The ``data`` section's defaults, stated once: every reader of ``data.root`` or ``data.max_words`` asks here."""

from __future__ import annotations

from typing import Any

DEFAULT_ROOT = "."
DEFAULT_MAX_WORDS = 30  # words of a query the model reads; longer queries are cut (and the Grounder says so)
DEFAULT_DATASET = "native"


def data_section(cfg: Any) -> Any:
    """``cfg.data`` of a whole config, or ``cfg`` itself when it already is the data section."""
    return (cfg.get("data") or {}) if "data" in cfg else cfg


def data_root(cfg: Any) -> str:
    return str(data_section(cfg).get("root") or DEFAULT_ROOT)


def max_words(cfg: Any) -> int:
    return int(data_section(cfg).get("max_words") or DEFAULT_MAX_WORDS)


def dataset_name(cfg: Any) -> str:
    return str(data_section(cfg).get("dataset") or DEFAULT_DATASET)
