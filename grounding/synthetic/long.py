"""The synthetic benchmark in the *long-video layout* (TACoS / ActivityNet-like): 128-256 s videos at one
clip per second, a dozen short events per video, many of them sharing a verb or an object, written as
ActivityNet Captions JSON (the world they show: ``grounding.synthetic.world``).

This is the regime a coarse-to-fine cascade is meant for: a moment is 2-10 % of the video (log-uniform,
so most are short), and the video holds many look-alike events, so a global stage alone has to pick a
few clips out of a long sequence of similar ones. Each video interleaves

- ``relational_blocks`` (2) relational groups (``grounding.synthetic.charades.relational_block``): an
  event X two or three times, the reference Y once in a random gap, a decoy Y' sharing a word with Y in
  another gap, and a distractor sharing a word with X; the queries "X before Y" / "X after Y" (tag
  ``temporal``) name the occurrence next to Y, so the keyword alone is right at most half the time;
- one family of events (a target and distractors sharing its action or its object; in a test video
  about held-out combinations, a held-out target: tag ``novel``);

every event of a video is distinct from the events of its other groups, and an interleaving keeps each
group's order, so the answer of a relational query does not change. Every event that happens once and
shares a word with another event of the video is asked about (tag ``plain``, or ``novel``); test videos
about held-out combinations ask only about those.

Files: ``annotations/{train,test}.json`` (``{vid: {"duration", "timestamps": [[s, e], ...], "sentences"}}``
in seconds, as ActivityNet Captions; a query's id is its position in the file, as the reader numbers
them), ``features/<vid>.npy`` (T, feature_dim) float32 with T = ceil(D * clips_per_second) spanning
[0, D) evenly, and ``annotations/{split}.tags.jsonl``: ``{"qid", "tags", "event"}`` plus, for relational
queries, ``"relation"`` and ``"occurrence"`` as in the Charades layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from grounding.synthetic.charades import MomentQuery, plain_queries, relational_block
from grounding.synthetic.spec import SyntheticSpec
from grounding.synthetic.world import Event, Span, Video, World, event_name, place_in_order

LONGEST_COVER = 0.85  # events fill at most this share of a video; the rest are gaps between them


def short_spans(world: World, duration: float, n_events: int, shortest: float, longest: float) -> list[Span]:
    """Non-overlapping event intervals of ``shortest``-``longest`` of the video each (log-uniform, so short
    events are common), separated by random gaps; lengths are redrawn until they fit."""
    lo, hi = np.log(shortest * duration), np.log(longest * duration)
    for _ in range(100):
        lengths = np.exp(world.rng.uniform(lo, hi, n_events))
        if lengths.sum() <= LONGEST_COVER * duration:
            break
    else:  # too many events for the video: shrink them all (only for extreme specs)
        lengths *= LONGEST_COVER * duration / lengths.sum()
    return place_in_order(lengths, world.rng.dirichlet(np.ones(n_events + 1)) * (duration - lengths.sum()))


class LongVideoGenerator:
    """Videos and queries of the long-video layout, drawn from one ``World``."""

    splits = ("train", "test")
    video_prefix = "SYNLV"

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.world = World(spec)

    def _distractor(self, event: Event, used: set[Event], novel: bool) -> Event | None:
        """An event sharing ``event``'s action or (at random) its object, none of ``used``."""
        world = self.world
        share_action = world.rng.random() < 0.5
        avoid = used | {event} | (set() if novel else world.heldout)
        return world.pick(world.allowed(novel), action=event[0] if share_action else None,
                          obj=None if share_action else event[1], avoid=avoid)

    def groups(self, novel: bool) -> list[tuple[list[Event], list[dict[str, Any]]]]:
        """The video's groups, each its events in order and its queries (``target`` = index in the group):
        the relational blocks, then the family (a single group of events in any order)."""
        world = self.world
        used: set[Event] = set()
        groups = []
        for _ in range(self.spec.relational_blocks):
            main = world.pick(world.seen, avoid=used)
            assert main is not None
            distractor = self._distractor(main, used, novel=False)
            seq, queries = relational_block(world, main, [distractor] if distractor else [], avoid=used)
            used |= set(seq)
            groups.append((seq, [] if novel else queries))
        main = world.pick(sorted(world.heldout - used) if novel else world.seen, avoid=used)
        assert main is not None
        family = [main]
        for _ in range(2):
            extra = self._distractor(main, used | set(family), novel)
            if extra is not None:
                family.append(extra)
        groups += [([event], []) for event in family]
        return groups

    def events(self, novel: bool) -> tuple[list[Event], list[dict[str, Any]]]:
        """Events in time order (the groups interleaved, each keeping its order) and every query
        (``target`` = event index)."""
        world = self.world
        groups = self.groups(novel)
        keys = [np.sort(world.rng.random(len(seq))) for seq, _ in groups]  # a random interleaving
        flat = [(float(key), g, i) for g, ks in enumerate(keys) for i, key in enumerate(ks)]
        order = sorted(range(len(flat)), key=lambda j: flat[j][0])
        position = {(flat[j][1], flat[j][2]): at for at, j in enumerate(order)}
        events = [groups[flat[j][1]][0][flat[j][2]] for j in order]
        queries = [dict(q, target=position[(g, q["target"])]) for g, (_, qs) in enumerate(groups) for q in qs]
        return events, queries + plain_queries(world, events, novel)

    def video(self, novel: bool) -> Video:
        """Features (T, D) with T = ceil(duration * clips_per_second), the duration, and ``MomentQuery``s."""
        spec, world = self.spec, self.world
        events, queries = self.events(novel)
        duration = float(np.round(world.rng.uniform(spec.min_duration, spec.max_duration), 2))
        spans = short_spans(world, duration, len(events), spec.min_moment, spec.max_moment)
        num_clips = max(1, int(np.ceil(duration * spec.clips_per_second)))
        centers = (np.arange(num_clips) + 0.5) * duration / num_clips  # (T,) spanning [0, D) evenly
        feats, _ = world.render(events, spans, centers)
        out = []
        for q in queries:
            start, end = spans[q["target"]]
            js, je = world.rng.normal(0, spec.label_jitter, 2)
            start, end = max(0.0, start + js), min(duration, end + je)
            if end - start < 0.5 * (spans[q["target"]][1] - spans[q["target"]][0]):
                start, end = spans[q["target"]]
            side = {"tags": q["tags"], "event": event_name(events[q["target"]]),
                    **{k: q[k] for k in ("relation", "occurrence") if k in q}}
            out.append(MomentQuery(round(start, 2), round(end, 2), q["text"], side))
        shown = [(event_name(e), float(a), float(b)) for e, (a, b) in zip(events, spans, strict=True)]
        return Video(feats, duration, out, list(events), shown)

    def write_split(self, annotations: Path, split: str, videos: Iterator[tuple[str, Video]]) -> int:
        """``{split}.json`` (ActivityNet Captions) and the tags sidecar; qids are positions in the file."""
        items: dict[str, dict[str, Any]] = {}
        tags = []
        for vid, video in videos:
            items[vid] = {"duration": video.duration, "timestamps": [[q.start, q.end] for q in video.queries],
                          "sentences": [q.text for q in video.queries]}
            tags += [{"qid": len(tags) + i, **q.side} for i, q in enumerate(video.queries)]
        (annotations / f"{split}.json").write_text(json.dumps(items))
        with (annotations / f"{split}.tags.jsonl").open("w") as fh:
            fh.writelines(json.dumps(t) + "\n" for t in tags)
        return len(tags)


__all__ = ["LONGEST_COVER", "LongVideoGenerator", "short_spans"]
