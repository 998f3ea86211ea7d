"""grounding: video temporal grounding (natural-language moment localisation) in PyTorch."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from grounding import Grounder, Searcher`` without importing torch for ``import grounding`` alone."""
    if name == "Grounder":
        from grounding.api import Grounder

        return Grounder
    if name == "Searcher":
        from grounding.search import Searcher

        return Searcher
    raise AttributeError(f"module 'grounding' has no attribute {name!r}")
