"""Two-stage moment search over an index: rank the library in the shared space, then localise precisely.

Stage 1 embeds each query (``SearchModel.embed_queries``) and asks FAISS for its most similar entries;
a video scores its best entry, and the entries themselves (after per-video NMS) are stage 1's moments.
Stage 2 runs the full CCMAN cascade on the top ``rerank`` videos of every query, all (query, video)
pairs in a few ``Batch``es (each video through the video encoder once per batch, ``vid_index``), and
decodes ``windows_per_video`` windows per pair (``grounding.models.decoding.decode``).

Merged score of window w (decoded in candidate video v) for query q, ``search.merge: videos`` (the default):

    score = P(v | q) ** video_weight * s(w | q, v) / max_w' s(w' | q, v)

``P(v | q)`` from the video's best stage-1 entry: the videos keep stage 1's order and the decoder only
orders each video's own windows (its best window scores ``P(v | q)``). Its score is trained inside one
video; multiplied in raw (``window`` / ``video`` below) a confident decoder moved a video past better
ones and lost video recall (docs/search.md). With ``window`` / ``video``:

    score = P(w | q) ** video_weight * s(w | q, v),   P(w | q) = softmax over the candidates' windows of sim(q, w) / tau

with ``sim(q, w)`` the shared-space similarity of the window itself (embedded like an index entry from
the cascade's clip projections, ``window_similarities``; ``search.merge: video`` uses the video's best
stage-1 entry instead), ``tau`` the model's learnt temperature (the scale the contrastive loss trained
similarities for) and ``s`` the decoder's window score (``p_start * p_end``). The localisation heads are
trained inside one video, so their scores do not compare across videos; the shared space does, which is
why the cross-video part of the score comes from it (XML/ReLoCLNet multiply a video and a window
probability the same way). Moments from videos outside the top N follow, scored ``sim - 2`` (below
every merged score; stage 1 only).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from grounding.data.batch import make_batch, pad_sequences
from grounding.errors import GroundingError
from grounding.inference import run_and_decode
from grounding.inference.queries import check_queries
from grounding.inference.records import search_record
from grounding.models.outputs import SpaceOutput
from grounding.search.index import MomentIndex
from grounding.search.model import SearchModel

T = TypeVar("T")

log = logging.getLogger("grounding")

MERGES = ("videos", "window", "video")


class FeatureSource(Protocol):
    def get(self, vid: str) -> np.ndarray:  # model-ready (T, D) clip features
        ...


@dataclass
class SearchSettings:
    top_k: int = 100
    rerank: int = 20  # videos localised by stage 2 per query (0 = stage 1 only)
    windows_per_video: int = 5
    video_weight: float = 1.0  # exponent of the shared-space probability in the merged score
    merge: str = "videos"  # videos: the video's best entry ranks the videos, the decoder only a video's own windows;
    # window: P from each decoded window's own similarity; video: from the video's best entry (docs/search.md)
    nms: float = 0.5  # per-video NMS of stage-1 moments
    max_per_video: int = 1  # moments of one video in a query's list (0 = no limit; docs/search.md, "Diverse results")
    candidates: int = 0  # entries fetched per query in stage 1 (0 = enough for the videos needed)
    batch_pairs: int = 256  # (query, video) pairs per stage-2 forward

    @classmethod
    def from_config(cls, section: Any, **override: Any) -> SearchSettings:
        section = dict(section or {})
        known = {f.name: section[f.name] for f in dataclasses.fields(cls) if section.get(f.name) is not None}
        known.update({k: v for k, v in override.items() if v is not None})
        out = cls(**known)
        if out.merge not in MERGES:
            raise GroundingError(f"search.merge must be one of {', '.join(MERGES)}, not '{out.merge}'")
        if out.top_k < 1 or out.rerank < 0 or out.windows_per_video < 1 or out.max_per_video < 0:
            raise GroundingError(f"search settings need top_k >= 1, rerank >= 0, windows_per_video >= 1, max_per_video "
                                 f">= 0; got {out}")
        return out


@dataclass
class Stage1:
    """One query's stage-1 result: videos by score, and its moments ``[vid, start, end, sim]``."""

    videos: list[tuple[str, float]]
    moments: list[list[Any]]


def window_masks(windows: torch.Tensor, num_clips: torch.Tensor, duration: torch.Tensor, length: int) -> torch.Tensor:
    """The clips (B, K, T) of each decoded window (B, K, 3) in seconds, as an index entry of it would hold."""
    step = (duration / num_clips.clamp_min(1)).unsqueeze(1)  # (B, 1)
    first = torch.nan_to_num(windows[..., 0] / step).round().long()  # (B, K)
    last = torch.nan_to_num(windows[..., 1] / step).round().long() - 1
    clips = torch.arange(length, device=windows.device)
    return (clips[None, None] >= first[..., None]) & (clips[None, None] <= last[..., None])


def window_similarities(space: SpaceOutput, windows: torch.Tensor, num_clips: torch.Tensor,
                        duration: torch.Tensor) -> torch.Tensor:
    """Shared-space cosine similarity (B, K) of each query's sentence with each of its decoded windows
    (B, K, 3) seconds, each window embedded like an index entry (``SpaceOutput.moments`` of its clips)."""
    masks = window_masks(windows, num_clips, duration, space.clip_proj.shape[1])
    return torch.einsum("bke,be->bk", space.moments(masks), space.sentence)


def check_compatible(index: MomentIndex, model: SearchModel) -> None:
    """Refuse a query model whose embeddings do not live in every space of the index's live entries."""
    if model.embed_dim != index.embed_dim:
        raise GroundingError(f"{model.path} embeds into {model.embed_dim} dimensions but index {index.folder} holds "
                             f"{index.embed_dim}-d entries; search with the model that built it")
    foreign = sorted(s for s in index.spaces() if not model.answers(s))
    if foreign:
        built = [m["checkpoint"] for m in index.models if m["space"] in foreign and m["kind"] == "embedded"]
        raise GroundingError(
            f"{model.path} (model {model.fingerprint}) cannot query index {index.folder}: its entries were embedded "
            f"by model(s) {', '.join(foreign)} ({', '.join(built) or 'unknown checkpoint'}), and this model is neither "
            "one of them nor trained to be compatible with them; search with that checkpoint, upgrade the index "
            "(tools/upgrade_index.py --backfill/--adapter), or train with compat.old_checkpoint=<its checkpoint>")


class Searcher:
    def __init__(self, index: MomentIndex, model: SearchModel, features: FeatureSource | None = None,
                 settings: SearchSettings | None = None, allow_incompatible: bool = False) -> None:
        """``allow_incompatible``: skip the space check (experiments only: the compatibility study measures
        how badly an incompatible model searches an old index)."""
        if not allow_incompatible:
            check_compatible(index, model)
        self.index, self.model = index, model
        self.settings = settings or SearchSettings.from_config(index.manifest.get("search"))
        self._features = features
        self._sources: dict[int, Any] = {}
        self.temperature = model.loaded.space.temperature

    @classmethod
    def from_index(cls, index_dir: str | Path, checkpoint: str | Path | None = None, device: str = "auto",
                   features: FeatureSource | None = None, **settings: Any) -> Searcher:
        """``checkpoint`` None: the checkpoint of the index's space (the newest one after an upgrade)."""
        index = MomentIndex.open(index_dir)
        if index.num_entries == 0:
            raise GroundingError(f"index {index_dir} holds no entries; add videos with tools/build_index.py")
        if checkpoint is None:  # the latest model of a live space (after an upgrade: the new model)
            spaces = index.spaces()
            checkpoint = [m for m in index.models if m["space"] in spaces][-1]["checkpoint"]
            if not Path(checkpoint).exists():
                raise GroundingError(f"the checkpoint that built {index_dir} ({checkpoint}) is not here; pass --checkpoint")
        model = SearchModel.load(checkpoint, device)
        return cls(index, model, features, SearchSettings.from_config(index.manifest.get("search"), **settings))

    # ------------------------------------------------------------------ features for stage 2
    def features(self, vid: str, source: int) -> np.ndarray:
        if self._features is not None:
            return self._features.get(vid)
        if source not in self._sources:
            from grounding.data.build import build_feature_bank

            spec = self.index.manifest["sources"][source]
            self._sources[source] = build_feature_bank(spec, self.model.loaded.config["model"].get("video_dim"))
        return self._sources[source].get(vid)

    # ------------------------------------------------------------------ stage 1
    def stage1(self, embeddings: np.ndarray, videos_needed: int, top_k: int, per_video: int | None = None
               ) -> list[Stage1]:
        """Rank videos and moments (at most ``per_video`` of a video; None: the settings') for each query
        embedding (Q, E)."""
        per_video = self.settings.max_per_video if per_video is None else per_video
        meta, table = self.index.meta(), self.index.video_table
        total = self.index.num_entries
        k = self.settings.candidates or max(64, 32 * max(videos_needed, 1), 2 * top_k)
        while True:
            hits = self.index.search(embeddings, k)
            enough = [len(np.unique(meta["video"][r[r >= 0]])) >= videos_needed for r in hits.rows]
            if all(enough) or k >= total:
                break
            k = min(total, 4 * k)
        out = []
        for scores, rows in zip(hits.scores, hits.rows, strict=True):
            keep = rows >= 0
            scores, rows = scores[keep], rows[keep]
            video_rows = meta["video"][rows]
            _, first = np.unique(video_rows, return_index=True)  # a video scores its best entry
            first = np.sort(first)
            videos = [(table[video_rows[i]][0], float(scores[i])) for i in first]
            out.append(Stage1(videos, self._moments(scores, rows, video_rows, top_k, per_video)))
        return out

    def _moments(self, scores: np.ndarray, rows: np.ndarray, video_rows: np.ndarray, top_k: int,
                 per_video: int) -> list[list[Any]]:
        """Entries best first after per-video NMS (``nms``) and the per-video limit (``nms_per_video``)."""
        meta, table = self.index.meta(), self.index.video_table
        spans = np.asarray(meta["spans"][rows], dtype=np.float64)
        kept = nms_per_video(spans, video_rows, scores, self.settings.nms, per_video, top_k)
        return [[table[video_rows[i]][0], float(spans[i, 0]), float(spans[i, 1]), float(scores[i])] for i in kept]

    # ------------------------------------------------------------------ stage 2
    def stage2(self, queries: list[str], firsts: list[Stage1], rerank: int) -> list[list[list[Any]]]:
        """Windows ``[vid, start, end, merged score]`` of each query's top ``rerank`` videos."""
        loaded, known, cfg = self.model.loaded, self.index.videos(), self.settings
        words, word_mask, _ = loaded.encode_queries(queries)
        pairs = [(q, vid, sim) for q, first in enumerate(firsts) for vid, sim in first.videos[:rerank]]
        dec = dataclasses.replace(loaded.decode, topk=cfg.windows_per_video)
        found: list[list[tuple[str, float, float, float, float]]] = [[] for _ in queries]  # vid, s, e, sim, s(w)
        for start in range(0, len(pairs), cfg.batch_pairs):
            chunk = pairs[start:start + cfg.batch_pairs]
            vids = list(dict.fromkeys(v for _, v, _ in chunk))
            video, mask = pad_sequences([self.features(v, known[v][1]) for v in vids], torch.float32)
            row = {v: i for i, v in enumerate(vids)}
            dev = loaded.device
            vid_index = torch.tensor([row[v] for _, v, _ in chunk], device=dev)
            q_rows = torch.tensor([q for q, _, _ in chunk], device=dev)
            duration = torch.tensor([known[v][0] for _, v, _ in chunk], dtype=torch.float32, device=dev)
            none = torch.zeros(len(chunk), dtype=torch.long, device=dev)
            batch = make_batch(video.to(dev), mask.to(dev), vid_index, words[q_rows], word_mask[q_rows], none, none,
                               torch.zeros(len(chunk), 2, device=dev), duration)
            decoded = run_and_decode(loaded.model, batch, dec)
            with torch.inference_mode():
                sims = window_similarities(decoded.output.space, decoded.windows, batch.num_clips, duration)
            for (q, vid, video_sim), rows, window_sims in zip(chunk, decoded.windows.cpu().numpy(), sims.cpu().numpy(),
                                                              strict=True):
                found[q] += [(vid, float(s), float(e), float(w) if cfg.merge == "window" else video_sim, float(c))
                             for (s, e, c), w in zip(rows, window_sims, strict=True) if s == s]  # NaN: none left
        results = []
        for q_found in found:
            if not q_found:
                results.append([])
                continue
            sims = np.array([f[3] for f in q_found]) / self.temperature
            prob = np.exp(sims - sims.max())
            if cfg.merge in ("video", "videos"):  # P(v): one share per video, not per window
                per_video = {f[0]: p for f, p in zip(q_found, prob, strict=True)}
                prob = prob / sum(per_video.values())
            else:
                prob = prob / prob.sum()
            decoder = np.array([f[4] for f in q_found])
            if cfg.merge == "videos":  # the decoder only orders a video's own windows: its best one scores 1
                best: dict[str, float] = {}
                for f in q_found:
                    best[f[0]] = max(best.get(f[0], 0.0), f[4])
                decoder = decoder / np.array([max(best[f[0]], 1e-12) for f in q_found])
            scored = [[v, s, e, float(p ** cfg.video_weight * c)]
                      for (v, s, e, _, _), p, c in zip(q_found, prob, decoder, strict=True)]
            results.append(sorted(scored, key=lambda m: -m[3]))
        return results

    # ------------------------------------------------------------------ both
    def search(self, queries: str | Sequence[str], top_k: int | None = None, rerank: int | None = None,
               max_per_video: int | None = None) -> list[dict[str, Any]]:
        """For each query ``{"query", "pred_moments": [[vid, start_s, end_s, score], ...]}``, best first, at
        most ``max_per_video`` moments of one video (None: the settings'; 0: no limit)."""
        items, _ = check_queries(queries)
        top_k = self.settings.top_k if top_k is None else top_k
        rerank = self.settings.rerank if rerank is None else rerank
        per_video = self.settings.max_per_video if max_per_video is None else max_per_video
        if top_k < 1 or rerank < 0 or per_video < 0:
            raise GroundingError(f"top_k must be >= 1, rerank >= 0 and max_per_video >= 0, got {top_k}, {rerank} "
                                 f"and {per_video}")
        embeddings = self.model.embed_queries(items)
        firsts = self.stage1(embeddings, max(rerank, 1, -(-top_k // per_video) if per_video else 0), top_k, per_video)
        if rerank == 0:
            return [search_record(q, f.moments) for q, f in zip(items, firsts, strict=True)]
        seconds = self.stage2(items, firsts, rerank)
        out = []
        for q, first, second in zip(items, firsts, seconds, strict=True):
            reranked = {v for v, _ in first.videos[:rerank]}
            tail = [[v, s, e, sim - 2.0] for v, s, e, sim in first.moments if v not in reranked]
            out.append(search_record(q, limit_per_video(second + tail, lambda m: m[0], per_video, top_k)))
        return out


def nms_per_video(spans: np.ndarray, videos: np.ndarray, scores: np.ndarray, threshold: float, per_video: int,
                  top_k: int) -> list[int]:
    """Indices of the first ``top_k`` entries, best first, after greedy NMS within each video (an entry
    overlapping a better *kept* entry of its video by more than ``threshold`` is dropped; windows of
    different videos never suppress each other) and at most ``per_video`` kept per video (0 = no limit).

    One pass in score order: an entry only meets the few kept entries of its own video, so a list that
    must reach far down (one moment per video, ~57 entries a video) costs O(entries x per_video), not the
    O(entries^2) of NMS over the whole prefix. Same result as ``batched_nms`` then ``limit_per_video``.
    """
    kept: list[int] = []
    kept_of: dict[int, list[int]] = {}
    for i in np.argsort(-scores, kind="stable"):
        mine = kept_of.setdefault(int(videos[i]), [])
        if per_video and len(mine) >= per_video:
            continue
        if mine and window_iou(spans[i], spans[mine]).max() > threshold:
            continue
        mine.append(int(i))
        kept.append(int(i))
        if len(kept) == top_k:
            break
    return kept


def window_iou(window: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Temporal IoU of one window (2,) with each of ``others`` (K, 2), as ``pairwise_window_iou`` computes it."""
    inter = np.clip(np.minimum(window[1], others[:, 1]) - np.maximum(window[0], others[:, 0]), 0, None)
    union = np.maximum(window[1], others[:, 1]) - np.minimum(window[0], others[:, 0])
    return inter / np.maximum(union, 1e-9)


def limit_per_video(moments: list[T], video_of: Callable[[T], Any], per_video: int, top_k: int) -> list[T]:
    """The first ``top_k`` of ``moments`` (best first) keeping at most ``per_video`` of each video (0 = no
    limit): a library where several videos show the same event then lists more of them in its top K, instead
    of several windows of the same few videos."""
    if not per_video:
        return moments[:top_k]
    seen: dict[Any, int] = {}
    out = []
    for m in moments:
        v = video_of(m)
        if seen.get(v, 0) < per_video:
            seen[v] = seen.get(v, 0) + 1
            out.append(m)
            if len(out) == top_k:
                break
    return out
