"""Frozen networks that turn frames and sentences into features: the video backbones by name
(``base``, ``clip``, ``videomae``), the query text encoder (``text``) and the frame preprocessing each
backbone declares (``transforms``).

A package of its own, below both its users: feature extraction (``grounding.extract``) and the data
layer's text features (``grounding.data.text``) import it, and it imports neither. Adding a backbone is
one small module: subclass ``Backbone``, decorate it with ``@BACKBONES.register("name")``, and import
the module here."""

from grounding.backbones import clip, videomae  # noqa: F401  (register the backbones)
from grounding.backbones.base import BACKBONES, Backbone, build_backbone
from grounding.backbones.text import TextEncoder

__all__ = ["BACKBONES", "Backbone", "TextEncoder", "build_backbone"]
