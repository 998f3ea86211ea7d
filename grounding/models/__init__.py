"""Models: encoders, the CCMAN cascade, the plain span baseline, the shared embedding space, decoding."""

from grounding.models.build import MODELS, build_model

__all__ = ["MODELS", "build_model"]
