"""``Grounder``: a trained checkpoint as a function from (sentence, video file) to moments in seconds.

    g = Grounder.from_pretrained("work_dirs/run")          # or a .pt; device="auto" | "cpu" | "cuda"
    video = g.encode_video("movie.mp4")                      # once per video, any length
    g.predict("person opens the fridge", video, top_k=5)     # a dict; a list of queries gives a list

``encode_video`` reproduces the checkpoint's training features (``provenance.py``); long videos are
handled by ``long_video.py``; the checkpoint plumbing lives in ``loading.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.api import loading
from grounding.api.encoding import EncodedVideo, encode_file, open_video
from grounding.api.long_video import (
    merge_windows,
    native_saliency,
    plan_windows,
    stack_windows,
    window_clip_count,
    window_mean,
)
from grounding.data.provenance import describe, same_features, single_store
from grounding.errors import GroundingError


def as_query_list(queries: str | list[str]) -> tuple[list[str], bool]:
    """``(queries, was_single)``; an empty or blank query is an error, not a silently random answer."""
    single = isinstance(queries, str)
    items = [queries] if single else list(queries)
    if not items:
        raise GroundingError("no query given; pass a sentence or a list of sentences")
    for i, q in enumerate(items):
        if not isinstance(q, str) or not q.strip():
            where = "the query" if single else f"query {i + 1}"
            raise GroundingError(f"{where} is empty; describe the moment in words, e.g. 'a person opens the door'")
    return [q.strip() for q in items], single


def check_same_recipe(video: EncodedVideo, expected: dict[str, Any], where: str) -> None:
    """Features from another backbone (or clip length, model, dim) are refused, naming both."""
    if video.provenance.get("backbone") and expected.get("backbone") and not same_features(video.provenance, expected):
        raise GroundingError(
            f"video '{video.vid}' was encoded with {describe(video.provenance)}, but {where} was trained on "
            f"{describe(expected)}; encode the video with this model's encode_video")


class Grounder:
    """A trained grounding checkpoint ready to answer queries about new videos."""

    def __init__(self, loaded: loading.LoadedCheckpoint, backbone_dir: str | Path | None = None,
                 batch_rows: int = 256) -> None:
        self.loaded = loaded
        self.provenance: dict[str, Any] = dict(loaded.provenance or {})
        self.backbone_dir = backbone_dir
        self.batch_rows = batch_rows
        self._backbone = None
        data = loaded.config.get("data", {})
        self.num_clips: int | None = data.get("num_clips")
        self.max_clips: int | None = data.get("max_clips")
        self.l2_normalize = bool(data.get("l2_normalize", False))
        self.video_dim = int(loaded.config["model"].get("video_dim", 0))

    @classmethod
    def from_pretrained(cls, work_dir_or_checkpoint: str | Path, device: str = "auto",
                        backbone_dir: str | Path | None = None) -> Grounder:
        """Load ``checkpoints/best.pt`` (else ``last.pt``) of a work dir, or a ``.pt``. ``backbone_dir``
        points to the feature model's folder where it differs from the one recorded at training."""
        return cls(loading.load_for_inference(work_dir_or_checkpoint, device), backbone_dir)

    @staticmethod
    def zero_shot(clip_model_dir: str | Path, device: str = "auto", clip_len: float = 2.0):
        """No trained checkpoint: ground by CLIP text-clip similarity (see ``zero_shot.py``)."""
        from grounding.api.zero_shot import ZeroShotGrounder

        return ZeroShotGrounder(clip_model_dir, device, clip_len)

    # ------------------------------------------------------------------ videos
    @property
    def name(self) -> str:
        return f"checkpoint {self.loaded.path}"

    def feature_recipe(self) -> dict[str, Any]:
        """Backbone, model folder, clip length, frames per clip, dim of the training features."""
        recipe = dict(single_store(self.provenance, self.name))
        if self.backbone_dir is not None:
            recipe["model"] = str(self.backbone_dir)
        return recipe

    def knows_recipe(self) -> bool:
        stores = self.provenance.get("stores") or []
        return len(stores) == 1 and bool(stores[0].get("backbone"))

    def _get_backbone(self):
        if self._backbone is None:
            from grounding.backbones import build_backbone

            recipe = self.feature_recipe()
            if not Path(str(recipe["model"])).is_dir():
                raise GroundingError(
                    f"the feature model folder {recipe['model']} that {self.name} was trained with does not exist "
                    "here; pass backbone_dir=... (--backbone-dir) pointing to a copy of it")
            backbone = build_backbone(recipe["backbone"], recipe["model"], recipe.get("frames_per_clip"))
            if recipe.get("feature_dim") and backbone.feature_dim != int(recipe["feature_dim"]):
                raise GroundingError(
                    f"{recipe['model']} gives {backbone.feature_dim}-d features, but {self.name} was trained on "
                    f"{recipe['feature_dim']}-d ones from {describe(recipe)}; pass the right backbone_dir")
            self._backbone = backbone.to(self.loaded.device).eval()
        return self._backbone

    def encode_video(self, path: str | Path, vid: str | None = None) -> EncodedVideo:
        """Decode (streaming) and encode ``path`` exactly as the checkpoint's training features were made."""
        from grounding.extract.sampling import ClipSampling

        recipe = self.feature_recipe()
        clip_len = float(recipe["clip_len"])
        reader = open_video(path, clip_len)  # bad files fail before the backbone is loaded
        backbone = self._get_backbone()
        sampling = ClipSampling(clip_len, backbone.frames_per_clip, recipe.get("clip_count") or "ceil")
        feats, duration = encode_file(path, backbone, sampling, self.loaded.device, reader=reader)
        made = {**recipe, "feature_dim": int(feats.shape[1]), "frames_per_clip": backbone.frames_per_clip}
        return EncodedVideo(vid or Path(path).stem, duration, clip_len, feats, made, str(path))

    def video_from_features(self, features: np.ndarray, duration: float, vid: str = "video",
                            provenance: dict[str, Any] | None = None) -> EncodedVideo:
        """Wrap precomputed ``(T, D)`` clip features (e.g. from ``tools/extract_features.py``)."""
        feats = np.asarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise GroundingError(f"features of '{vid}' have shape {feats.shape}; expected (clips, dim)")
        prov = dict(provenance or {})
        clip_len = float(prov.get("clip_len") or duration / feats.shape[0])
        return EncodedVideo(vid, float(duration), clip_len, feats, prov)

    # ------------------------------------------------------------------ queries
    def _windows(self, video: EncodedVideo) -> dict[str, Any]:
        key = ("windows", id(self))
        if key not in video.cache:
            if video.features.shape[1] != self.video_dim:
                raise GroundingError(f"video '{video.vid}' has {video.features.shape[1]}-d features, {self.name} "
                                     f"takes {self.video_dim}-d ones; encode it with this grounder's encode_video")
            known = self.provenance["stores"][0] if self.knows_recipe() else {}
            size = window_clip_count({**self.provenance, **known}, video.clip_len)
            ranges = plan_windows(video.num_clips, size)
            tensor, mask = stack_windows(video.features, ranges, self.l2_normalize, self.num_clips, self.max_clips)
            if len(ranges) == 1:
                spans = [(0.0, video.duration)]
            else:
                spans = [(a * video.clip_len, min(b * video.clip_len, video.duration)) for a, b in ranges]
            video.cache[key] = {"ranges": ranges, "video": tensor.to(self.loaded.device), "mask": mask.to(self.loaded.device),
                                "spans": spans}
        return video.cache[key]

    def predict(self, queries: str | list[str], video: EncodedVideo, top_k: int = 5) -> dict[str, Any] | list[dict[str, Any]]:
        """Moments for each query: ``{"query", "vid", "duration", "pred_relevant_windows": [[start_s, end_s,
        score], ...] (best first), "pred_saliency_scores": [one per clip]}`` (+ ``"warnings"`` if any)."""
        items, single = as_query_list(queries)
        if top_k < 1:
            raise GroundingError(f"top_k must be at least 1, got {top_k}")
        if video.provenance.get("backbone") and self.knows_recipe():
            check_same_recipe(video, self.feature_recipe(), self.name)
        win = self._windows(video)
        words, word_mask, cut = loading.encode_queries(self.loaded, items)
        n_win = len(win["ranges"])
        multi = n_win > 1
        dec = dataclasses.replace(self.loaded.decode, topk=max(top_k, 10) if multi else top_k)
        durations = torch.tensor([b - a for a, b in win["spans"]], dtype=torch.float32, device=self.loaded.device)
        rows_q = torch.arange(len(items)).repeat_interleave(n_win)
        rows_w = torch.arange(n_win).repeat(len(items))
        all_windows, all_sal = [], []
        for start in range(0, len(rows_q), self.batch_rows):
            q, w = rows_q[start : start + self.batch_rows], rows_w[start : start + self.batch_rows]
            used, vid_index = torch.unique(w, return_inverse=True)  # each window of the video through the encoder once
            wd, sal = loading.run_and_decode(self.loaded, win["video"][used], win["mask"][used],
                                             vid_index.to(self.loaded.device), words[q], word_mask[q], durations[w], dec)
            all_windows.append(wd.cpu().numpy())
            all_sal.append(sal.cpu().numpy())
        windows = np.concatenate(all_windows).reshape(len(items), n_win, -1, 3)
        saliency = np.concatenate(all_sal).reshape(len(items), n_win, -1)
        counts = win["mask"].sum(1).cpu().numpy()
        out = []
        for qi, query in enumerate(items):
            sal = self._native_saliency(saliency[qi], counts, win["ranges"], video.num_clips)
            if multi:
                cands = self._rescored(windows[qi], win["spans"], sal, video.clip_len)
                pred = merge_windows(cands, self.loaded.decode.nms_threshold, top_k)
            else:
                pred = [list(map(float, r)) for r in windows[qi, 0] if r[0] == r[0]]
            record: dict[str, Any] = {
                "query": query, "vid": video.vid, "duration": round(float(video.duration), 4),
                "pred_relevant_windows": [[round(s, 4), round(e, 4), round(c, 6)] for s, e, c in pred],
                "pred_saliency_scores": [round(float(x), 4) for x in sal],
            }
            if cut[qi]:
                record["warnings"] = [f"the query was cut to its first {self.loaded.max_words} words, the model's limit"]
            out.append(record)
        return out[0] if single else out

    @staticmethod
    def _native_saliency(saliency: np.ndarray, counts: np.ndarray, ranges: list[tuple[int, int]], total: int) -> np.ndarray:
        acc, hits = np.zeros(total), np.zeros(total)
        for w, (a, b) in enumerate(ranges):
            acc[a:b] += native_saliency(saliency[w, : int(counts[w])], b - a)
            hits[a:b] += 1
        return acc / np.maximum(hits, 1)

    @staticmethod
    def _rescored(windows: np.ndarray, spans: list[tuple[float, float]], saliency: np.ndarray, clip_len: float
                  ) -> list[tuple[float, float, float]]:
        cands = []
        for w, (offset, _) in enumerate(spans):
            rows = [r for r in windows[w] if r[0] == r[0]]
            if not rows:
                continue
            best = max(r[2] for r in rows)
            for s, e, c in rows:
                s, e = offset + float(s), offset + float(e)
                cands.append((s, e, float(window_mean(saliency, s, e, clip_len) * float(c) / max(float(best), 1e-12))))
        return cands


def make_grounder(model: str | None, zero_shot: str | None, device: str, backbone_dir: str | None = None,
                  clip_len: float = 2.0):
    if zero_shot:
        return Grounder.zero_shot(zero_shot, device=device, clip_len=clip_len)
    return Grounder.from_pretrained(model, device=device, backbone_dir=backbone_dir)  # type: ignore[arg-type]
