"""Zero-shot grounding with a CLIP model alone: no grounding checkpoint, no training.

Each clip is encoded by CLIP's image tower (``clip_len`` seconds per clip, the middle frame, as the
extractor's ``--backbone clip``), each query by its text tower; ``s_t`` is the cosine similarity of
clip ``t`` with the query. The window search is a *scan statistic*: standardise the curve over the
video (``z_t = (s_t - mean) / std``, which removes the video's constant offset to the query) and score
every window of at most ``max_len`` of the video by

    score(i, j) = sum_{t=i..j} (z_t - tau)

For a curve that is noise plus a mean shift ``delta`` inside the moment, this sum is (up to scale)
the log-likelihood ratio of "the moment is [i, j]" against "no moment" with ``tau = delta / 2``: it
grows while the window takes in clips clearly above average and shrinks once it takes in ordinary
ones, so it finds the extent of a moment rather than its single best frame. ``tau = 0.5`` (a moment
one standard deviation above the rest) is the default. The best windows go through temporal NMS.
Scores are the window sums (larger is better); ``pred_saliency_scores`` are the raw similarities.
``docs/grounding_api.md`` compares it with simpler searches and with trained CCMAN on synthetic data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.api.encoding import EncodedVideo, encode_file, open_video
from grounding.api.grounder import check_same_recipe
from grounding.device import select_device
from grounding.errors import GroundingError
from grounding.inference import prediction_record
from grounding.inference.queries import check_queries
from grounding.models.decoding import batched_nms


def window_scores(sim: np.ndarray, tau: float, max_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows up to ``max_clips`` long: ``(starts_ends (M, 2) inclusive clip indices, scores (M,))``."""
    z = (sim - sim.mean()) / (sim.std() + 1e-6)
    csum = np.concatenate([[0.0], np.cumsum(z - tau)])
    t = len(sim)
    spans, scores = [], []
    for length in range(1, min(max_clips, t) + 1):
        starts = np.arange(t - length + 1)
        spans.append(np.stack([starts, starts + length - 1], 1))
        scores.append(csum[length:] - csum[:-length])
    return np.concatenate(spans), np.concatenate(scores)


def search_windows(sim: np.ndarray, clip_len: float, duration: float, top_k: int = 5, tau: float = 0.5,
                   max_len: float = 0.5, nms_threshold: float = 0.5, candidates: int = 200) -> list[list[float]]:
    """Ranked ``[start_s, end_s, score]`` windows of one similarity curve (see the module docstring)."""
    max_clips = max(1, int(round(max_len * len(sim))))
    spans, scores = window_scores(np.asarray(sim, dtype=np.float64), tau, max_clips)
    order = np.argsort(-scores, kind="stable")[:candidates]
    secs = np.stack([spans[order, 0] * clip_len, np.minimum((spans[order, 1] + 1) * clip_len, duration)], 1)
    # batched_nms keeps only positive scores; shift so that the best candidates are all kept as positive
    shifted = scores[order] - scores[order].min() + 1e-6
    keep = batched_nms(torch.from_numpy(secs)[None], torch.from_numpy(shifted)[None], nms_threshold)[0].numpy()
    return [[float(s), float(e), float(c)] for (s, e), c, k in zip(secs, scores[order], keep, strict=True) if k][:top_k]


class ZeroShotGrounder:
    """Same interface as ``Grounder`` (``encode_video``, ``predict``), backed by a local CLIP folder."""

    def __init__(self, clip_model_dir: str | Path, device: str = "auto", clip_len: float = 2.0, tau: float = 0.5) -> None:
        from grounding.backbones.base import load_config, require_model_dir

        self.model_dir = require_model_dir(clip_model_dir, "the zero-shot CLIP folder")
        config = load_config(self.model_dir)
        if config.model_type != "clip":
            raise GroundingError(f"{self.model_dir} holds a '{config.model_type}' model; zero-shot grounding needs a "
                                 "full CLIP model (image and text towers, model_type clip)")
        if not any((self.model_dir / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
            raise GroundingError(f"{self.model_dir} has no tokenizer files; save the CLIP processor/tokenizer there too")
        self.config = config
        self.device = select_device(device, setting="device")
        self.clip_len = float(clip_len)
        self.tau = tau
        self._backbone = None
        self._text = None

    @property
    def name(self) -> str:
        return f"zero-shot CLIP {self.model_dir}"

    def feature_recipe(self) -> dict[str, Any]:
        return {"backbone": "clip", "model": str(self.model_dir), "clip_len": self.clip_len, "frames_per_clip": 1,
                "clip_count": "ceil", "feature_dim": int(self.config.projection_dim)}

    def _models(self):
        if self._backbone is None:
            from transformers import AutoTokenizer, CLIPTextModelWithProjection

            from grounding.backbones import build_backbone
            from grounding.backbones.base import load_weights

            self._backbone = build_backbone("clip", self.model_dir, 1).to(self.device).eval()
            text_config = self.config.text_config
            text_config.projection_dim = self.config.projection_dim  # lives on the parent config only
            model = load_weights(CLIPTextModelWithProjection, self.model_dir, config=text_config).to(self.device)
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            limit = int(min(tokenizer.model_max_length, text_config.max_position_embeddings))
            self._text = (model, tokenizer, limit)
        return self._backbone, self._text

    def encode_video(self, path: str | Path, vid: str | None = None, reader: Any = None) -> EncodedVideo:
        from grounding.extract.sampling import ClipSampling

        reader = open_video(path, self.clip_len, reader)
        backbone, _ = self._models()
        feats, duration = encode_file(path, backbone, ClipSampling(self.clip_len, 1), self.device, reader=reader)
        return EncodedVideo(vid or Path(path).stem, duration, self.clip_len, feats, self.feature_recipe(), str(path))

    @torch.inference_mode()
    def encode_text(self, queries: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Unit-length projected text embeddings ``(Q, D)`` and which queries were cut at the token limit."""
        _, (model, tokenizer, limit) = self._models()
        full = tokenizer(queries)["input_ids"]
        batch = tokenizer(queries, padding=True, truncation=True, max_length=limit, return_tensors="pt").to(self.device)
        emb = model(**batch).text_embeds.float()
        emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return emb.cpu().numpy(), [len(ids) > limit for ids in full]

    def predict(self, queries: str | list[str], video: EncodedVideo, top_k: int = 5) -> dict[str, Any] | list[dict[str, Any]]:
        items, single = check_queries(queries)
        check_same_recipe(video, self.feature_recipe(), self.name)
        clips = video.features / np.maximum(np.linalg.norm(video.features, axis=1, keepdims=True), 1e-6)
        text, cut = self.encode_text(items)
        _, (_, _, limit) = self._models()
        sims = text @ clips.T  # (Q, T)
        out = []
        for qi, query in enumerate(items):
            pred = search_windows(sims[qi], video.clip_len, video.duration, top_k, self.tau)
            warnings = [f"the query was cut to {limit} tokens, the text encoder's limit"] if cut[qi] else ()
            out.append(prediction_record(video.vid, query, np.asarray(pred, dtype=np.float64).reshape(-1, 3), sims[qi],
                                         duration=video.duration, warnings=warnings))
        return out[0] if single else out
