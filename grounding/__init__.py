"""grounding: video temporal grounding (natural-language moment localisation) in PyTorch."""

__version__ = "0.1.0"
