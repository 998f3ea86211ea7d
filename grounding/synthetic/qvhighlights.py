"""The synthetic benchmark in the *QVHighlights layout*: moments, several windows per query, and graded
per-clip saliency scores from three noisy annotators, so that highlight detection and multi-window
training run (and are tested) on a CPU without any download.

The videos show the same world as the Charades layout (``grounding.synthetic.world``: action-object
events, per-video action style, an interaction term, held-out combinations) at QVHighlights' scale:

- a video lasts an even number of seconds in ``[min_duration, max_duration]`` (30-150 s by default; the
  real files have even durations only) and has one feature per 2 s clip: clip ``k`` covers
  ``[2k, 2k + 2)`` s, ``T = duration / 2 = ceil(duration / 2)``, which is also what the feature reader's
  even split of ``[0, duration)`` gives (``grounding.data.features.clip_to_seconds``);
- its 3-5 distinct events (each query's event with distractors sharing its action or its object) last
  about 4 to 22 % of the video (less where they would not fit); each queried event happens two or three times with probability
  ``repeat_fraction``, and its query (tag ``repeated``) then has one relevant window per occurrence
  (the sentence describes each of them); the other queries (tag ``single``) have one.
  Val videos about held-out combinations add the tag ``novel``;
- an event's strength in the features rises from 0.4 at its ends to 1 in its middle (times the ~1 s
  fade-in/out), so how salient a clip is can be read from the video;
- annotators mark windows on the 2 s grid (true span + ``label_jitter``, rounded to even seconds, at least
  one clip; windows that touch are merged), ``relevant_clip_ids`` are exactly the clips of those windows
  and each gets three scores 0-4: ``round(1 + 3 * s / s_max + bias_a + noise)``, ``s`` the clip's event
  strength (``s_max`` the query's strongest relevant clip): 4 at the core of an event, 1-2 on the fuzzy
  boundary clips and on the clips a window holds beyond the event, with a per-annotator bias (std
  ``annotator_noise / 2``) and per-clip noise (std ``annotator_noise``). Clips outside the windows have no
  score, which the official evaluator reads as 0.

Files: ``annotations/highlight_{train,val}_release.jsonl`` (the real field order: ``qid``, ``query``,
``duration``, ``vid``, ``relevant_clip_ids``, ``saliency_scores``, ``relevant_windows``; integer seconds
as in the real files; query ids unique across both splits), ``features/<vid>.npy`` (T, feature_dim)
float32, and ``annotations/highlight_{split}_release.tags.jsonl``: ``{"qid", "tags", "event",
"occurrences"}`` (the sidecar the data loader picks up for per-tag metrics); generator version 5 adds
``highlight_{split}_release.events.jsonl`` (every event of every video) and, for val,
``highlight_val_absent.jsonl`` (present and absent queries, ``grounding.synthetic.absent``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding.data.records import write_jsonl
from grounding.synthetic.absent import absent_split
from grounding.synthetic.spec import SyntheticSpec
from grounding.synthetic.world import PLAIN_TEMPLATES, Event, Span, Video, World, event_name, phrase

CLIP_SECONDS = 2
ANNOTATORS = 3


@dataclass
class HighlightQuery:
    """One written annotation line (windows in integer seconds on the 2 s grid) and its sidecar entry."""

    text: str
    windows: list[list[int]]
    clip_ids: list[int]
    scores: list[list[int]]
    side: dict[str, Any]


def snap_to_clips(start: float, end: float, duration: int) -> list[int]:
    """A window in seconds -> the even-second window an annotator marks on the 2 s grid (at least one
    clip, inside ``[0, duration]``)."""
    s = int(np.clip(CLIP_SECONDS * round(start / CLIP_SECONDS), 0, duration))
    e = int(np.clip(CLIP_SECONDS * round(end / CLIP_SECONDS), 0, duration))
    if e - s < CLIP_SECONDS:  # shorter than a clip: the clip holding the window's middle
        k = int(np.clip((start + end) / 2 // CLIP_SECONDS, 0, duration // CLIP_SECONDS - 1))
        s, e = CLIP_SECONDS * k, CLIP_SECONDS * (k + 1)
    return [s, e]


def merge_windows(windows: list[list[int]]) -> list[list[int]]:
    """Sorted windows, those that overlap or touch merged (so that no clip id is listed twice)."""
    out: list[list[int]] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def clip_ids(windows: list[list[int]]) -> list[int]:
    """The 2 s clips ``k`` (``[2k, 2k + 2)``) that the windows cover, in order."""
    return [k for s, e in windows for k in range(s // CLIP_SECONDS, e // CLIP_SECONDS)]


def peaked_in_the_middle(centers: np.ndarray, start: float, end: float) -> np.ndarray:
    """An event's strength per clip: 0.4 at its ends, 1 in its middle, so saliency can be read from the video."""
    return 0.4 + 0.6 * np.sin(np.pi * np.clip((centers - start) / (end - start), 0.0, 1.0))


class HighlightGenerator:
    """Videos, windows and saliency scores of the QVHighlights layout, drawn from one ``World``."""

    splits = ("train", "val")
    video_prefix = "SYNQV"

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.world = World(spec)
        self.next_qid = 0  # query ids are unique across both splits, as in the real files

    def events(self, novel: bool) -> tuple[list[Event], list[dict[str, Any]]]:
        """Events in time order and the queries about them (``targets``: every occurrence's index)."""
        world = self.world
        distinct = world.target_with_distractors(novel)
        world.add_second_family(distinct, novel)
        askable = [c for c in distinct  # every query has a distractor sharing one of its words
                   if any(o != c and (o[0] == c[0] or o[1] == c[1]) for o in distinct)
                   and (not novel or c in world.heldout)]
        sequence = list(distinct)
        for combo in askable:  # each queried event happens 2 or 3 times with probability repeat_fraction
            if world.rng.random() < self.spec.repeat_fraction:
                sequence += [combo] * int(world.rng.integers(1, 3))
        sequence = [sequence[i] for i in world.rng.permutation(len(sequence))]
        queries = []
        for combo in askable:
            targets = [i for i, e in enumerate(sequence) if e == combo]
            tags = ["repeated" if len(targets) > 1 else "single"] + (["novel"] if combo in world.heldout else [])
            tpl = PLAIN_TEMPLATES[int(world.rng.integers(len(PLAIN_TEMPLATES)))]
            queries.append({"targets": targets, "text": phrase(tpl, *combo), "tags": tags,
                            "event": event_name(combo), "occurrences": len(targets)})
        return sequence, queries

    def video(self, novel: bool) -> Video:
        """Features (T, D) with one row per 2 s clip, the duration (even seconds) and ``HighlightQuery``s."""
        spec, world = self.spec, self.world
        sequence, queries = self.events(novel)
        lo = max(1, math.ceil(spec.min_duration / CLIP_SECONDS))  # type: ignore[operator]
        hi = max(lo, math.floor(spec.max_duration / CLIP_SECONDS))  # type: ignore[operator]
        num_clips = int(world.rng.integers(lo, hi + 1))
        duration = CLIP_SECONDS * num_clips
        spans = world.spans(duration, len(sequence), (max(3.0, 0.04 * duration), max(6.0, 0.22 * duration)))
        centers = (np.arange(num_clips) + 0.5) * CLIP_SECONDS  # (T,)
        feats, strength = world.render(sequence, spans, centers, peaked_in_the_middle)
        shown = [(event_name(e), float(a), float(b)) for e, (a, b) in zip(sequence, spans, strict=True)]
        return Video(feats, duration, [self._annotate(q, spans, strength, duration) for q in queries], sequence, shown)

    def _annotate(self, query: dict[str, Any], spans: list[Span], strength: np.ndarray,
                  duration: int) -> HighlightQuery:
        """Windows on the 2 s grid and three annotators' graded scores for each of their clips."""
        spec, rng = self.spec, self.world.rng
        marked = []
        for t in query["targets"]:
            js, je = rng.normal(0, spec.label_jitter, 2)
            marked.append(snap_to_clips(spans[t][0] + js, spans[t][1] + je, duration))
        windows = merge_windows(marked)
        ids = clip_ids(windows)
        s = strength[query["targets"]].max(0)[ids]  # (n,) the query's event strength on its clips
        latent = 1.0 + 3.0 * s / max(float(s.max()), 1e-6)
        bias = rng.normal(0, spec.annotator_noise / 2, ANNOTATORS)
        noise = rng.normal(0, spec.annotator_noise, (len(ids), ANNOTATORS))
        scores = np.clip(np.rint(latent[:, None] + bias + noise), 0, 4).astype(int)
        side = {"tags": query["tags"], "event": query["event"], "occurrences": query["occurrences"]}
        return HighlightQuery(query["text"], windows, ids, scores.tolist(), side)

    def write_split(self, annotations: Path, split: str, videos: Iterator[tuple[str, Video]]) -> int:
        """``highlight_{split}_release.jsonl``, its tags and events sidecars, written as the videos come; for
        the held-out split also its present/absent set (``grounding.synthetic.absent``)."""
        ann = annotations / f"highlight_{split}_release.jsonl"
        start = self.next_qid
        events: dict[str, list[Event]] = {}
        records, durations = [], {}
        with ann.open("w") as lines, ann.with_name(f"highlight_{split}_release.tags.jsonl").open("w") as tags:
            for vid, video in videos:
                events[vid], durations[vid] = video.events, video.duration
                by_name = {event_name(e): e for e in video.events}
                for q in video.queries:
                    line = {"qid": self.next_qid, "query": q.text, "duration": video.duration, "vid": vid,
                            "relevant_clip_ids": q.clip_ids, "saliency_scores": q.scores, "relevant_windows": q.windows}
                    lines.write(json.dumps(line) + "\n")
                    tags.write(json.dumps({"qid": self.next_qid, **q.side}) + "\n")
                    records.append({**line, "event": by_name[q.side["event"]], "tags": q.side["tags"]})
                    self.next_qid += 1
        write_jsonl([{"vid": v, "events": [event_name(e) for e in es]} for v, es in events.items()],
                    annotations / f"highlight_{split}_release.events.jsonl")
        if split == self.splits[1] and records:
            both, both_tags = absent_split(records, events, durations, seed=self.spec.seed)
            write_jsonl(both, annotations / f"highlight_{split}_absent.jsonl")
            write_jsonl(both_tags, annotations / f"highlight_{split}_absent.tags.jsonl")
        return self.next_qid - start


__all__ = ["ANNOTATORS", "CLIP_SECONDS", "HighlightGenerator", "HighlightQuery", "clip_ids", "merge_windows",
           "peaked_in_the_middle", "snap_to_clips"]
