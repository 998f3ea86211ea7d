"""Model construction from the config's ``model`` section; ``model.name`` picks from ``MODELS``.

Each model has a settings dataclass (``CONFIGS``). An option no model knows is an error (a typo);
an option of another model is ignored, so a config composed from the CCMAN part can switch to the
baseline with ``model.name=span_baseline``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from grounding.data.text import TextInput
from grounding.errors import GroundingError
from grounding.models.baseline import SpanBaseline, SpanBaselineConfig
from grounding.models.ccman import CCMAN, CCMANConfig
from grounding.models.detr import QDDETR, MomentDETR, MomentDETRConfig, QDDETRConfig
from grounding.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")
MODELS.register("ccman")(CCMAN)
MODELS.register("span_baseline")(SpanBaseline)
MODELS.register("moment_detr")(MomentDETR)
MODELS.register("qd_detr")(QDDETR)
CONFIGS: dict[type, type] = {CCMAN: CCMANConfig, SpanBaseline: SpanBaselineConfig, MomentDETR: MomentDETRConfig,
                             QDDETR: QDDETRConfig}


def model_config(model_cfg: Any) -> Any:
    """The settings dataclass of ``model.name`` filled from the config; unknown options are an error."""
    config_class = CONFIGS[MODELS.get(model_cfg.get("name", "ccman"))]
    known = {f.name for f in dataclasses.fields(config_class)}
    any_model = {f.name for cls in CONFIGS.values() for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dict(model_cfg).items() if k != "name"}
    unknown = sorted(set(values) - any_model)
    if unknown:
        raise GroundingError(f"unknown model option(s) {unknown} for model '{model_cfg.get('name', 'ccman')}'; "
                             f"known: {sorted(known)}")
    values = {k: v for k, v in values.items() if k in known}
    values = {k: list(v) if isinstance(v, list | tuple) or type(v).__name__ == "ListConfig" else v
              for k, v in values.items()}
    return config_class(**values)


def build_model(model_cfg: Any, vocab_size: int | None = None, token_feat_dim: int | None = None,
                pretrained_words: Any = None) -> nn.Module:
    return MODELS.get(model_cfg.get("name", "ccman"))(model_config(model_cfg), vocab_size, token_feat_dim, pretrained_words)


def build_model_for_text(model_cfg: Any, text: TextInput, seed: int = 0) -> nn.Module:
    """A model whose query input layer fits ``text``: a word table of its vocabulary (GloVe-initialised
    where configured) or a projection of its token features."""
    if text.vocab_size is not None:
        pretrained = text.pretrained_embeddings(model_cfg.get("word_dim", 300), seed)  # type: ignore[attr-defined]
        return build_model(model_cfg, vocab_size=text.vocab_size, pretrained_words=pretrained)
    return build_model(model_cfg, token_feat_dim=text.feature_dim)
