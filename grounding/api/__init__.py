"""Using trained models on your own videos: ``Grounder`` (DESIGN.md section 7), the ``ground`` and
``serve`` commands, and the HTML report. Imported lazily, so that ``import grounding.api`` stays light."""

from typing import Any

__all__ = ["EncodedVideo", "Grounder"]


def __getattr__(name: str) -> Any:
    if name == "Grounder":
        from grounding.api.grounder import Grounder

        return Grounder
    if name == "EncodedVideo":
        from grounding.api.encoding import EncodedVideo

        return EncodedVideo
    raise AttributeError(f"module 'grounding.api' has no attribute {name!r}")
