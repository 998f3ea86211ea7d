"""grounding: video temporal grounding (natural-language moment localisation) in PyTorch."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from grounding import Grounder`` without importing torch for ``import grounding`` alone."""
    if name == "Grounder":
        from grounding.api import Grounder

        return Grounder
    raise AttributeError(f"module 'grounding' has no attribute {name!r}")
