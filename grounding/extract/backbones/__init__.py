"""Backbones for feature extraction. Adding one is one small module: subclass ``Backbone``, decorate it
with ``@BACKBONES.register("name")``, and import the module here."""

from grounding.extract.backbones import clip, videomae  # noqa: F401  (register the backbones)
from grounding.extract.backbones.base import BACKBONES, Backbone, build_backbone
from grounding.extract.backbones.text import TextEncoder

__all__ = ["BACKBONES", "Backbone", "TextEncoder", "build_backbone"]
