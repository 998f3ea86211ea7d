"""Query text features from a transformers text encoder: per-token features and one sentence vector.

``tokens`` ``(L, D)`` are the last hidden states of the L real tokens (special tokens included, padding
excluded), as in the precomputed CLIP text features of Moment-DETR. ``pooled`` ``(D,)`` is the model's
own sentence state where it has a meaningful one (CLIP: the end-of-text token), else the mean of the
token features (BERT's pooler is a next-sentence head and is often missing from checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from grounding.backbones.base import load_config, load_weights, require_model_dir


class TextEncoder(nn.Module):
    def __init__(self, model_dir: str | Path | None) -> None:
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel

        super().__init__()
        model_dir = require_model_dir(model_dir)
        config = load_config(model_dir)
        self.use_pooler = config.model_type in ("clip", "clip_text_model")
        if self.use_pooler:
            text_config = config.text_config if config.model_type == "clip" else config
            self.model = load_weights(CLIPTextModel, model_dir, config=text_config)
        else:
            text_config = config
            self.model = load_weights(AutoModel, model_dir, unused_prefixes=("pooler.",))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.feature_dim = int(text_config.hidden_size)
        limit = getattr(text_config, "max_position_embeddings", None) or 512
        self.max_length = int(min(self.tokenizer.model_max_length, limit))

    @torch.inference_mode()
    def encode(self, sentences: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(tokens (L_i, D), pooled (D,))`` float32 per sentence; long sentences are truncated."""
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        out = self.model(**batch)
        hidden = out.last_hidden_state.float()  # (B, L, D)
        mask = batch["attention_mask"].bool()  # (B, L)
        if self.use_pooler:
            pooled = out.pooler_output.float()
        else:
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return [
            (hidden[i][mask[i]].cpu().numpy(), pooled[i].cpu().numpy()) for i in range(hidden.shape[0])
        ]
