"""A built-in benchmark written as *real files in the Charades-STA layout* (or, with
``SyntheticSpec(layout="qvhighlights")``, the QVHighlights layout with graded saliency scores: see
``grounding.data.synthetic_qvh``), so the whole pipeline runs without any download, and hard enough to
tell models apart.

Each video is a sequence of events; an event is an (action, object) pair. Its clip features are
``signal * (A_a + style * S_a + O_o + interaction * U_a * V_o)``: an action vector with a per-video
variation ``S_a`` (an action looks alike within a video, differently across videos), an object vector,
and an interaction term (the elementwise product of an action and an object factor), so an event is not
the plain sum of its words. Events fade in and out over ~1 s (fuzzy boundaries), on top of a per-video
background and per-clip noise. The T clips of a video of D seconds span [0, D) evenly (clip i is
centred at (i + 0.5) D / T), which is what the feature resampler assumes. A query is only answerable by
reading its words:

- *compositional*: every target event has distractors in the same video that share its action or
  its object, so neither word alone finds it; sentences use several phrasings and tenses;
- *relational* (tag ``temporal``): the named event X occurs 2 or 3 times, the reference event Y once
  in a random gap between (or around) them, and a decoy Y' sharing a word with Y in another gap.
  "X before Y" is the last X before Y, "X after Y" the first X after it. Which occurrence is meant
  depends on where Y is, so "before" is not always the first occurrence nor "after" the last (a rule
  that knows every X but not Y is right at most half the time), and mistaking Y' for Y gives another
  occurrence. ``grounding.data.shortcuts`` measures what video-free predictors reach;
- *novel*: a held-out set of action-object combinations never appears in any training video; test
  queries about them measure compositional generalisation (as Charades-CG does).

Files: ``annotations/charades_sta_{train,test}.txt``, ``annotations/Charades_v1_{train,test}.csv``
(``id,length``), ``features/<vid>.npy`` (T, feature_dim) float32 with T = ceil(D * clips_per_second),
and ``annotations/charades_sta_{split}.tags.jsonl``: ``{"qid", "tags", "event"}`` (tags
``plain``/``temporal``/``novel``; ``event`` the target's canonical name, e.g. ``"open door"``), plus, for
relational queries, ``"relation": ["before" | "after", <reference event>]`` and ``"occurrence": [i, n]``
(the target is the i-th of the n occurrences of its event).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from grounding.errors import GroundingError

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
BEFORE_TEMPLATES = [
    "a person {third} the {obj} before {gerund2} the {obj2}.",
    "person {past} a {obj} before {gerund2} a {obj2}.",
]
AFTER_TEMPLATES = [
    "a person {third} the {obj} after {gerund2} the {obj2}.",
    "after {gerund2} a {obj2}, the person {third} the {obj} again.",
]


LAYOUTS = ("charades", "qvhighlights")
# Per-layout values of the fields a spec leaves at None: Charades-STA-like short videos at one clip per
# second; QVHighlights-like 30-150 s videos at one feature per 2 s clip (the QVHighlights clip, fixed).
LAYOUT_DEFAULTS: dict[str, dict[str, float | int]] = {
    "charades": {"train_videos": 1000, "test_videos": 300, "clips_per_second": 1.0,
                 "min_duration": 24.0, "max_duration": 40.0},
    "qvhighlights": {"train_videos": 500, "test_videos": 150, "clips_per_second": 0.5,
                     "min_duration": 30.0, "max_duration": 150.0},
}
# Fields that only one layout reads are left out of the other layout's ``synthetic_spec.json`` (and
# ``layout`` out of the Charades one), so a Charades-layout folder written before the QVHighlights
# layout existed is still recognised instead of being rewritten.
LAYOUT_ONLY_FIELDS = {"layout": "qvhighlights", "repeat_fraction": "qvhighlights", "annotator_noise": "qvhighlights",
                      "temporal_fraction": "charades"}


@dataclass
class SyntheticSpec:
    """Size, difficulty and seed of the synthetic benchmark (all written to ``synthetic_spec.json``).

    ``layout`` picks the files: ``charades`` (Charades-STA txt + csv, splits train/test) or
    ``qvhighlights`` (QVHighlights JSONL with saliency scores, splits train/val; ``test_videos`` is then
    the number of val videos; see ``grounding.data.synthetic_qvh``). Fields left at None take the
    layout's value from ``LAYOUT_DEFAULTS``.
    """

    train_videos: int | None = None
    test_videos: int | None = None
    feature_dim: int = 1024
    clips_per_second: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    noise: float = 1.0  # per-clip noise std, relative to unit-variance action/object coordinates
    signal: float = 0.25  # scale of action/object vectors (per coordinate)
    background: float = 1.0  # scale of the per-video constant background
    boundary_fuzz: float = 1.0  # seconds over which an event fades in and out
    label_jitter: float = 0.4  # std (s) of annotation noise on the given boundaries
    style: float = 0.5  # per-video variation of how an action looks, relative to the action vector
    interaction: float = 0.75  # scale of the action-object interaction term (elementwise product)
    temporal_fraction: float = 0.6  # share of videos with a repeated event ("X before/after Y"; charades)
    heldout_fraction: float = 0.15  # share of action-object combinations never seen in training
    seed: int = 0
    layout: str = "charades"
    repeat_fraction: float = 0.35  # qvhighlights: share of queries whose event happens 2 or 3 times
    annotator_noise: float = 0.6  # qvhighlights: std of each annotator's per-clip saliency noise (score units)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise GroundingError(f"synthetic layout '{self.layout}' is unknown; use one of {', '.join(LAYOUTS)}")
        for name, value in LAYOUT_DEFAULTS[self.layout].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.layout == "qvhighlights" and self.clips_per_second != 0.5:
            raise GroundingError(f"the qvhighlights layout has one feature per 2 s clip (clips_per_second 0.5), "
                                 f"not {self.clips_per_second}; leave clips_per_second unset")
        if self.min_duration > self.max_duration:  # type: ignore[operator]
            raise GroundingError(f"synthetic min_duration {self.min_duration} exceeds max_duration {self.max_duration}")
        if self.layout == "qvhighlights" and not (
                max(2, math.ceil(self.min_duration)) <= 2 * math.floor(self.max_duration / 2)):  # type: ignore[arg-type, operator]
            raise GroundingError(f"the qvhighlights layout needs an even duration of at least 2 s between min_duration "
                                 f"{self.min_duration} and max_duration {self.max_duration}; widen the range")

    def marker(self) -> dict[str, object]:
        """The fields that shape this layout's files (what ``synthetic_spec.json`` records)."""
        return {k: v for k, v in asdict(self).items() if LAYOUT_ONLY_FIELDS.get(k, self.layout) == self.layout}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def _name(event: tuple[int, int]) -> str:
    """A canonical name of an (action, object) event, e.g. "put down cup" (the sidecar's ``event``)."""
    return f"{ACTIONS[event[0]][0]} {OBJECTS[event[1]]}"


def _phrase(template: str, action: int, obj: int, action2: int | None = None, obj2: int | None = None) -> str:
    base, third, gerund, past, participle = ACTIONS[action]
    fields = {"base": base, "third": third, "gerund": gerund, "past": past, "participle": participle, "obj": OBJECTS[obj]}
    if action2 is not None and obj2 is not None:
        fields.update(gerund2=ACTIONS[action2][2], obj2=OBJECTS[obj2])
    return template.format(**fields)


class _Generator:
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

    def _pick(self, allowed: list[tuple[int, int]], action: int | None = None, obj: int | None = None,
              avoid: set[tuple[int, int]] = frozenset()) -> tuple[int, int] | None:  # type: ignore[assignment]
        pool = [c for c in allowed if (action is None or c[0] == action) and (obj is None or c[1] == obj) and c not in avoid]
        return pool[self.rng.integers(len(pool))] if pool else None

    def _layout(self, duration: float, n_events: int,
                length_range: tuple[float, float] = (2.5, 7.0)) -> list[tuple[float, float]]:
        """Non-overlapping event intervals that fill the video with gaps between them."""
        lengths = self.rng.uniform(*length_range, n_events)
        free = duration - lengths.sum()
        while free < 2.0:
            lengths *= 0.85
            free = duration - lengths.sum()
        gaps = self.rng.dirichlet(np.ones(n_events + 1)) * free
        out, t = [], 0.0
        for length, gap in zip(lengths, gaps[:-1], strict=True):
            t += gap
            out.append((t, t + length))
            t += length
        return out

    def _relational(self, main: tuple[int, int], distractors: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[dict]]:
        """X occurs ``n`` (2 or 3) times; the reference Y sits in gap ``k`` (0..n) between them and a
        decoy Y' (sharing a word with Y) in another gap; one distractor of X anywhere.

        "X before Y" is the last X before Y (occurrence ``k``), "X after Y" the first X after it
        (occurrence ``k + 1``); only the relations that exist are asked. Every (n, k) is equally likely,
        so a rule that knows where every X is but not where Y is picks the right one at most half the
        time, and "before" is the first X (or "after" the last) only when Y happens to sit there.
        """
        other = self._pick(self.seen, avoid={main, *distractors})  # Y
        assert other is not None
        share_action = self.rng.random() < 0.5
        decoy = self._pick(self.seen, action=other[0] if share_action else None,
                           obj=None if share_action else other[1], avoid={main, other, *distractors})
        n = int(self.rng.integers(2, 4))
        k = int(self.rng.integers(n + 1))
        gaps: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
        gaps[k].append(other)
        if decoy is not None:  # in another gap, so mistaking Y' for Y changes the answer
            gaps[int(self.rng.choice([j for j in range(n + 1) if j != k]))].append(decoy)
        seq: list[tuple[int, int]] = list(gaps[0])
        for gap in gaps[1:]:
            seq += [main, *gap]
        if distractors:
            at = int(self.rng.integers(len(seq) + 1))
            seq.insert(at, distractors[int(self.rng.integers(len(distractors)))])
        where = [i for i, e in enumerate(seq) if e == main]  # the n occurrences of X, in time order
        queries = []
        for relation, index, templates in (("before", k, BEFORE_TEMPLATES), ("after", k + 1, AFTER_TEMPLATES)):
            if 1 <= index <= n:
                tpl = templates[self.rng.integers(len(templates))]
                queries.append({"target": where[index - 1], "text": _phrase(tpl, *main, *other), "tags": ["temporal"],
                                "relation": [relation, _name(other)], "occurrence": [index, n]})
        return seq, queries

    def _events(self, novel: bool) -> tuple[list[tuple[int, int]], list[dict]]:
        """Event combos in time order and the queries about them (``target`` = event index)."""
        allowed = self.seen if not novel else self.seen + sorted(self.heldout)
        avoid_heldout = set() if novel else self.heldout
        main = self._pick(sorted(self.heldout)) if novel else self._pick(self.seen)
        assert main is not None
        events = [main]
        for shared in ("action", "object"):  # distractors sharing one word with the main event
            c = self._pick(allowed, action=main[0] if shared == "action" else None,
                           obj=main[1] if shared == "object" else None, avoid={main} | avoid_heldout)
            if c is not None:
                events.append(c)
        queries: list[dict] = []
        relational = not novel and self.rng.random() < self.spec.temporal_fraction
        if relational:
            events, queries = self._relational(main, events[1:])
        else:
            # a second family: another event and one distractor sharing its action or its object
            second = self._pick(self.seen, avoid=set(events))
            assert second is not None
            events.append(second)
            share_action = self.rng.random() < 0.5
            partner = self._pick(allowed, action=second[0] if share_action else None,
                                 obj=None if share_action else second[1], avoid=set(events) | avoid_heldout)
            if partner is not None:
                events.append(partner)
            perm = self.rng.permutation(len(events))
            events = [events[i] for i in perm]
            for i, (a, o) in enumerate(events):
                others = events[:i] + events[i + 1 :]
                if (a, o) in others or not any(e[0] == a or e[1] == o for e in others):
                    continue  # every query has a distractor sharing one of its words
                is_novel = (a, o) in self.heldout
                if novel and not is_novel:
                    continue
                tpl = PLAIN_TEMPLATES[self.rng.integers(len(PLAIN_TEMPLATES))]
                queries.append({"target": i, "text": _phrase(tpl, a, o), "tags": ["novel" if is_novel else "plain"]})
        return events, queries

    def _look(self, events: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """How each event of one video looks: ``signal * (A_a + style * S_a + O_o + interaction * U_a * V_o)``
        with ``S_a`` drawn per video and action (the same action looks alike within a video, differently
        across videos) and ``U_a * V_o`` an elementwise product, which no sum of an action part and an
        object part can express."""
        spec = self.spec
        style = {a: self.rng.normal(0, 1, spec.feature_dim).astype(np.float32) for a in sorted({a for a, _ in events})}
        return {(a, o): spec.signal * (self.action_vecs[a] + spec.style * style[a] + self.object_vecs[o]
                                       + spec.interaction * self.action_mix[a] * self.object_mix[o])
                for a, o in set(events)}

    def video(self, novel: bool) -> tuple[np.ndarray, float, list[tuple[float, float, str, dict]]]:
        spec = self.spec
        events, queries = self._events(novel)
        duration = float(np.round(self.rng.uniform(spec.min_duration, spec.max_duration), 2))
        spans = self._layout(duration, len(events))
        num_clips = max(1, int(np.ceil(duration * spec.clips_per_second)))
        # T clips span [0, D) evenly, as the feature resampler (grounding.data.features) assumes
        centers = (np.arange(num_clips) + 0.5) * duration / num_clips  # (T,)
        feats = self.rng.normal(0, spec.noise, (num_clips, spec.feature_dim)).astype(np.float32)
        feats += self.rng.normal(0, spec.background, (1, spec.feature_dim)).astype(np.float32)
        look = self._look(events)
        width = max(spec.boundary_fuzz, 1e-3) / 4
        for event, (start, end) in zip(events, spans, strict=True):
            weight = _sigmoid((centers - start) / width) * _sigmoid((end - centers) / width)
            feats += weight[:, None].astype(np.float32) * look[event]
        out = []
        for q in queries:
            start, end = spans[q["target"]]
            js, je = self.rng.normal(0, spec.label_jitter, 2)
            start, end = max(0.0, start + js), min(duration, end + je)
            if end - start < 1.0:
                start, end = spans[q["target"]]
            side = {"tags": q["tags"], "event": _name(events[q["target"]]),
                    **{k: q[k] for k in ("relation", "occurrence") if k in q}}
            out.append((round(start, 1), round(end, 1), q["text"], side))
        return feats, duration, out


GENERATOR_VERSION = 4  # bump when the generator's output changes, so old folders are regenerated


def write_synthetic(root: str | Path, spec: SyntheticSpec | None = None, overwrite: bool = False,
                    progress: bool = True) -> dict[str, int]:
    """Write the benchmark under ``root`` in ``spec.layout``; returns query counts per split.

    A folder already holding this exact benchmark is reused; one holding another synthetic benchmark
    (different spec or generator version) is rewritten; any other non-empty folder is left alone
    unless ``overwrite``.
    """
    spec = spec or SyntheticSpec()
    root = Path(root)
    marker = root / "synthetic_spec.json"
    wanted = {**spec.marker(), "generator_version": GENERATOR_VERSION}
    if root.exists() and any(root.iterdir()) and not overwrite:
        if not marker.is_file():
            raise GroundingError(f"{root} exists and is not a synthetic benchmark; pass --overwrite or another folder")
        if json.loads(marker.read_text()) == wanted and (root / "counts.json").is_file():
            return json.loads((root / "counts.json").read_text())
    if root.exists() and marker.is_file():
        import shutil

        for sub in ("annotations", "features"):
            shutil.rmtree(root / sub, ignore_errors=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "features").mkdir(parents=True, exist_ok=True)
    (root / "counts.json").unlink(missing_ok=True)  # written last: its presence means "complete"
    marker.write_text(json.dumps(wanted, indent=1))
    if spec.layout == "qvhighlights":
        from grounding.data.synthetic_qvh import write_highlight_splits

        counts = write_highlight_splits(root, spec, progress)
    else:
        counts = _write_charades_splits(root, spec, progress)
    (root / "counts.json").write_text(json.dumps(counts))
    return counts


def _write_charades_splits(root: Path, spec: SyntheticSpec, progress: bool) -> dict[str, int]:
    gen = _Generator(spec)
    counts: dict[str, int] = {}
    plan = {"train": [False] * spec.train_videos}  # type: ignore[operator]
    n_novel = int(round(spec.test_videos * 0.25)) if spec.heldout_fraction > 0 else 0  # type: ignore[operator]
    plan["test"] = [False] * (spec.test_videos - n_novel) + [True] * n_novel  # type: ignore[operator]
    for split, novel_flags in plan.items():
        lines, durations, tags = [], [], []
        for i, novel in enumerate(tqdm(novel_flags, desc=f"synthetic {split}", disable=not progress)):
            vid = f"SYN{split[:2].upper()}{i:05d}"
            feats, duration, queries = gen.video(novel)
            np.save(root / "features" / f"{vid}.npy", feats)
            durations.append(f"{vid},{duration}")
            for start, end, text, side in queries:
                tags.append({"qid": len(lines), **side})
                lines.append(f"{vid} {start:.1f} {end:.1f}##{text}")
        (root / "annotations" / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
        (root / "annotations" / f"Charades_v1_{split}.csv").write_text("id,length\n" + "\n".join(durations) + "\n")
        with (root / "annotations" / f"charades_sta_{split}.tags.jsonl").open("w") as fh:
            fh.writelines(json.dumps(t) + "\n" for t in tags)
        counts[split] = len(lines)
    return counts


def vocabulary() -> list[str]:
    """Every word a query of this world can hold (with ``<pad>`` and ``<unk>``): the vocabulary of the random
    checkpoints benchmarks load, so their queries map to known words."""
    words = {w for a in ACTIONS for w in " ".join(a).split()} | {"a", "person", "the", "opens"}
    return ["<pad>", "<unk>", *sorted(words - set(OBJECTS)), *OBJECTS]
