"""Grounding a video of any length with a model trained on short ones, in the order it happens:
plan windows, run, map back, re-score, merge.

A checkpoint has seen videos of at most ``max_duration`` seconds (its training features' manifest says
so), each turned into ``data.num_clips`` model clips (or kept at its native clip count, capped at
``data.max_clips``). A video that fits is processed exactly as in training: one window. A longer one
is cut into windows of that many native clips with 50 % overlap (the last aligned to the video's
end); each window is prepared like a training video (``grounding.data.features.prepare_clips``) and
the model runs on all (query, window) pairs in batches, so memory grows with the batch, not the video.

Merging: a window's ranked windows come from a softmax over its own clips, so every window has a
confident "best" moment even where nothing relevant happens, and those scores cannot be compared
across windows. Each candidate is re-scored as

    score = mean saliency over its clips (sigmoid of the inside logits: absolute, comparable)
            * its joint score / the best joint score of its window (how sure the window is of it)

then all candidates go through one temporal NMS (duplicates from overlapping windows merge) and the
best ``top_k`` are returned. Saliency per native clip is the mean over the windows that cover it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from grounding.data.batch import make_batch
from grounding.data.features import prepare_clips
from grounding.inference.loading import LoadedModel
from grounding.inference.predict import run_and_decode
from grounding.models.decoding import batched_nms


# ---------------------------------------------------------------------- 1. plan windows
def plan_windows(num_native: int, window_clips: int) -> list[tuple[int, int]]:
    """``[0, T)`` when it fits, else windows of ``window_clips`` with stride ``window_clips // 2``, the last
    one ending at ``T``: ``plan_windows(10, 4) == [(0, 4), (2, 6), (4, 8), (6, 10)]``."""
    if num_native <= window_clips:
        return [(0, num_native)]
    stride = max(1, window_clips // 2)
    starts = list(range(0, num_native - window_clips + 1, stride))
    if starts[-1] + window_clips < num_native:
        starts.append(num_native - window_clips)
    return [(s, s + window_clips) for s in starts]


def window_clip_count(provenance: dict, clip_len: float) -> int:
    """Native clips per window: the longest training video, else the model's clip count, else 75."""
    longest = provenance.get("max_duration")
    if longest:
        return max(1, math.ceil(float(longest) / clip_len - 1e-6))
    return int(provenance.get("num_clips") or provenance.get("max_clips") or 75)


@dataclass
class VideoWindows:
    """A video cut into model inputs: native clip ``ranges`` ``[a, b)``, ``video`` (W, T, D) zero-padded
    with its ``mask`` (W, T), each window's ``spans`` in seconds and valid model clips ``counts`` (W,)."""

    ranges: list[tuple[int, int]]
    video: torch.Tensor
    mask: torch.Tensor
    spans: list[tuple[float, float]]
    counts: np.ndarray
    num_native: int
    clip_len: float
    encoded: torch.Tensor | None = field(default=None, repr=False)  # the model's encoding, made on first use

    @classmethod
    def plan(cls, feats: np.ndarray, duration: float, clip_len: float, window_clips: int, l2_normalize: bool,
             num_clips: int | None, max_clips: int | None, device: torch.device) -> VideoWindows:
        ranges = plan_windows(feats.shape[0], window_clips)
        prepared = [prepare_clips(feats[a:b], l2_normalize, num_clips, max_clips) for a, b in ranges]
        width = max(p.shape[0] for p in prepared)
        video = torch.zeros((len(prepared), width, feats.shape[1]), dtype=torch.float32)
        mask = torch.zeros((len(prepared), width), dtype=torch.bool)
        for i, p in enumerate(prepared):
            video[i, : p.shape[0]] = torch.from_numpy(p)
            mask[i, : p.shape[0]] = True
        spans = [(0.0, duration)] if len(ranges) == 1 else \
            [(a * clip_len, min(b * clip_len, duration)) for a, b in ranges]
        return cls(ranges, video.to(device), mask.to(device), spans, mask.sum(1).numpy(), feats.shape[0], clip_len)

    @property
    def durations(self) -> torch.Tensor:
        return torch.tensor([b - a for a, b in self.spans], dtype=torch.float32, device=self.video.device)

    def tokens(self, model: torch.nn.Module) -> torch.Tensor | None:
        """The model's encoding (W, T, D) of every window, computed once: each later question about the video
        only runs its query through the model. None for a model whose video encoding depends on the query
        (the DETR family), which encodes the video with every question."""
        if not hasattr(model, "encode_videos"):
            return None
        if self.encoded is None:
            with torch.inference_mode():
                self.encoded = model.encode_videos(self.video, self.mask)
        return self.encoded


# ---------------------------------------------------------------------- 2. run
def run_windows(loaded: LoadedModel, windows: VideoWindows, words: torch.Tensor, word_mask: torch.Tensor, topk: int,
                batch_rows: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every query (Q, L) in every window: ranked windows (Q, W, K, 3) in window seconds, saliency
    (Q, W, T) and P(moment in the window) (Q, W) (None: a model without it); each window goes through the
    video encoder once per batch of rows."""
    num_queries, num_windows = len(words), len(windows.ranges)
    decode = dataclasses.replace(loaded.decode, topk=topk)
    durations, device = windows.durations, loaded.device
    tokens = windows.tokens(loaded.model)
    rows_q = torch.arange(num_queries).repeat_interleave(num_windows)
    rows_w = torch.arange(num_windows).repeat(num_queries)
    found, saliency, in_video = [], [], []
    for start in range(0, len(rows_q), batch_rows):
        q, w = rows_q[start : start + batch_rows], rows_w[start : start + batch_rows]
        used, vid_index = torch.unique(w, return_inverse=True)
        none = torch.zeros(len(q), dtype=torch.long, device=device)
        batch = make_batch(windows.video[used], windows.mask[used], vid_index.to(device), words[q], word_mask[q],
                           none, none, span=torch.zeros(len(q), 2, device=device), duration=durations[w],
                           video_tokens=None if tokens is None else tokens[used])
        decoded = run_and_decode(loaded.model, batch, decode)
        found.append(decoded.windows.cpu().numpy())
        saliency.append(decoded.saliency.cpu().numpy())
        if decoded.in_video is not None:
            in_video.append(decoded.in_video.cpu().numpy())
    return (np.concatenate(found).reshape(num_queries, num_windows, -1, 3),
            np.concatenate(saliency).reshape(num_queries, num_windows, -1),
            np.concatenate(in_video).reshape(num_queries, num_windows) if in_video else None)


# ---------------------------------------------------------------------- 3. map back
def native_saliency(model_saliency: np.ndarray, native_len: int) -> np.ndarray:
    """Model-clip saliency ``(N,)`` of a window -> one value per native clip (the model clip holding its centre)."""
    n = model_saliency.shape[0]
    idx = np.minimum(((np.arange(native_len) + 0.5) * n / native_len).astype(np.int64), n - 1)
    return model_saliency[idx]


def video_saliency(saliency: np.ndarray, windows: VideoWindows) -> np.ndarray:
    """One query's per-window saliency (W, T) -> one value per native clip, averaged over covering windows."""
    acc, hits = np.zeros(windows.num_native), np.zeros(windows.num_native)
    for w, (a, b) in enumerate(windows.ranges):
        acc[a:b] += native_saliency(saliency[w, : int(windows.counts[w])], b - a)
        hits[a:b] += 1
    return acc / np.maximum(hits, 1)


# ---------------------------------------------------------------------- 4. re-score
def window_mean(saliency: np.ndarray, start_s: float, end_s: float, clip_len: float) -> float:
    """Mean native-clip saliency over the clips a window in seconds touches."""
    a = int(np.clip(math.floor(start_s / clip_len), 0, len(saliency) - 1))
    b = int(np.clip(math.ceil(end_s / clip_len), a + 1, len(saliency)))
    return float(saliency[a:b].mean())


def rescored(found: np.ndarray, windows: VideoWindows, saliency: np.ndarray) -> list[tuple[float, float, float]]:
    """One query's candidates (W, K, 3) in video seconds, re-scored to compare across windows."""
    cands = []
    for w, (offset, _) in enumerate(windows.spans):
        rows = [r for r in found[w] if r[0] == r[0]]
        if not rows:
            continue
        best = max(float(r[2]) for r in rows)
        for s, e, c in rows:
            s, e = offset + float(s), offset + float(e)
            cands.append((s, e, window_mean(saliency, s, e, windows.clip_len) * float(c) / max(best, 1e-12)))
    return cands


# ---------------------------------------------------------------------- 5. merge
def merge_windows(candidates: list[tuple[float, float, float]], nms_threshold: float, top_k: int
                  ) -> list[list[float]]:
    """Global NMS over re-scored ``(start_s, end_s, score)`` candidates; best ``top_k`` first."""
    if not candidates:
        return []
    cands = sorted(candidates, key=lambda c: -c[2])
    windows = torch.tensor([[c[0], c[1]] for c in cands], dtype=torch.float64)[None]
    scores = torch.tensor([c[2] for c in cands], dtype=torch.float64)[None]
    keep = batched_nms(windows, scores, nms_threshold)[0].tolist()
    return [list(c) for c, k in zip(cands, keep, strict=True) if k][:top_k]


def ground_in_windows(loaded: LoadedModel, windows: VideoWindows, words: torch.Tensor, word_mask: torch.Tensor,
                      top_k: int, batch_rows: int = 256) -> list[tuple[np.ndarray, np.ndarray, float | None]]:
    """Each query's ranked windows (K, 3) in video seconds, its native-clip saliency and P(moment in the
    video) (the best window's: the moment is in the video if it is in any window; None without the part):
    steps 2 to 5."""
    multi = len(windows.ranges) > 1
    found, saliency, in_video = run_windows(loaded, windows, words, word_mask, max(top_k, 10) if multi else top_k, batch_rows)
    out = []
    for qi in range(len(words)):
        native = video_saliency(saliency[qi], windows)
        p = None if in_video is None else float(in_video[qi].max())
        if multi:
            merged = merge_windows(rescored(found[qi], windows, native), loaded.decode.nms_threshold, top_k)
            out.append((np.asarray(merged, dtype=np.float64).reshape(-1, 3), native, p))
        else:
            out.append((found[qi, 0], native, p))
    return out
