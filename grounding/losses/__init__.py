"""Training losses: localisation terms per stage and alignment terms in the shared embedding space."""

from grounding.losses.base import LOSSES, Criterion, build_criterion
from grounding.losses import alignment, localization  # noqa: F401  (registers the losses)

__all__ = ["LOSSES", "Criterion", "build_criterion"]
