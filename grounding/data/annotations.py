"""Readers that turn each benchmark's published annotation files into native ``MomentRecord``s.

Query ids: QVHighlights keeps its own ``qid``; the other benchmarks have none, so a query's id is its
0-based position in the file (sentence order within each video for the JSON formats), which is stable
for a given file and lets predictions be joined back to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from grounding.data.records import MomentRecord, iter_jsonl
from grounding.errors import GroundingError
from grounding.registry import Registry

AnnotationReader = Callable[..., list[MomentRecord]]
ANNOTATION_READERS: Registry[list[MomentRecord]] = Registry("annotation format")


def _require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"{what} {path} does not exist; check the path (data.root and data.annotations)")
    return path


def _load_json(path: Path) -> dict:
    try:
        with path.open() as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise GroundingError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err


def _position(path: Path, vid: str, index: int) -> str:
    """Where a sentence of a ``{vid: {timestamps, sentences}}`` JSON file is (such files are often one line)."""
    return f"{path}: video '{vid}', timestamp {index}"


def read_durations(path: str | Path, setting: str = "data.durations") -> dict[str, float]:
    """Video durations from a Charades csv (columns ``id``, ``length``) or a ``{vid: {"duration": s}}`` /
    ``{vid: seconds}`` JSON; ``setting`` names the option that gave ``path`` in the error messages."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"{setting} {path} does not exist; pass a csv with columns id,length (seconds, like "
                             "Charades_v1_test.csv) or a JSON {vid: seconds}")
    if path.suffix.lower() == ".json":
        data = _load_json(path)
        try:
            return {str(vid): float(v["duration"] if isinstance(v, dict) else v) for vid, v in data.items()}
        except (KeyError, TypeError, ValueError) as err:
            raise GroundingError(f"{path}: expected {{vid: {{\"duration\": seconds}}}} ({err})") from err
    try:
        table = pd.read_csv(path, usecols=["id", "length"], dtype={"id": str})
    except ValueError as err:
        raise GroundingError(f"{path}: a durations csv needs columns 'id' and 'length' ({err})") from err
    table = table.dropna(subset=["length"])
    return dict(zip(table["id"], table["length"].astype(float), strict=True))


@ANNOTATION_READERS.register("charades_sta")
def read_charades_sta(path: str | Path, durations: str | Path | dict[str, float] | None = None) -> list[MomentRecord]:
    """``VID START END##sentence`` lines; durations come from a csv/JSON since the txt has none."""
    path = _require_file(path, "Charades-STA annotation file")
    if durations is None:
        raise GroundingError(
            f"{path}: Charades-STA lines carry no video durations; pass --durations "
            "Charades_v1_<split>.csv (or a {vid: {duration}} JSON), or set data.durations.<split>"
        )
    lengths = durations if isinstance(durations, dict) else read_durations(durations)
    records: list[MomentRecord] = []
    with path.open() as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            head, sep, sentence = line.partition("##")
            parts = head.split()
            try:
                if not sep or len(parts) != 3:
                    raise ValueError("expected 'VID START END##sentence'")
                vid, start, end = parts[0], float(parts[1]), float(parts[2])
            except ValueError as err:
                raise GroundingError(f"{path}:{line_no}: cannot parse '{line.strip()[:60]}' ({err})") from err
            records.append(MomentRecord(len(records), sentence.strip(), vid, lengths.get(vid), [[start, end]],
                                        source=f"{path}:{line_no}"))
    return records


@ANNOTATION_READERS.register("activitynet")
def read_activitynet(path: str | Path, durations: object = None) -> list[MomentRecord]:
    """``{vid: {duration, timestamps: [[s, e], ...], sentences: [...]}}`` in seconds."""
    path = _require_file(path, "ActivityNet Captions annotation file")
    records: list[MomentRecord] = []
    for vid, item in _load_json(path).items():
        stamps, sentences = item.get("timestamps", []), item.get("sentences", [])
        if len(stamps) != len(sentences):
            raise GroundingError(f"{path}: video {vid} has {len(stamps)} timestamps but {len(sentences)} sentences")
        for i, ((start, end), sentence) in enumerate(zip(stamps, sentences, strict=True)):
            records.append(
                MomentRecord(len(records), sentence.strip(), vid, item.get("duration"), [[float(start), float(end)]],
                             source=_position(path, vid, i))
            )
    return records


@ANNOTATION_READERS.register("tacos")
def read_tacos(path: str | Path, durations: object = None) -> list[MomentRecord]:
    """``{vid: {timestamps: [[f0, f1], ...] (frames), sentences, fps, num_frames}}`` -> seconds = frame / fps."""
    path = _require_file(path, "TACoS annotation file")
    records: list[MomentRecord] = []
    for vid, item in _load_json(path).items():
        try:
            fps, num_frames = float(item["fps"]), float(item["num_frames"])
        except (KeyError, TypeError, ValueError) as err:
            raise GroundingError(f"{path}: video {vid} lacks a numeric 'fps'/'num_frames' ({err})") from err
        stamps, sentences = item.get("timestamps", []), item.get("sentences", [])
        if len(stamps) != len(sentences):
            raise GroundingError(f"{path}: video {vid} has {len(stamps)} timestamps but {len(sentences)} sentences")
        stem = vid[:-4] if vid.endswith(".avi") else vid  # feature files are named without the extension
        for i, ((f0, f1), sentence) in enumerate(zip(stamps, sentences, strict=True)):
            records.append(
                MomentRecord(len(records), sentence.strip(), stem, num_frames / fps, [[f0 / fps, f1 / fps]],
                             source=_position(path, vid, i))
            )
    return records


@ANNOTATION_READERS.register("qvhighlights")
def read_qvhighlights(path: str | Path, durations: object = None) -> list[MomentRecord]:
    """QVHighlights JSONL is already native; ``relevant_clip_ids``/``saliency_scores`` are kept as extras."""
    path = _require_file(path, "QVHighlights annotation file")
    return [MomentRecord.from_json(obj, f"{path}:{line_no}") for line_no, obj in iter_jsonl(path)]


@ANNOTATION_READERS.register("native")
def read_native(path: str | Path, durations: object = None) -> list[MomentRecord]:
    """Our own JSONL (what ``tools/convert_annotations.py`` writes)."""
    return read_qvhighlights(path)


def read_annotations(dataset: str, path: str | Path, durations: str | Path | None = None) -> list[MomentRecord]:
    """Read ``path`` with the reader registered under ``dataset``; raise if it holds no queries."""
    records = ANNOTATION_READERS.get(dataset)(path, durations=durations)
    if not records:
        raise GroundingError(f"annotation file {path} holds no queries; is it the right file for '{dataset}'?")
    return records
