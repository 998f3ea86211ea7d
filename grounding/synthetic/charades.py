"""The synthetic benchmark in the *Charades-STA layout*: one window per query, short videos at one clip
per second, plain, relational and novel queries (the world they show: ``grounding.synthetic.world``).

The T clips of a video of D seconds span [0, D) evenly (clip i is centred at (i + 0.5) D / T), which is
what the feature resampler assumes. A query is only answerable by reading its words:

- *plain*: every target event has distractors in the same video that share its action or its object,
  so neither word alone finds it; sentences use several phrasings and tenses;
- *relational* (tag ``temporal``): the named event X occurs 2 or 3 times, the reference event Y once
  in a random gap between (or around) them, and a decoy Y' sharing a word with Y in another gap.
  "X before Y" is the last X before Y, "X after Y" the first X after it. Which occurrence is meant
  depends on where Y is, so "before" is not always the first occurrence nor "after" the last (a rule
  that knows every X but not Y is right at most half the time), and mistaking Y' for Y gives another
  occurrence. ``grounding.synthetic.shortcuts`` measures what video-free predictors reach;
- *novel*: test queries about held-out action-object combinations, which no training video shows.

Files: ``annotations/charades_sta_{train,test}.txt``, ``annotations/Charades_v1_{train,test}.csv``
(``id,length``), ``features/<vid>.npy`` (T, feature_dim) float32 with T = ceil(D * clips_per_second),
and ``annotations/charades_sta_{split}.tags.jsonl``: ``{"qid", "tags", "event"}`` (tags
``plain``/``temporal``/``novel``; ``event`` the target's canonical name, e.g. ``"open door"``), plus, for
relational queries, ``"relation": ["before" | "after", <reference event>]`` and ``"occurrence": [i, n]``
(the target is the i-th of the n occurrences of its event).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding.data.records import write_jsonl
from grounding.synthetic.absent import absent_split
from grounding.synthetic.spec import SyntheticSpec
from grounding.synthetic.world import PLAIN_TEMPLATES, Event, Video, World, event_name, phrase

BEFORE_TEMPLATES = [
    "a person {third} the {obj} before {gerund2} the {obj2}.",
    "person {past} a {obj} before {gerund2} a {obj2}.",
]
AFTER_TEMPLATES = [
    "a person {third} the {obj} after {gerund2} the {obj2}.",
    "after {gerund2} a {obj2}, the person {third} the {obj} again.",
]


def plain_queries(world: World, events: list[Event], novel: bool) -> list[dict[str, Any]]:
    """One plain (or novel) query per event that happens once in ``events`` and shares a word with another
    event of the video, so neither word alone finds it; with ``novel`` only held-out verb-object pairs."""
    queries: list[dict[str, Any]] = []
    for i, (a, o) in enumerate(events):
        others = events[:i] + events[i + 1 :]
        if (a, o) in others or not any(e[0] == a or e[1] == o for e in others):
            continue  # every query has a distractor sharing one of its words
        is_novel = (a, o) in world.heldout
        if novel and not is_novel:
            continue
        tpl = PLAIN_TEMPLATES[world.rng.integers(len(PLAIN_TEMPLATES))]
        queries.append({"target": i, "text": phrase(tpl, a, o), "tags": ["novel" if is_novel else "plain"]})
    return queries


def relational_block(world: World, main: Event, distractors: list[Event],
                     avoid: frozenset[Event] | set[Event] = frozenset()) -> tuple[list[Event], list[dict[str, Any]]]:
    """X (``main``) occurs ``n`` (2 or 3) times; the reference Y sits in gap ``k`` (0..n) between them and a
    decoy Y' (sharing a word with Y) in another gap; one distractor of X anywhere. Y and Y' are never
    ``avoid`` (the events a long video already shows elsewhere), so Y is the only one of its kind.

    "X before Y" is the last X before Y (occurrence ``k``), "X after Y" the first X after it
    (occurrence ``k + 1``); only the relations that exist are asked (``target`` = index in the block).
    Every (n, k) is equally likely, so a rule that knows where every X is but not where Y is picks the
    right one at most half the time, and "before" is the first X (or "after" the last) only when Y
    happens to sit there.
    """
    other = world.pick(world.seen, avoid={main, *distractors, *avoid})  # Y
    assert other is not None
    share_action = world.rng.random() < 0.5
    decoy = world.pick(world.seen, action=other[0] if share_action else None,
                       obj=None if share_action else other[1], avoid={main, other, *distractors, *avoid})
    n = int(world.rng.integers(2, 4))
    k = int(world.rng.integers(n + 1))
    gaps: list[list[Event]] = [[] for _ in range(n + 1)]
    gaps[k].append(other)
    if decoy is not None:  # in another gap, so mistaking Y' for Y changes the answer
        gaps[int(world.rng.choice([j for j in range(n + 1) if j != k]))].append(decoy)
    seq: list[Event] = list(gaps[0])
    for gap in gaps[1:]:
        seq += [main, *gap]
    if distractors:
        at = int(world.rng.integers(len(seq) + 1))
        seq.insert(at, distractors[int(world.rng.integers(len(distractors)))])
    where = [i for i, e in enumerate(seq) if e == main]  # the n occurrences of X, in time order
    queries = []
    for relation, index, templates in (("before", k, BEFORE_TEMPLATES), ("after", k + 1, AFTER_TEMPLATES)):
        if 1 <= index <= n:
            tpl = templates[world.rng.integers(len(templates))]
            queries.append({"target": where[index - 1], "text": phrase(tpl, *main, *other), "tags": ["temporal"],
                            "relation": [relation, event_name(other)], "occurrence": [index, n]})
    return seq, queries


@dataclass
class MomentQuery:
    """One annotation line (a window in seconds, rounded to 0.1 s as written) and its sidecar entry."""

    start: float
    end: float
    text: str
    side: dict[str, Any]


class CharadesGenerator:
    """Videos and queries of the Charades-STA layout, drawn from one ``World``."""

    splits = ("train", "test")
    video_prefix = "SYN"

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.world = World(spec)

    def relational(self, main: Event, distractors: list[Event]) -> tuple[list[Event], list[dict[str, Any]]]:
        """One relational block (``relational_block``) about ``main``, with one of its distractors."""
        return relational_block(self.world, main, distractors)

    def events(self, novel: bool) -> tuple[list[Event], list[dict[str, Any]]]:
        """Events in time order and the queries about them (``target`` = event index): a relational
        video with probability ``temporal_fraction`` (never a novel one), else two families of events
        that share words, every event with such a distractor asked about."""
        world = self.world
        events = world.target_with_distractors(novel)
        if not novel and world.rng.random() < self.spec.temporal_fraction:
            return self.relational(events[0], events[1:])
        world.add_second_family(events, novel)
        events = [events[i] for i in world.rng.permutation(len(events))]
        return events, plain_queries(world, events, novel)

    def video(self, novel: bool) -> Video:
        """Features (T, D) with T = ceil(duration * clips_per_second), the duration, and ``MomentQuery``s."""
        spec, world = self.spec, self.world
        events, queries = self.events(novel)
        duration = float(np.round(world.rng.uniform(spec.min_duration, spec.max_duration), 2))
        spans = world.spans(duration, len(events))
        num_clips = max(1, int(np.ceil(duration * spec.clips_per_second)))
        # T clips span [0, D) evenly, as the feature resampler (grounding.data.features) assumes
        centers = (np.arange(num_clips) + 0.5) * duration / num_clips  # (T,)
        feats, _ = world.render(events, spans, centers)
        out = []
        for q in queries:
            start, end = spans[q["target"]]
            js, je = world.rng.normal(0, spec.label_jitter, 2)
            start, end = max(0.0, start + js), min(duration, end + je)
            if end - start < 1.0:
                start, end = spans[q["target"]]
            side = {"tags": q["tags"], "event": event_name(events[q["target"]]),
                    **{k: q[k] for k in ("relation", "occurrence") if k in q}}
            out.append(MomentQuery(round(start, 1), round(end, 1), q["text"], side))
        shown = [(event_name(e), float(a), float(b)) for e, (a, b) in zip(events, spans, strict=True)]
        return Video(feats, duration, out, list(events), shown)

    def write_split(self, annotations: Path, split: str, videos: Iterator[tuple[str, Video]]) -> int:
        """``charades_sta_{split}.txt``, ``Charades_v1_{split}.csv``, the tags sidecar and the events sidecar
        (``charades_sta_{split}.events.jsonl``: ``{"vid", "events": [names]}``); for the held-out split also
        its present/absent set (``grounding.synthetic.absent``). qids count per split."""
        lines, durations, tags, records = [], [], [], []
        events: dict[str, list[Event]] = {}
        lengths: dict[str, float] = {}
        for vid, video in videos:
            durations.append(f"{vid},{video.duration}")
            events[vid], lengths[vid] = video.events, video.duration
            by_name = {event_name(e): e for e in video.events}
            for q in video.queries:
                tags.append({"qid": len(lines), **q.side})
                records.append({"qid": len(lines), "query": q.text, "vid": vid, "duration": video.duration,
                                "relevant_windows": [[q.start, q.end]], "event": by_name[q.side["event"]],
                                "tags": q.side["tags"]})
                lines.append(f"{vid} {q.start:.1f} {q.end:.1f}##{q.text}")
        (annotations / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
        (annotations / f"Charades_v1_{split}.csv").write_text("id,length\n" + "\n".join(durations) + "\n")
        write_jsonl(tags, annotations / f"charades_sta_{split}.tags.jsonl")
        write_jsonl([{"vid": v, "events": [event_name(e) for e in es]} for v, es in events.items()],
                    annotations / f"charades_sta_{split}.events.jsonl")
        if split == self.splits[1]:
            both, both_tags = absent_split(records, events, lengths, seed=self.spec.seed)
            write_jsonl(both, annotations / f"charades_sta_{split}_absent.jsonl")
            write_jsonl(both_tags, annotations / f"charades_sta_{split}_absent.tags.jsonl")
        return len(lines)


__all__ = ["AFTER_TEMPLATES", "BEFORE_TEMPLATES", "CharadesGenerator", "MomentQuery", "relational_block"]
