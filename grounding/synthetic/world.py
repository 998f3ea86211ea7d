"""The world every synthetic layout films: actions, objects, how an event looks, and how a split is written.

Each video is a sequence of events; an event is an (action, object) pair. Its clip features are
``signal * (A_a + style * S_a + O_o + interaction * U_a * V_o)``: an action vector with a per-video
variation ``S_a`` (an action looks alike within a video, differently across videos), an object vector,
and an interaction term (the elementwise product of an action and an object factor), so an event is not
the plain sum of its words. Events fade in and out over ~1 s (fuzzy boundaries), on top of a per-video
background and per-clip noise. A held-out set of action-object combinations never appears in a
training video; queries about them measure compositional generalisation (as Charades-CG does).

Every query's event has distractors in the same video that share its action or its object, so neither
word alone finds it. The layouts (``grounding.synthetic.charades``, ``grounding.synthetic.qvhighlights``,
``grounding.synthetic.long``) decide which events happen how often, how long a video is, and what the
annotations look like; they draw every random number from the one ``World.rng``, so a spec and a seed give
the same bytes (and ``replay_splits`` makes a folder's videos again, with the events they show).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from grounding.synthetic.spec import SyntheticSpec

# (base, third person, gerund, past, participle)
ACTIONS = [
    ("open", "opens", "opening", "opened", "opened"),
    ("close", "closes", "closing", "closed", "closed"),
    ("hold", "holds", "holding", "held", "held"),
    ("take", "takes", "taking", "took", "taken"),
    ("put down", "puts down", "putting down", "put down", "put down"),
    ("wash", "washes", "washing", "washed", "washed"),
    ("throw", "throws", "throwing", "threw", "thrown"),
    ("look at", "looks at", "looking at", "looked at", "looked at"),
    ("tidy", "tidies", "tidying", "tidied", "tidied"),
    ("fix", "fixes", "fixing", "fixed", "fixed"),
    ("carry", "carries", "carrying", "carried", "carried"),
    ("clean", "cleans", "cleaning", "cleaned", "cleaned"),
]
OBJECTS = [
    "door", "book", "cup", "laptop", "towel", "box", "phone", "shoe",
    "pillow", "blanket", "bag", "dish", "broom", "chair", "window", "sandwich",
]
PLAIN_TEMPLATES = [
    "a person {third} the {obj}.",
    "person {third} a {obj}.",
    "the person is {gerund} the {obj}.",
    "someone {past} a {obj}.",
    "the {obj} is {participle} by a person.",
    "a person starts {gerund} the {obj}.",
]

Event = tuple[int, int]  # (index into ACTIONS, index into OBJECTS)
Span = tuple[float, float]  # (start, end) in seconds


def vocabulary() -> list[str]:
    """Every word a query of this world can hold (with ``<pad>`` and ``<unk>``): the vocabulary of the random
    checkpoints benchmarks load, so that their queries map to known words."""
    words = {w for a in ACTIONS for w in " ".join(a).split()} | {"a", "person", "the", "opens"}
    return ["<pad>", "<unk>", *sorted(words - set(OBJECTS)), *OBJECTS]


def event_name(event: Event) -> str:
    """A canonical name of an event, e.g. "put down cup" (the sidecars' ``event``)."""
    return f"{ACTIONS[event[0]][0]} {OBJECTS[event[1]]}"


def phrase(template: str, action: int, obj: int, action2: int | None = None, obj2: int | None = None) -> str:
    """A template filled with one event's verb forms and object (and a second event's, for relations)."""
    base, third, gerund, past, participle = ACTIONS[action]
    fields = {"base": base, "third": third, "gerund": gerund, "past": past, "participle": participle, "obj": OBJECTS[obj]}
    if action2 is not None and obj2 is not None:
        fields.update(gerund2=ACTIONS[action2][2], obj2=OBJECTS[obj2])
    return template.format(**fields)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def place_in_order(lengths: np.ndarray, gaps: np.ndarray) -> list[Span]:
    """Intervals of ``lengths`` laid end to end in order, each after its gap (``gaps`` has one more entry, the
    space left after the last interval)."""
    out, t = [], 0.0
    for length, gap in zip(lengths, gaps[:-1], strict=True):
        t += gap
        out.append((t, t + length))
        t += length
    return out


class World:
    """The vectors of every action and object, the held-out combinations, and the random stream.

    Made once per benchmark from ``spec.seed``; the first draws are the vectors, so another user of the
    same seed (e.g. an oracle text embedding) gets the same ``action_vecs`` and ``object_vecs``.
    """

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        d = spec.feature_dim
        self.action_vecs = self.rng.normal(0, 1, (len(ACTIONS), d)).astype(np.float32)
        self.object_vecs = self.rng.normal(0, 1, (len(OBJECTS), d)).astype(np.float32)
        self.action_mix = self.rng.normal(0, 1, (len(ACTIONS), d)).astype(np.float32)  # interaction factors
        self.object_mix = self.rng.normal(0, 1, (len(OBJECTS), d)).astype(np.float32)
        combos = [(a, o) for a in range(len(ACTIONS)) for o in range(len(OBJECTS))]
        order = self.rng.permutation(len(combos))
        n_heldout = int(round(spec.heldout_fraction * len(combos)))
        self.heldout = {combos[i] for i in order[:n_heldout]}
        self.seen = [combos[i] for i in order[n_heldout:]]

    # ------------------------------------------------------------------ events
    def pick(self, allowed: list[Event], action: int | None = None, obj: int | None = None,
             avoid: set[Event] | frozenset[Event] = frozenset()) -> Event | None:
        """A random combination of ``allowed`` with that action and/or object, not in ``avoid``; None if none is left."""
        pool = [c for c in allowed if (action is None or c[0] == action) and (obj is None or c[1] == obj) and c not in avoid]
        return pool[self.rng.integers(len(pool))] if pool else None

    def allowed(self, novel: bool) -> list[Event]:
        """The combinations a video may show: held-out ones only in a video about them (``novel``)."""
        return self.seen if not novel else self.seen + sorted(self.heldout)

    def _not_heldout(self, novel: bool) -> set[Event]:
        return set() if novel else self.heldout

    def target_with_distractors(self, novel: bool) -> list[Event]:
        """The video's main event (a held-out combination when ``novel``), then up to two distractors: one
        sharing its action, one sharing its object, so neither word alone finds it."""
        main = self.pick(sorted(self.heldout)) if novel else self.pick(self.seen)
        assert main is not None
        events = [main]
        for shared in ("action", "object"):
            c = self.pick(self.allowed(novel), action=main[0] if shared == "action" else None,
                          obj=main[1] if shared == "object" else None, avoid=set(events) | self._not_heldout(novel))
            if c is not None:
                events.append(c)
        return events

    def add_second_family(self, events: list[Event], novel: bool) -> None:
        """Append another seen event and, where one exists, a partner sharing its action or its object."""
        second = self.pick(self.seen, avoid=set(events))
        assert second is not None
        events.append(second)
        share_action = self.rng.random() < 0.5
        partner = self.pick(self.allowed(novel), action=second[0] if share_action else None,
                            obj=None if share_action else second[1], avoid=set(events) | self._not_heldout(novel))
        if partner is not None:
            events.append(partner)

    # ------------------------------------------------------------------ time and features
    def spans(self, duration: float, n_events: int, length_range: tuple[float, float] = (2.5, 7.0)) -> list[Span]:
        """Non-overlapping event intervals that fill the video with gaps between them."""
        lengths = self.rng.uniform(*length_range, n_events)
        free = duration - lengths.sum()
        while free < 2.0:
            lengths *= 0.85
            free = duration - lengths.sum()
        return place_in_order(lengths, self.rng.dirichlet(np.ones(n_events + 1)) * free)

    def look(self, events: list[Event]) -> dict[Event, np.ndarray]:
        """How each event of one video looks: ``signal * (A_a + style * S_a + O_o + interaction * U_a * V_o)``
        with ``S_a`` drawn per video and action (the same action looks alike within a video, differently
        across videos) and ``U_a * V_o`` an elementwise product, which no sum of an action part and an
        object part can express."""
        spec = self.spec
        style = {a: self.rng.normal(0, 1, spec.feature_dim).astype(np.float32) for a in sorted({a for a, _ in events})}
        return {(a, o): spec.signal * (self.action_vecs[a] + spec.style * style[a] + self.object_vecs[o]
                                       + spec.interaction * self.action_mix[a] * self.object_mix[o])
                for a, o in set(events)}

    def render(self, events: list[Event], spans: list[Span], centers: np.ndarray,
               envelope: Callable[[np.ndarray, float, float], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Clip features (T, D) of a video whose clips are centred at ``centers`` (T,) seconds, and each
        event's strength per clip (E, T): its ~``boundary_fuzz`` s fade-in/out, times ``envelope(centers,
        start, end)`` where a layout wants an event to be stronger in some clips than in others."""
        spec = self.spec
        feats = self.rng.normal(0, spec.noise, (len(centers), spec.feature_dim)).astype(np.float32)
        feats += self.rng.normal(0, spec.background, (1, spec.feature_dim)).astype(np.float32)
        look = self.look(events)
        width = max(spec.boundary_fuzz, 1e-3) / 4
        strength = np.zeros((len(events), len(centers)))
        for j, (event, (start, end)) in enumerate(zip(events, spans, strict=True)):
            strength[j] = _sigmoid((centers - start) / width) * _sigmoid((end - centers) / width)
            if envelope is not None:
                strength[j] *= envelope(centers, start, end)
            feats += strength[j][:, None].astype(np.float32) * look[event]
        return feats, strength


# ---------------------------------------------------------------------- splits


@dataclass
class Video:
    """One generated video: its clip features (T, D), its duration in seconds, the layout's queries, every
    event it shows (what makes a query about another event absent from it) and its ``timeline``:
    ``(event name, start, end)`` of every event in time order (true spans, before any annotation noise; not
    written to the files, read back by ``replay_splits`` for error analyses)."""

    features: np.ndarray
    duration: float
    queries: list[Any]
    events: list[Event] = field(default_factory=list)
    timeline: list[tuple[str, float, float]] = field(default_factory=list)


class Layout(Protocol):
    """What a file layout decides; ``write_splits`` does the rest the same way for every layout."""

    splits: tuple[str, str]  # the training split, then the held-out split
    video_prefix: str  # video ids are ``<prefix><first two letters of the split><index>``

    def video(self, novel: bool) -> Video: ...

    def write_split(self, annotations: Path, split: str, videos: Iterator[tuple[str, Video]]) -> int:
        """Write one split's annotation files from its videos (features already saved); the query count."""
        ...


def split_plan(spec: SyntheticSpec, splits: tuple[str, str]) -> dict[str, list[bool]]:
    """Which video of each split is about held-out combinations: none in training; the last
    ``spec.novel_videos()`` of the held-out split."""
    train, held_out = splits
    n_novel = spec.novel_videos()
    return {train: [False] * spec.train_videos,  # type: ignore[operator]
            held_out: [False] * (spec.test_videos - n_novel) + [True] * n_novel}  # type: ignore[operator]


def write_splits(root: Path, spec: SyntheticSpec, layout: Layout, progress: bool) -> dict[str, int]:
    """Generate both splits in order, save each video's features to ``features/<vid>.npy`` as it is
    made, and let the layout write the annotations; returns query counts per split."""
    counts: dict[str, int] = {}
    for split, novel_flags in split_plan(spec, layout.splits).items():
        prefix = f"{layout.video_prefix}{split[:2].upper()}"
        counts[split] = layout.write_split(root / "annotations", split,
                                           _saved_videos(root / "features", prefix, novel_flags, layout, progress, split))
    return counts


def _saved_videos(features: Path, prefix: str, novel_flags: list[bool], layout: Layout, progress: bool,
                  split: str) -> Iterator[tuple[str, Video]]:
    for i, novel in enumerate(tqdm(novel_flags, desc=f"synthetic {split}", disable=not progress)):
        vid = f"{prefix}{i:05d}"
        video = layout.video(novel)
        np.save(features / f"{vid}.npy", video.features)
        yield vid, video


def replay_splits(spec: SyntheticSpec, layout: Layout) -> Iterator[tuple[str, str, Video]]:
    """``(split, vid, video)`` of every video ``write_splits`` makes from ``layout`` (a fresh generator of
    ``spec``), in the same order and with the same random draws, without writing anything: what a
    folder's videos show (``Video.timeline``), which its files do not record."""
    for split, novel_flags in split_plan(spec, layout.splits).items():
        prefix = f"{layout.video_prefix}{split[:2].upper()}"
        for i, novel in enumerate(novel_flags):
            video = layout.video(novel)
            yield split, f"{prefix}{i:05d}", video


__all__ = ["ACTIONS", "OBJECTS", "PLAIN_TEMPLATES", "Event", "Layout", "Span", "Video", "World", "event_name",
           "phrase", "replay_splits", "split_plan", "write_splits"]
