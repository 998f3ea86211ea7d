"""Models: encoders, the CCMAN cascade, the plain span baseline, the shared embedding space, decoding."""

from grounding.models.build import MODELS, build_model, build_model_for_text
from grounding.models.outputs import GroundingOutput, SpaceOutput, StageOutput

__all__ = ["MODELS", "GroundingOutput", "SpaceOutput", "StageOutput", "build_model", "build_model_for_text"]
