"""Encoding a video for a checkpoint trained on a recipe's features (``--recipe``, e.g. the released
QVHighlights SlowFast + CLIP set): the recipe's own decoding, sampling and backbones, with the weights
the features were made with.

The weights of each part come from, in order: what the user names (``Grounder.from_pretrained(...,
recipe_weights=...)``, ``tools/ground.py --recipe-weights [PART=]PATH``; the same forms as
``tools/extract_features.py --weights``), else the path recorded in the checkpoint's provenance when
it exists on this machine. Where the provenance records a weights hash, weights with another hash are
refused: they would make other features than the model was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from grounding.errors import GroundingError
from grounding.extract.recipes import Recipe, get_recipe
from grounding.extract.recipes.encode import concatenate, encode_recipe, load_models, probe
from grounding.extract.recipes.weights import resolve_weights, weights_fingerprint


def recipe_store(recipe: dict[str, Any], video_dim: int | None) -> dict[str, Any]:
    """A recipe as a feature description (``describe``/``same_features`` compare these)."""
    files = "+".join(str(p.get("weights_file") or p.get("part")) for p in recipe.get("parts") or []) or None
    return {"backbone": f"recipe:{recipe['name']}", "model": files, "clip_len": recipe.get("clip_len"),
            "frames_per_clip": None, "feature_dim": video_dim, "recipe": recipe["name"],
            "max_duration": recipe.get("max_duration")}


class RecipeEncoder:
    """The backbones of one recipe, loaded once, encoding whole videos."""

    def __init__(self, provenance_recipe: dict[str, Any], weights: list[str] | str | Path | None, where: str,
                 device: torch.device, video_dim: int | None) -> None:
        self.recipe: Recipe = get_recipe(str(provenance_recipe["name"]))
        self.recorded = {p.get("part"): p for p in provenance_recipe.get("parts") or []}
        self.where, self.device, self.video_dim = where, device, video_dim
        self.weights = self._weights(weights)
        self._models: dict[str, nn.Module] | None = None

    def _weights(self, given: list[str] | str | Path | None) -> dict[str, Path]:
        recipe = self.recipe
        paths = resolve_weights(recipe, given, partial=True) if given else {}
        for part in recipe.parts:
            if part.name in paths:
                continue
            recorded = self.recorded.get(part.name, {}).get("weights")
            if not recorded or not Path(recorded).exists():
                needs = self.recorded.get(part.name, {}).get("weights_file") or part.weights_name
                at = f" (recorded at {recorded}, not on this machine)" if recorded else ""
                raise GroundingError(
                    f"{self.where} was trained on features of recipe {recipe.name}; encoding a video needs its "
                    f"{part.name} weights {needs}{at}; pass --recipe-weights {part.name}=PATH (tools/ground.py) "
                    f"or recipe_weights=... (Grounder.from_pretrained); source: {part.weights_source}")
            paths[part.name] = Path(recorded)
        for name, path in paths.items():
            expected = self.recorded.get(name, {}).get("weights_sha256")
            if expected and weights_fingerprint(path) != expected:
                raise GroundingError(
                    f"{path} (sha256 {weights_fingerprint(path)}) is not the {name} weights {self.where}'s training "
                    f"features were made with ({self.recorded[name].get('weights_file')}, sha256 {expected}); "
                    "pass that file: other weights make other features")
        return paths

    def models(self) -> dict[str, nn.Module]:
        if self._models is None:
            models = load_models(self.recipe, self.weights, self.device)
            dims = {name: int(getattr(model, "feature_dim", self.recipe.part(name).feature_dim))
                    for name, model in models.items()}
            if self.video_dim and sum(dims.values()) != self.video_dim:
                raise GroundingError(
                    f"the weights {', '.join(str(p) for p in self.weights.values())} give {sum(dims.values())}-d "
                    f"features ({dims}), but {self.where} takes {self.video_dim}-d ones; pass the weights its "
                    f"training features of recipe {self.recipe.name} were made with")
            self._models = models
        return self._models

    def encode(self, path: str | Path) -> tuple[np.ndarray, float]:
        """``(T, D)`` features in the layout the checkpoint was trained on, and the duration in seconds."""
        video = probe(path, self.recipe)  # bad files fail before the backbones are loaded
        feats = encode_recipe(self.recipe, self.models(), video, self.device)
        return concatenate(self.recipe, feats), video.info.duration

