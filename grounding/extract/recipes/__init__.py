"""Feature recipes: named reproductions of the released benchmark feature sets (``--recipe NAME``).

``RECIPES`` maps a name to a function returning its ``Recipe`` (``base.py`` says what a recipe holds
and how a new one plugs in); ``get_recipe(name)`` builds one. Modules: ``base`` (the types),
``weights`` (``--weights`` and fingerprints), ``frames`` (ffmpeg decoding as the reference pipelines
do), ``encode`` (one video through a recipe), ``run`` (the extraction run), and one module per recipe.
"""

from __future__ import annotations

from grounding.extract.recipes.base import Recipe, RecipePart
from grounding.registry import Registry

RECIPES: Registry[Recipe] = Registry("feature recipe")


def get_recipe(name: str) -> Recipe:
    """The registered recipe ``name`` (a ``GroundingError`` listing the names if there is none)."""
    return RECIPES.get(name)()


from grounding.extract.recipes import charades_i3d, qvh_slowfast_clip  # noqa: E402,F401  (registers the recipes)

__all__ = ["RECIPES", "Recipe", "RecipePart", "get_recipe"]
