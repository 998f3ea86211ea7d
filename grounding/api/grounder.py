"""``Grounder``: a trained checkpoint as a function from (sentence, video file) to moments in seconds.

    g = Grounder.from_pretrained("work_dirs/run")          # or a .pt; device="auto" | "cpu" | "cuda"
    video = g.encode_video("movie.mp4")                      # once per video, any length
    g.predict("person opens the fridge", video, top_k=5)     # a dict; a list of queries gives a list

``encode_video`` reproduces the checkpoint's training features (``provenance.py``; features of a recipe
such as ``qvh_slowfast_clip`` through ``recipe_encoding.py``); long videos are handled by
``long_video.py``; the checkpoint is loaded by ``grounding.inference``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from grounding.api.encoding import EncodedVideo, encode_file, open_video
from grounding.api.long_video import VideoWindows, ground_in_windows, window_clip_count
from grounding.api.recipe_encoding import RecipeEncoder, recipe_store
from grounding.data.provenance import describe, same_features, single_store
from grounding.errors import GroundingError
from grounding.inference import LoadedModel, load_for_inference, prediction_record
from grounding.inference.queries import check_queries


def check_same_recipe(video: EncodedVideo, expected: dict[str, Any], where: str) -> None:
    """Features from another backbone (or clip length, model, dim) are refused, naming both."""
    if video.provenance.get("backbone") and expected.get("backbone") and not same_features(video.provenance, expected):
        raise GroundingError(
            f"video '{video.vid}' was encoded with {describe(video.provenance)}, but {where} was trained on "
            f"{describe(expected)}; encode the video with this model's encode_video")


class Grounder:
    """A trained grounding checkpoint ready to answer queries about new videos."""

    def __init__(self, loaded: LoadedModel, backbone_dir: str | Path | None = None,
                 batch_rows: int = 256, recipe_weights: list[str] | str | Path | None = None) -> None:
        self.loaded = loaded
        self.provenance: dict[str, Any] = dict(loaded.provenance or {})
        self.backbone_dir = backbone_dir
        self.recipe_weights = recipe_weights
        self._recipe_encoder = None
        self.batch_rows = batch_rows
        self._backbone = None
        data = loaded.config.get("data", {})
        self.num_clips: int | None = data.get("num_clips")
        self.max_clips: int | None = data.get("max_clips")
        self.l2_normalize = bool(data.get("l2_normalize", False))
        self.video_dim = int(loaded.config["model"].get("video_dim", 0))

    @classmethod
    def from_pretrained(cls, work_dir_or_checkpoint: str | Path, device: str = "auto",
                        backbone_dir: str | Path | None = None,
                        recipe_weights: list[str] | str | Path | None = None) -> Grounder:
        """Load ``checkpoints/best.pt`` (else ``last.pt``) of a work dir, or a ``.pt``. ``backbone_dir``
        points to the feature model's folder where it differs from the one recorded at training;
        ``recipe_weights`` to a recipe's weights (``[PART=]PATH``, see ``recipe_encoding.py``)."""
        return cls(load_for_inference(work_dir_or_checkpoint, device), backbone_dir, recipe_weights=recipe_weights)

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
        if self.provenance.get("recipe"):
            return recipe_store(self.provenance["recipe"], self.video_dim)
        recipe = dict(single_store(self.provenance, self.name))
        if self.backbone_dir is not None:
            recipe["model"] = str(self.backbone_dir)
        return recipe

    def knows_recipe(self) -> bool:
        if self.provenance.get("recipe"):
            return True
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

    def encode_video(self, path: str | Path, vid: str | None = None, reader: Any = None) -> EncodedVideo:
        """Decode (streaming) and encode ``path`` exactly as the checkpoint's training features were made.
        ``reader``: decode through this open reader of ``path`` (the web app's sandboxed one)."""
        from grounding.extract.sampling import ClipSampling

        if self.provenance.get("recipe"):
            return self._encode_with_recipe(path, vid)
        recipe = self.feature_recipe()
        clip_len = float(recipe["clip_len"])
        reader = open_video(path, clip_len, reader)  # bad files fail before the backbone is loaded
        backbone = self._get_backbone()
        sampling = ClipSampling(clip_len, backbone.frames_per_clip, recipe.get("clip_count") or "ceil")
        feats, duration = encode_file(path, backbone, sampling, self.loaded.device, reader=reader)
        made = {**recipe, "feature_dim": int(feats.shape[1]), "frames_per_clip": backbone.frames_per_clip}
        return EncodedVideo(vid or Path(path).stem, duration, clip_len, feats, made, str(path))

    def _encode_with_recipe(self, path: str | Path, vid: str | None) -> EncodedVideo:
        """The recipe's decoding and backbones (``recipe_encoding.py``), parts concatenated as in training.
        Recipes decode with the ffmpeg binary, in its own process, as the reference pipelines did; a
        sandboxed ``reader`` of the web app is not used for them."""
        path = Path(path)
        if path.is_dir():
            raise GroundingError(f"{path} is a folder; pass a video file")
        if self._recipe_encoder is None:
            self._recipe_encoder = RecipeEncoder(self.provenance["recipe"], self.recipe_weights, self.name,
                                                 self.loaded.device, self.video_dim)
        feats, duration = self._recipe_encoder.encode(path)
        made = self.feature_recipe()
        return EncodedVideo(vid or path.stem, duration, float(made["clip_len"] or self._recipe_encoder.recipe.clip_len),
                            feats, made, str(path))

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
    def _windows(self, video: EncodedVideo) -> VideoWindows:
        """The video's model inputs, planned once per (video, grounder) and cached on the video."""
        key = ("windows", id(self))
        if key not in video.cache:
            if video.features.shape[1] != self.video_dim:
                raise GroundingError(f"video '{video.vid}' has {video.features.shape[1]}-d features, {self.name} "
                                     f"takes {self.video_dim}-d ones; encode it with this grounder's encode_video")
            known = self.feature_recipe() if self.knows_recipe() else {}
            size = window_clip_count({**self.provenance, **known}, video.clip_len)
            video.cache[key] = VideoWindows.plan(video.features, video.duration, video.clip_len, size,
                                                 self.l2_normalize, self.num_clips, self.max_clips, self.loaded.device)
        return video.cache[key]

    def predict(self, queries: str | list[str], video: EncodedVideo, top_k: int = 5) -> dict[str, Any] | list[dict[str, Any]]:
        """Moments for each query: ``{"vid", "query", "duration", "pred_relevant_windows": [[start_s, end_s,
        score], ...] (best first), "pred_saliency_scores": [one per clip], "pred_in_video": p}`` (+ ``"warnings"``
        if any); ``p`` is the calibrated probability that the moment happens in the video at all."""
        items, single = check_queries(queries)
        if top_k < 1:
            raise GroundingError(f"top_k must be at least 1, got {top_k}")
        if video.provenance.get("backbone") and self.knows_recipe():
            check_same_recipe(video, self.feature_recipe(), self.name)
        words, word_mask, cut = self.loaded.encode_queries(items)
        answers = ground_in_windows(self.loaded, self._windows(video), words, word_mask, top_k, self.batch_rows)
        limit = [f"the query was cut to its first {self.loaded.max_words} words, the model's limit"]
        out = [prediction_record(video.vid, query, windows, saliency, duration=video.duration,
                                 warnings=limit if cut[qi] else (), in_video=in_video)
               for qi, (query, (windows, saliency, in_video)) in enumerate(zip(items, answers, strict=True))]
        return out[0] if single else out


def make_grounder(model: str | None, zero_shot: str | None, device: str, backbone_dir: str | None = None,
                  clip_len: float = 2.0, recipe_weights: list[str] | None = None):
    if zero_shot:
        return Grounder.zero_shot(zero_shot, device=device, clip_len=clip_len)
    return Grounder.from_pretrained(model, device=device, backbone_dir=backbone_dir,  # type: ignore[arg-type]
                                    recipe_weights=recipe_weights)
