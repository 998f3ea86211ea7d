"""Training losses: localisation terms per stage, alignment terms in the shared embedding space, and the
DETR family's set-prediction and saliency terms."""

from grounding.losses import alignment, compat, localization, relation, set_prediction  # noqa: F401  (registers the losses)
from grounding.losses.base import LOSSES, Criterion, build_criterion

__all__ = ["LOSSES", "Criterion", "build_criterion"]
