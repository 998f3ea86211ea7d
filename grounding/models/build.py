"""Model construction from the config's ``model`` section; ``model.name`` picks from ``MODELS``."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from grounding.errors import GroundingError
from grounding.models.baseline import SpanBaseline
from grounding.models.ccman import CCMAN, CCMANConfig
from grounding.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")
MODELS.register("ccman")(CCMAN)
MODELS.register("span_baseline")(SpanBaseline)


def model_config(model_cfg: Any) -> CCMANConfig:
    known = {f.name for f in dataclasses.fields(CCMANConfig)}
    values = {k: v for k, v in dict(model_cfg).items() if k != "name"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise GroundingError(f"unknown model option(s) {unknown}; known: {sorted(known)}")
    if "stages" in values:
        values["stages"] = list(values["stages"])
    return CCMANConfig(**values)


def build_model(model_cfg: Any, vocab_size: int | None = None, token_feat_dim: int | None = None,
                pretrained_words: Any = None) -> nn.Module:
    return MODELS.get(model_cfg.get("name", "ccman"))(model_config(model_cfg), vocab_size, token_feat_dim, pretrained_words)
