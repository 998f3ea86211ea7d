"""Sentences in: the one check that a query is usable, and its encoding into padded token inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grounding.data.batch import pad_sequences
from grounding.data.records import MomentRecord
from grounding.data.text import TextInput, tokenize
from grounding.errors import GroundingError


def check_queries(queries: str | Sequence[str]) -> tuple[list[str], bool]:
    """``(stripped queries, was_single)``; none at all, or an empty or blank one, is an error rather than a
    silently random answer."""
    single = isinstance(queries, str)
    items = [queries] if single else list(queries)  # type: ignore[list-item]
    if not items:
        raise GroundingError("no query given; pass a sentence or a list of sentences")
    for i, query in enumerate(items):
        if not isinstance(query, str) or not query.strip():
            where = "the query" if single else f"query {i + 1}"
            raise GroundingError(f"{where} is empty; describe the moment in words, e.g. 'a person opens the door'")
    return [q.strip() for q in items], single


def encode_queries(text: TextInput, max_words: int, queries: Sequence[str], device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """Padded token inputs ``(Q, L)`` ids or ``(Q, L, Dw)`` features, their mask, and which were cut short."""
    arrays = [text.encode(MomentRecord(i, query, "video", 1.0, []), max_words) for i, query in enumerate(queries)]
    cut = [len(tokenize(query)) > max_words for query in queries]
    words, mask = pad_sequences(arrays, torch.long if text.kind == "ids" else torch.float32)
    return words.to(device), mask.to(device), cut
