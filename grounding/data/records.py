"""The native annotation record and the checks every dataset goes through.

Every benchmark converts to one QVHighlights-style record ``{qid, query, vid, duration,
relevant_windows}`` (seconds). ``clean_records`` then makes the windows safe to train and evaluate on
and counts each repair, so that a user sees what was changed instead of getting silently odd numbers.
Each record remembers where it was read (``file:line``, or the file and the position for JSON formats),
so that every repair can name the line to fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
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
    source: str = field(default="", compare=False, repr=False)  # where it was read: "file:line" or file + position

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
        return cls(obj["qid"], str(obj["query"]), str(obj["vid"]), duration, windows, extra, source=where)


EXAMPLES_PER_KIND = 3


@dataclass
class CleanReport:
    """What ``clean_records`` changed; printed by the converter and logged by training.

    Besides the counts it keeps the first few repairs of each kind with the line they come from, so
    that a user can find and fix the annotation instead of trusting a bare number.
    """

    total: int = 0
    kept: int = 0
    windows_clipped: int = 0
    windows_reversed: int = 0
    empty_windows: int = 0
    windows_outside: int = 0
    dropped_empty: int = 0
    dropped_outside: int = 0
    dropped_no_duration: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str, text: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_KIND:
            shown.append(text)

    def summary(self) -> str:
        return (
            f"{self.kept}/{self.total} queries kept; windows clipped to [0, duration]: {self.windows_clipped}, "
            f"reversed (start > end, swapped): {self.windows_reversed}, zero-length: {self.empty_windows}, "
            f"outside the video (removed): {self.windows_outside}; dropped for an empty window: {self.dropped_empty}, "
            f"for no window inside the video: {self.dropped_outside}, for a missing duration: {self.dropped_no_duration}"
        )

    def details(self) -> list[str]:
        """One line per shown repair (``file:line: what``), then how many more of that kind there are."""
        lines: list[str] = []
        for kind, shown in self.examples.items():
            lines.extend(shown)
            more = self.counts[kind] - len(shown)
            if more > 0:
                lines.append(f"... and {more} more {kind}")
        return lines


EmptyPolicy = Literal["keep", "drop", "error"]
MissingDurationPolicy = Literal["drop", "error"]
FixHint = Callable[[str, str], str]


def config_fix(option: str, value: str) -> str:
    """How to change a cleaning policy in a training config (the converter passes its own flags)."""
    return f"set data.{option}={value}"


def _outside(start: float, end: float, duration: float) -> bool:
    """No part of ``[start, end]`` lies in the video (a zero-length window inside it is merely empty)."""
    if start == end:
        return not 0.0 <= start <= duration
    return min(end, duration) - max(start, 0.0) <= 0.0


def _fmt(window: Iterable[float]) -> str:
    return "[" + ", ".join(f"{x:g}" for x in window) + "]"


def clean_records(
    records: Iterable[MomentRecord],
    empty_windows: EmptyPolicy = "keep",
    missing_duration: MissingDurationPolicy = "drop",
    source: str = "annotations",
    fix: FixHint = config_fix,
) -> tuple[list[MomentRecord], CleanReport]:
    """Clip windows to [0, duration], swap reversed ones, and apply the empty-window/duration policies.

    ``empty_windows="keep"`` is the default because the reference evaluators keep zero-length
    ground truth (it simply cannot be hit), so the published query counts include them. A window with
    no part inside the video is never kept: it is removed (a query left without windows is dropped),
    or, under ``empty_windows="error"``, an error. ``fix(option, value)`` words the hint in errors.
    """
    report = CleanReport()
    kept: list[MomentRecord] = []
    for rec in records:
        report.total += 1
        where = f"{rec.source or source} (query {rec.qid})"
        if rec.duration is None or not math.isfinite(rec.duration) or rec.duration <= 0:
            if missing_duration == "error":
                raise GroundingError(
                    f"{where}: video '{rec.vid}' has no duration; "
                    f"give a durations file that lists it, or {fix('missing_duration', 'drop')}"
                )
            report.dropped_no_duration += 1
            report.note("queries without a duration", f"{where}: video '{rec.vid}' has no duration; query dropped")
            continue
        windows: list[Window] = []
        has_empty, empty_given = False, (0.0, 0.0)
        for start, end in rec.windows:
            given = (start, end)
            if start > end:
                start, end = end, start
                report.windows_reversed += 1
                report.note("reversed windows", f"{where}: window {_fmt(given)} has start > end; swapped")
            if _outside(start, end, rec.duration):
                report.windows_outside += 1
                if empty_windows == "error":
                    raise GroundingError(
                        f"{where}: window {_fmt(given)} lies outside the video (0 to {rec.duration:g} s); "
                        f"fix the annotation, or {fix('empty_windows', 'drop')} to remove such windows"
                    )
                report.note("windows outside the video",
                            f"{where}: window {_fmt(given)} lies outside the video (0 to {rec.duration:g} s); removed")
                continue
            clipped_start, clipped_end = max(0.0, start), min(rec.duration, end)
            if (clipped_start, clipped_end) != (start, end):
                report.windows_clipped += 1
                report.note("clipped windows", f"{where}: window {_fmt(given)} clipped to "
                                               f"{_fmt((clipped_start, clipped_end))} (video length {rec.duration:g} s)")
            if clipped_end <= clipped_start:
                has_empty, empty_given = True, given
                report.empty_windows += 1
                report.note("zero-length windows", f"{where}: window {_fmt(given)} has zero length")
            windows.append([clipped_start, clipped_end])
        if rec.windows and not windows:
            report.dropped_outside += 1
            continue
        if has_empty and empty_windows == "error":
            raise GroundingError(
                f"{where}: query '{rec.query[:40]}' has an empty window {_fmt(empty_given)}; "
                f"fix the annotation or {fix('empty_windows', 'drop')}"
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


def read_queries(path: str | Path) -> list[dict[str, Any]]:
    """``[{"qid", "query"}]`` from a file a user wrote: JSONL records with ``query`` (and ``qid``; other keys
    ignored) when it ends in ``.jsonl``, else one sentence per line. A query without a ``qid`` gets its
    0-based position, as in the annotation readers."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"--queries {path} does not exist; pass a text file (one query per line) or a .jsonl "
                             "of records with 'query'")
    if path.suffix == ".jsonl":
        items = []
        for line_no, obj in iter_jsonl(path):
            if not isinstance(obj, dict) or "query" not in obj:
                raise GroundingError(f"{path}:{line_no}: not a JSON record with a 'query' field")
            items.append((obj.get("qid"), _query_text(obj["query"], f"{path}:{line_no}: the query")))
    else:
        lines = path.read_text(encoding="utf8").splitlines()
        items = [(None, line.strip()) for line in lines if line.strip()]
    if not items:
        raise GroundingError(f"--queries {path} holds no query")
    return [{"qid": position if qid is None else qid, "query": text} for position, (qid, text) in enumerate(items)]


def queries_from_args(query: str | None, queries_file: str | Path | None) -> list[dict[str, Any]]:
    """The queries of a command line: ``--query TEXT`` (qid 0) or ``--queries FILE`` (``read_queries``)."""
    if query is not None:
        return [{"qid": 0, "query": _query_text(query, "--query")}]
    return read_queries(str(queries_file))


def _query_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GroundingError(f"{where} is empty; describe the moment in words, e.g. 'a person opens the door'")
    return value.strip()
