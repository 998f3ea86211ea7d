"""Present and absent queries of a held-out split: the evaluation set of "is the moment in this video?".

For every query of the split (present: asked of its own video) one absent counterpart asks the *same
sentence* of another video of the split that does not contain the query's event (its action-object
pair; known exactly, since the generator records every event of every video). Using the same sentences
on both sides means no text-only rule can tell present from absent: only the video can.

The absent video is drawn uniformly from those without the event. It is tagged ``look_alike`` when it
shows an event sharing the action or the object (e.g. "open door" asked of a video with "open box"),
the hard case for a model that matches single words.

Written as native JSONL (``charades_sta_<split>_absent.jsonl``; the QVHighlights layout writes
``highlight_<split>_absent.jsonl``): present records as in the split, then absent ones ``{"qid": N + i, "query", "vid", "duration", "relevant_windows": [], "absent": true,
"look_alike", "source_qid"}``; tags beside it (``charades_sta_<split>_absent.tags.jsonl``: the present queries' tags,
``absent`` and ``look_alike`` for the others).

``look_alike_ceiling`` reads the same sidecars for library search: how many videos show each query's
event, and the video retrieval a model that cannot tell those videos apart reaches at best.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from grounding.synthetic.world import Event


def absent_split(records: list[dict[str, Any]], events: dict[str, list[Event]], durations: dict[str, float],
                 seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``records``: the split's native records (any extra keys, e.g. saliency scores, are kept), each with its
    target ``event`` (action, object) and ``tags``; ``events``: every event of every video. Returns (present +
    absent native records, their tag lines); absent qids follow the split's largest."""
    rng = np.random.default_rng(seed)
    vids = sorted(events)
    out, tags = [], []
    for rec in records:
        out.append({k: v for k, v in rec.items() if k not in ("event", "tags")})
        tags.append({"qid": rec["qid"], "tags": list(rec["tags"])})
    first_qid = max(int(r["qid"]) for r in records) + 1
    for i, rec in enumerate(records):
        action, obj = rec["event"]
        others = [v for v in vids if v != rec["vid"] and (action, obj) not in events[v]]
        vid = others[int(rng.integers(len(others)))]
        qid = first_qid + i
        look_alike = any(a == action or o == obj for a, o in events[vid])
        out.append({"qid": qid, "query": rec["query"], "vid": vid, "duration": durations[vid], "relevant_windows": [],
                    "absent": True, "look_alike": look_alike, "source_qid": rec["qid"]})
        tags.append({"qid": qid, "tags": ["absent", *(["look_alike"] if look_alike else [])]})
    return out, tags




def look_alike_counts(annotations: str | Path, split: str = "test") -> dict[Any, int]:
    """For each query of ``split``: how many of the split's videos show its event (its own included), from
    the tags and events sidecars. A model that recognises the event but cannot tell these videos apart
    ranks the query's own video among them at random."""
    annotations = Path(annotations)
    tags = [json.loads(line) for line in (annotations / f"charades_sta_{split}.tags.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (annotations / f"charades_sta_{split}.events.jsonl").read_text().splitlines()]
    showing: dict[str, int] = {}
    for video in events:
        for name in set(video["events"]):
            showing[name] = showing.get(name, 0) + 1
    return {t["qid"]: showing[t["event"]] for t in tags}


def look_alike_ceiling(annotations: str | Path, split: str = "test", ks: tuple[int, ...] = (1, 5, 10, 100),
                       single_video: str | Path | None = None) -> dict[str, float]:
    """What a model that cannot tell look-alike videos apart reaches at best, in percent: ``VR-R{k}`` = mean
    over queries of min(1, k / n_q), n_q the videos showing the query's event (the query's own video among
    them at a random place); with ``single_video`` (a predictions file of the same model grounding each
    query in its own video) also ``VCMR-R{k}@0.5`` = mean of min(1, k / n_q) x [its top-1 window has IoU >= 0.5],
    the ceiling of a list with one moment per video. Also the mean and median n_q."""
    counts = look_alike_counts(annotations, split)
    n = np.array(list(counts.values()), dtype=np.float64)
    out = {f"VR-R{k}": round(float(np.minimum(1.0, k / n).mean() * 100), 2) for k in ks}
    if single_video is not None:
        truth = {r["qid"]: r["relevant_windows"] for r in map(json.loads, (Path(annotations) / f"charades_sta_{split}_absent.jsonl")
                 .read_text().splitlines()) if not r.get("absent")}
        hit = {}
        for pred in map(json.loads, Path(single_video).read_text().splitlines()):
            s, e = pred["pred_relevant_windows"][0][:2]
            hit[pred["qid"]] = max(_iou((s, e), w) for w in truth[pred["qid"]]) >= 0.5
        got = np.array([hit.get(q, False) for q in counts], dtype=np.float64)
        out.update({f"VCMR-R{k}@0.5": round(float((np.minimum(1.0, k / n) * got).mean() * 100), 2) for k in ks})
    return {**out, "videos_per_event_mean": round(float(n.mean()), 2), "videos_per_event_median": float(np.median(n))}


def _iou(a: tuple[float, float], b: list[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / max(max(a[1], b[1]) - min(a[0], b[0]), 1e-9)


__all__ = ["absent_split", "look_alike_ceiling", "look_alike_counts"]
