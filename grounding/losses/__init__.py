"""Training losses: localisation terms per stage and alignment terms in the shared embedding space."""

from grounding.losses import alignment, compat, localization, relation  # noqa: F401  (registers the losses)
from grounding.losses.base import LOSSES, Criterion, build_criterion

__all__ = ["LOSSES", "Criterion", "build_criterion"]
