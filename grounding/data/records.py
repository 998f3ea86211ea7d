"""The native annotation record and the checks every dataset goes through.

Every benchmark converts to one QVHighlights-style record ``{qid, query, vid, duration,
relevant_windows}`` (seconds). ``clean_records`` then makes the windows safe to train and evaluate on
and counts each repair, so that a user sees what was changed instead of getting silently odd numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grounding.errors import GroundingError

Window = list[float]  # [start, end] in seconds


@dataclass
class MomentRecord:
    """One query about one video; ``windows`` may hold several ground-truth moments (QVHighlights)."""

    qid: int | str
    query: str
    vid: str
    duration: float | None
    windows: list[Window]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. relevant_clip_ids, saliency_scores

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "qid": self.qid,
            "query": self.query,
            "vid": self.vid,
            "duration": self.duration,
            "relevant_windows": [[round(s, 4), round(e, 4)] for s, e in self.windows],
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "record") -> MomentRecord:
        missing = [k for k in ("qid", "query", "vid", "duration") if k not in obj]
        if missing:
            raise GroundingError(f"{where}: missing key(s) {missing}; a native record needs qid, query, vid, duration")
        extra = {k: v for k, v in obj.items() if k not in ("qid", "query", "vid", "duration", "relevant_windows")}
        windows = [[float(s), float(e)] for s, e in obj.get("relevant_windows") or []]
        duration = None if obj["duration"] is None else float(obj["duration"])
        return cls(obj["qid"], str(obj["query"]), str(obj["vid"]), duration, windows, extra)


@dataclass
class CleanReport:
    """What ``clean_records`` changed; printed by the converter and logged by training."""

    total: int = 0
    kept: int = 0
    windows_clipped: int = 0
    windows_reversed: int = 0
    empty_windows: int = 0
    dropped_empty: int = 0
    dropped_no_duration: int = 0

    def summary(self) -> str:
        return (
            f"{self.kept}/{self.total} queries kept; windows clipped to [0, duration]: {self.windows_clipped}, "
            f"reversed (start > end, swapped): {self.windows_reversed}, zero-length: {self.empty_windows}; "
            f"dropped for an empty window: {self.dropped_empty}, for a missing duration: {self.dropped_no_duration}"
        )


EmptyPolicy = Literal["keep", "drop", "error"]
MissingDurationPolicy = Literal["drop", "error"]


def clean_records(
    records: Iterable[MomentRecord],
    empty_windows: EmptyPolicy = "keep",
    missing_duration: MissingDurationPolicy = "drop",
    source: str = "annotations",
) -> tuple[list[MomentRecord], CleanReport]:
    """Clip windows to [0, duration], swap reversed ones, and apply the empty-window/duration policies.

    ``empty_windows="keep"`` is the default because the reference evaluators keep zero-length
    ground truth (it simply cannot be hit), so the published query counts include them.
    """
    report = CleanReport()
    kept: list[MomentRecord] = []
    for rec in records:
        report.total += 1
        if rec.duration is None or not math.isfinite(rec.duration) or rec.duration <= 0:
            if missing_duration == "error":
                raise GroundingError(
                    f"{source}: video '{rec.vid}' (query {rec.qid}) has no duration; "
                    "give a durations file that lists it, or set data.missing_duration=drop"
                )
            report.dropped_no_duration += 1
            continue
        windows: list[Window] = []
        has_empty = False
        for start, end in rec.windows:
            if start > end:
                start, end = end, start
                report.windows_reversed += 1
            clipped_start, clipped_end = max(0.0, start), min(rec.duration, end)
            if (clipped_start, clipped_end) != (start, end):
                report.windows_clipped += 1
            if clipped_end <= clipped_start:
                has_empty = True
                report.empty_windows += 1
                clipped_end = max(clipped_start, clipped_end)
                clipped_start = min(clipped_start, clipped_end)
            windows.append([clipped_start, clipped_end])
        if has_empty and empty_windows == "error":
            raise GroundingError(
                f"{source}: query {rec.qid} ('{rec.query[:40]}') has an empty window {rec.windows}; "
                "fix the annotation or set data.empty_windows=drop"
            )
        if has_empty and empty_windows == "drop":
            report.dropped_empty += 1
            continue
        rec.windows = windows
        kept.append(rec)
    report.kept = len(kept)
    return kept, report


def write_jsonl(items: Iterable[MomentRecord | dict[str, Any]], path: str | Path) -> int:
    """One JSON line per record (native annotation) or dict (e.g. a prediction); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as fh:
        for item in items:
            fh.write(json.dumps(item.to_json() if isinstance(item, MomentRecord) else item) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-empty line, with a clear error for a bad line."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"annotation file {path} does not exist; check data.root and data.annotations")
    with path.open() as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                raise GroundingError(f"{path}:{line_no}: not valid JSON ({err.msg}); fix or remove that line") from err


def read_native_jsonl(path: str | Path) -> list[MomentRecord]:
    return [MomentRecord.from_json(obj, f"{path}:{n}") for n, obj in iter_jsonl(path)]
