"""Why a grounding model misses on a synthetic benchmark: which event its top-1 window lands on.

The annotations give one window per query; the generator knows every event a video shows
(``Video.timeline``, read back by replaying the folder's spec: ``grounding.synthetic.world.replay_splits``).
Each query's top-1 prediction is matched to the event it overlaps most (temporal IoU) and put in one class:

- ``hit``: IoU >= 0.5 with the ground truth;
- ``boundary``: the right event (the right occurrence of a repeated one), IoU < 0.5: a boundary error;
- ``wrong_occurrence``: another occurrence of the named event (relational queries: X is right, the
  reference Y was not used, or used wrongly). Its ``detail`` says which: ``flipped`` (the occurrence
  the opposite relation names: "after" read as "before"), ``decoy`` (the one next to the decoy Y', which
  shares a word with Y), ``other``;
- ``reference``: the reference event Y itself (relational queries);
- ``shares_word``: an event sharing the target's action or object (a compositional error);
- ``other_event``: any other event;
- ``no_event``: no event overlaps the window at IoU >= ``MATCH_IOU`` (a gap, or a window over several).

For relational queries whose window lands on an occurrence of X, the summary says how often it is the
right one, against a uniform guess among the occurrences and against the keyword-only rule
(``grounding.synthetic.shortcuts.keyword_occurrence_rule``, fitted on the training split: "for this
keyword and this many occurrences, pick occurrence i"), and how often the model's pick equals the
rule's: a model that ignores Y but learnt the keyword's prior agrees with the rule always.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding.data.records import MomentRecord
from grounding.errors import GroundingError
from grounding.eval.iou import pairwise_iou
from grounding.synthetic.benchmark import generator_for, read_spec
from grounding.synthetic.shortcuts import LAYOUT_FORMATS, keyword, keyword_occurrence_rule, read_split
from grounding.synthetic.world import replay_splits

CATEGORIES = ("hit", "boundary", "wrong_occurrence", "reference", "shares_word", "other_event", "no_event")
MATCH_IOU = 0.2  # a window "lands on" the event it overlaps most only from this IoU on
ShownEvent = tuple[str, float, float]  # (event name, start, end) seconds


@dataclass
class Diagnosis:
    """One query's top-1 prediction: its class, IoU with the ground truth, and what it landed on."""

    qid: Any
    tags: list[str]
    category: str
    iou: float
    landed_on: str | None  # the event name, None for no_event
    detail: str | None = None  # wrong_occurrence: flipped | decoy | other
    picked: int | None = None  # relational, on an occurrence of X: which one (1-based)
    occurrence: list[int] | None = None  # relational: [right occurrence, occurrences]
    relation: str | None = None  # relational: "before" | "after"
    rule_pick: int | None = None  # relational: the occurrence the keyword-only rule picks
    follows_keyword_rule: bool | None = None
    target_in_top5: bool = False


def split_words(name: str) -> tuple[str, str]:
    """"put down cup" -> ("put down", "cup"): an event name's action and object."""
    action, obj = name.rsplit(" ", 1)
    return action, obj


def shares_word(a: str, b: str) -> bool:
    (a1, a2), (b1, b2) = split_words(a), split_words(b)
    return a != b and (a1 == b1 or a2 == b2)


def _nearest_answer(names: list[str], target: str, relation: str, ref: int) -> int | None:
    """Index of the occurrence of ``target`` nearest before (after) event ``ref``, or None."""
    side = [i for i, n in enumerate(names) if n == target and (i < ref if relation == "before" else i > ref)]
    return (side[-1] if relation == "before" else side[0]) if side else None


def diagnose(record: MomentRecord, windows: Sequence[Sequence[float]], side: dict[str, Any],
             events: list[ShownEvent], rule: dict[tuple[str, int], int] | None = None) -> Diagnosis:
    """The class of ``record``'s top-1 window among ``windows`` (best first) in a video showing ``events``."""
    gt = np.asarray(record.windows[:1], dtype=float)  # (1, 2)
    preds = np.asarray([w[:2] for w in windows] or [[0.0, 0.0]], dtype=float)  # (K, 2)
    ious = pairwise_iou(preds, gt)[:, 0]  # (K,)
    names = [n for n, _, _ in events]
    spans = np.asarray([[s, e] for _, s, e in events], dtype=float).reshape(-1, 2)
    target_name = side.get("event", "")
    mine = [i for i, n in enumerate(names) if n == target_name]
    if not mine:
        raise GroundingError(f"query {record.qid}: its event '{target_name}' is not among the video's events; "
                             "were the predictions made on this benchmark folder?")
    target = mine[int(np.argmax(pairwise_iou(spans[mine], gt)[:, 0]))]
    base = dict(qid=record.qid, tags=list(side.get("tags", [])), iou=float(ious[0]),
                occurrence=side.get("occurrence"), relation=(side.get("relation") or [None])[0],
                target_in_top5=bool((ious[:5] >= 0.5).any()))
    to_events = pairwise_iou(preds[:1], spans)[0] if len(spans) else np.zeros(0)  # (E,)
    landed = int(np.argmax(to_events)) if len(spans) and to_events.max() >= MATCH_IOU else None
    landed_name = names[landed] if landed is not None else None
    relation = side.get("relation")
    rule_pick = rule.get((keyword(record.query), len(mine))) if rule is not None and relation else None
    picked, follows = None, None
    if landed is not None and landed_name == target_name and relation:
        picked = mine.index(landed) + 1
        follows = None if rule_pick is None else rule_pick == picked
    base.update(landed_on=landed_name, picked=picked, rule_pick=rule_pick, follows_keyword_rule=follows)
    if ious[0] >= 0.5:
        return Diagnosis(category="hit", **base)
    if landed is None:
        return Diagnosis(category="no_event", **base)
    if landed == target:
        return Diagnosis(category="boundary", **base)
    if landed_name == target_name:
        detail = "other"
        if relation:
            kind, reference = relation
            refs = [i for i, n in enumerate(names) if n == reference]
            decoys = [i for i, n in enumerate(names) if shares_word(n, reference) and n != target_name]
            flipped = "after" if kind == "before" else "before"
            if refs and _nearest_answer(names, target_name, flipped, refs[0]) == landed:
                detail = "flipped"
            elif any(_nearest_answer(names, target_name, kind, d) == landed for d in decoys):
                detail = "decoy"
        return Diagnosis(category="wrong_occurrence", detail=detail, **base)
    if relation and landed_name == relation[1]:
        return Diagnosis(category="reference", **base)
    if shares_word(landed_name, target_name):
        return Diagnosis(category="shares_word", **base)
    return Diagnosis(category="other_event", **base)


def replayed_events(root: str | Path) -> dict[str, list[ShownEvent]]:
    """``vid -> events`` of every video of a synthetic benchmark folder, made again from its spec."""
    spec = read_spec(root)
    return {vid: video.timeline for _, vid, video in replay_splits(spec, generator_for(spec))}


def read_predictions(path: str | Path) -> dict[str, list[list[float]]]:
    """``qid (as text) -> pred_relevant_windows`` of a predictions JSONL file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            obj = json.loads(line)
            out[str(obj["qid"])] = obj.get("pred_relevant_windows", [])
    return out


def analyse_folder(root: str | Path, predictions: str | Path, split: str | None = None) -> list[Diagnosis]:
    """Every query of ``split`` (the layout's held-out split by default) of the benchmark in ``root``,
    diagnosed from the predictions file (a query without a prediction gets an empty window)."""
    from grounding.synthetic.shortcuts import synthetic_layout

    layout = synthetic_layout(root)
    split = split or LAYOUT_FORMATS[layout][1]
    records, side = read_split(Path(root), layout, split)
    train, train_side = read_split(Path(root), layout, "train")
    relational = [dict(e, keyword=keyword(r.query)) for r in train if "occurrence" in (e := train_side.get(r.qid, {}))]
    rule = keyword_occurrence_rule(relational) if relational else None
    events = replayed_events(root)
    preds = read_predictions(predictions)
    return [diagnose(rec, preds.get(str(rec.qid), []), side.get(rec.qid, {}), events[rec.vid], rule)
            for rec in records]


def summarise(diagnoses: Sequence[Diagnosis]) -> dict[str, dict[str, Any]]:
    """Per tag (and ``all``): query count, percent of queries in each class, wrong-occurrence details,
    and, for relational queries, how often the picked occurrence follows the keyword-only rule."""
    groups: dict[str, list[Diagnosis]] = {"all": list(diagnoses)}
    for d in diagnoses:
        for tag in d.tags:
            groups.setdefault(tag, []).append(d)
    out: dict[str, dict[str, Any]] = {}
    for tag, rows in groups.items():
        counts = Counter(d.category for d in rows)
        entry: dict[str, Any] = {"count": len(rows),
                                 **{c: 100.0 * counts[c] / len(rows) for c in CATEGORIES},
                                 "target_in_top5": 100.0 * float(np.mean([d.target_in_top5 for d in rows]))}
        wrong = [d.detail for d in rows if d.category == "wrong_occurrence"]
        if wrong:
            entry["wrong_occurrence_detail"] = {k: 100.0 * v / len(wrong) for k, v in sorted(Counter(wrong).items())}
        on_x = [d for d in rows if d.picked is not None and d.occurrence]
        if on_x:  # which occurrence, given that the window is on the named event
            entry["occurrence_right"] = 100.0 * float(np.mean([d.picked == d.occurrence[0] for d in on_x]))
            entry["occurrence_chance"] = 100.0 * float(np.mean([1.0 / d.occurrence[1] for d in on_x]))
            # the keyword's prior: "before" -> the first occurrence, "after" -> the last; picked vs right
            extreme = [(d.picked, d.occurrence[0], 1 if d.relation == "before" else d.occurrence[1]) for d in on_x]
            entry["picks_keyword_side"] = 100.0 * float(np.mean([p == e for p, _, e in extreme]))
            entry["right_on_keyword_side"] = 100.0 * float(np.mean([r == e for _, r, e in extreme]))
            ruled = [d for d in on_x if d.rule_pick is not None]
            if ruled:
                entry["keyword_rule_right"] = 100.0 * float(np.mean([d.rule_pick == d.occurrence[0] for d in ruled]))
                entry["follows_keyword_rule"] = 100.0 * float(np.mean([d.rule_pick == d.picked for d in ruled]))
        out[tag] = entry
    return out


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """A text table: one row per tag, one column per class (percent of the tag's queries)."""
    short = {"wrong_occurrence": "wrong_occ", "shares_word": "shares_wd", "other_event": "other_ev"}
    head = f"{'tag':<12}{'count':>7}" + "".join(f"{short.get(c, c):>10}" for c in CATEGORIES) + f"{'in_top5':>9}"
    lines = [head]
    for tag in sorted(summary, key=lambda t: (t != "all", t)):
        row = summary[tag]
        lines.append(f"{tag:<12}{row['count']:>7}" + "".join(f"{row[c]:10.1f}" for c in CATEGORIES)
                     + f"{row['target_in_top5']:9.1f}")
    for tag, row in summary.items():
        if "occurrence_right" in row:
            detail = ", ".join(f"{k} {v:.1f}%" for k, v in row.get("wrong_occurrence_detail", {}).items())
            line = (f"{tag}: on the named event, the right occurrence {row['occurrence_right']:.1f}% (uniform guess "
                    f"{row['occurrence_chance']:.1f}%")
            if "keyword_rule_right" in row:
                line += (f", keyword-only rule {row['keyword_rule_right']:.1f}%; the pick equals the rule's "
                         f"{row['follows_keyword_rule']:.1f}%")
            lines.append(line + f"); wrong occurrences: {detail or '-'}")
            lines.append(f"{tag}: picks the keyword's side (before: first, after: last occurrence) "
                         f"{row['picks_keyword_side']:.1f}%, where the answer is {row['right_on_keyword_side']:.1f}%")
    return "\n".join(lines)


def to_jsonable(diagnoses: Sequence[Diagnosis]) -> list[dict[str, Any]]:
    return [asdict(d) for d in diagnoses]


__all__ = ["CATEGORIES", "Diagnosis", "MATCH_IOU", "analyse_folder", "diagnose", "format_summary", "read_predictions",
           "replayed_events", "shares_word", "summarise", "to_jsonable"]
