"""A built-in benchmark written as *real files in the Charades-STA layout*, so the whole pipeline runs
without any download, and hard enough to tell models apart.

Each video is a sequence of events; an event is an (action, object) pair whose clip features are the
sum of a random action vector and a random object vector, fading in and out over ~1 s (fuzzy
boundaries), on top of a per-video background and per-clip noise. A query is only answerable by
reading its words:

- *compositional*: every target event has distractors in the same video that share its action or
  its object, so neither word alone finds it; sentences use several phrasings and tenses;
- *temporal*: some videos show the same event X twice with another event Y between, and a decoy Y'
  sharing a word with Y after (or before) them; "X before Y" and "X after Y" pick the first or the
  second occurrence, and a model that mistakes Y' for Y picks the other one;
- *novel*: a held-out set of action-object combinations never appears in any training video; test
  queries about them measure compositional generalisation (as Charades-CG does).

Files: ``annotations/charades_sta_{train,test}.txt``, ``annotations/Charades_v1_{train,test}.csv``
(``id,length``), ``features/<vid>.npy`` (T, feature_dim) float32 at ``clips_per_second``, and
``annotations/charades_sta_{split}.tags.jsonl`` (``{"qid", "tags"}``; tags ``plain``/``temporal``/``novel``).
"""

from __future__ import annotations

import json
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


@dataclass
class SyntheticSpec:
    """Size, difficulty and seed of the synthetic benchmark (all written to ``synthetic_spec.json``)."""

    train_videos: int = 1000
    test_videos: int = 300
    feature_dim: int = 1024
    clips_per_second: float = 1.0
    min_duration: float = 24.0
    max_duration: float = 40.0
    noise: float = 1.0  # per-clip noise std, relative to unit-variance action/object coordinates
    signal: float = 0.25  # scale of action/object vectors (per coordinate)
    background: float = 1.0  # scale of the per-video constant background
    boundary_fuzz: float = 1.0  # seconds over which an event fades in and out
    label_jitter: float = 0.4  # std (s) of annotation noise on the given boundaries
    temporal_fraction: float = 0.5  # share of videos with a repeated event ("X before/after Y")
    heldout_fraction: float = 0.15  # share of action-object combinations never seen in training
    seed: int = 0


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
        self.action_vecs = self.rng.normal(0, spec.signal, (len(ACTIONS), d)).astype(np.float32)
        self.object_vecs = self.rng.normal(0, spec.signal, (len(OBJECTS), d)).astype(np.float32)
        combos = [(a, o) for a in range(len(ACTIONS)) for o in range(len(OBJECTS))]
        order = self.rng.permutation(len(combos))
        n_heldout = int(round(spec.heldout_fraction * len(combos)))
        self.heldout = {combos[i] for i in order[:n_heldout]}
        self.seen = [combos[i] for i in order[n_heldout:]]

    def _pick(self, allowed: list[tuple[int, int]], action: int | None = None, obj: int | None = None,
              avoid: set[tuple[int, int]] = frozenset()) -> tuple[int, int] | None:  # type: ignore[assignment]
        pool = [c for c in allowed if (action is None or c[0] == action) and (obj is None or c[1] == obj) and c not in avoid]
        return pool[self.rng.integers(len(pool))] if pool else None

    def _layout(self, duration: float, n_events: int) -> list[tuple[float, float]]:
        """Non-overlapping event intervals that fill the video with gaps between them."""
        lengths = self.rng.uniform(2.5, 7.0, n_events)
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
        temporal = not novel and self.rng.random() < self.spec.temporal_fraction
        if temporal:
            other = self._pick(self.seen, avoid=set(events))  # Y
            assert other is not None
            share_action = self.rng.random() < 0.5
            decoy = self._pick(self.seen, action=other[0] if share_action else None,  # Y', shares a word with Y
                               obj=None if share_action else other[1], avoid=set(events) | {other})
            # X Y X Y' or Y' X Y X: the occurrence of X before (after) the *decoy* is the wrong answer
            seq = [main, other, main, decoy] if self.rng.random() < 0.5 else [decoy, main, other, main]
            seq = [e for e in seq if e is not None]
            first = seq.index(main)
            second = len(seq) - 1 - seq[::-1].index(main)
            distractor = events[1 + int(self.rng.integers(len(events) - 1))] if len(events) > 1 else None
            if distractor is not None:  # one distractor of X (sharing a word) anywhere
                at = int(self.rng.integers(len(seq) + 1))
                seq.insert(at, distractor)
                first, second = first + (at <= first), second + (at <= second)
            for tpl_set, target in ((BEFORE_TEMPLATES, first), (AFTER_TEMPLATES, second)):
                tpl = tpl_set[self.rng.integers(len(tpl_set))]
                queries.append({"target": target, "text": _phrase(tpl, *main, *other), "tags": ["temporal"]})
            events = seq
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

    def video(self, novel: bool) -> tuple[np.ndarray, float, list[tuple[float, float, str, list[str]]]]:
        spec = self.spec
        events, queries = self._events(novel)
        duration = float(np.round(self.rng.uniform(spec.min_duration, spec.max_duration), 2))
        spans = self._layout(duration, len(events))
        num_clips = max(1, int(np.ceil(duration * spec.clips_per_second)))
        centers = (np.arange(num_clips) + 0.5) / spec.clips_per_second  # (T,)
        feats = self.rng.normal(0, spec.noise, (num_clips, spec.feature_dim)).astype(np.float32)
        feats += self.rng.normal(0, spec.background, (1, spec.feature_dim)).astype(np.float32)
        width = max(spec.boundary_fuzz, 1e-3) / 4
        for (a, o), (start, end) in zip(events, spans, strict=True):
            weight = 1 / (1 + np.exp(-(centers - start) / width)) * 1 / (1 + np.exp((centers - end) / width))
            feats += weight[:, None].astype(np.float32) * (self.action_vecs[a] + self.object_vecs[o])
        out = []
        for q in queries:
            start, end = spans[q["target"]]
            js, je = self.rng.normal(0, spec.label_jitter, 2)
            start, end = max(0.0, start + js), min(duration, end + je)
            if end - start < 1.0:
                start, end = spans[q["target"]]
            out.append((round(start, 1), round(end, 1), q["text"], q["tags"]))
        return feats, duration, out


GENERATOR_VERSION = 3  # bump when the generator's output changes, so old folders are regenerated


def write_synthetic(root: str | Path, spec: SyntheticSpec | None = None, overwrite: bool = False,
                    progress: bool = True) -> dict[str, int]:
    """Write the benchmark under ``root``; returns query counts per split.

    A folder already holding this exact benchmark is reused; one holding another synthetic benchmark
    (different spec or generator version) is rewritten; any other non-empty folder is left alone
    unless ``overwrite``.
    """
    spec = spec or SyntheticSpec()
    root = Path(root)
    marker = root / "synthetic_spec.json"
    wanted = {**asdict(spec), "generator_version": GENERATOR_VERSION}
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
    gen = _Generator(spec)
    counts: dict[str, int] = {}
    plan = {"train": [False] * spec.train_videos}
    n_novel = int(round(spec.test_videos * 0.25)) if spec.heldout_fraction > 0 else 0
    plan["test"] = [False] * (spec.test_videos - n_novel) + [True] * n_novel
    for split, novel_flags in plan.items():
        lines, durations, tags = [], [], []
        for i, novel in enumerate(tqdm(novel_flags, desc=f"synthetic {split}", disable=not progress)):
            vid = f"SYN{split[:2].upper()}{i:05d}"
            feats, duration, queries = gen.video(novel)
            np.save(root / "features" / f"{vid}.npy", feats)
            durations.append(f"{vid},{duration}")
            for start, end, text, qtags in queries:
                tags.append({"qid": len(lines), "tags": qtags})
                lines.append(f"{vid} {start:.1f} {end:.1f}##{text}")
        (root / "annotations" / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
        (root / "annotations" / f"Charades_v1_{split}.csv").write_text("id,length\n" + "\n".join(durations) + "\n")
        with (root / "annotations" / f"charades_sta_{split}.tags.jsonl").open("w") as fh:
            fh.writelines(json.dumps(t) + "\n" for t in tags)
        counts[split] = len(lines)
    (root / "counts.json").write_text(json.dumps(counts))
    return counts
