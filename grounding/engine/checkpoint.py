"""Checkpoints written atomically: a crash mid-write never leaves a broken ``last.pt``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from grounding.atomic import write_atomic
from grounding.errors import GroundingError

log = logging.getLogger("grounding")


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` that never leaves a broken file (``grounding.atomic.write_atomic``)."""
    write_atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"checkpoint {path} does not exist; give the .pt written by tools/train_grounding.py")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise GroundingError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err


OPTIONAL_PARTS = ("saliency_head.",)  # parts added since checkpoints were first written


def load_weights(model: torch.nn.Module, state: dict[str, Any], source: str | Path) -> None:
    """Load a checkpoint's weights into ``model``, with an error that says what to do when they do not fit.

    A checkpoint written before the saliency head existed loads without it: the model then predicts
    saliency from its inside-moment scores, as such checkpoints always did (``model.saliency_head=None``).
    """
    missing = set(model.state_dict()) - set(state["model"])
    if missing and all(k.startswith(OPTIONAL_PARTS) for k in missing):
        model.load_state_dict(state["model"], strict=False)
        model.saliency_head = None
        log.warning("%s has no saliency head (written before it existed): saliency comes from the inside scores", source)
        return
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise GroundingError(
            f"checkpoint {source} does not fit the model of this config ({str(err).splitlines()[0]}); use the "
            "config.yaml saved beside the checkpoint (checkpoints written before the q/k/v fusion of daf3be6 "
            "cannot be loaded: retrain them)"
        ) from err
