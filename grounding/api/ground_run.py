"""What ``tools/ground.py`` does, as functions: list the videos, ground every pair (the queries come from
``grounding.data.records.queries_from_args``), then print a table and write the JSON and HTML outputs.
All inputs are checked and every video is grounded before anything is written, so a bad input leaves
no half-written output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grounding.errors import GroundingError
from grounding.extract.inputs import VIDEO_EXTENSIONS
from grounding.inference.records import in_video_verdict


def list_video_files(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_dir():
        found = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not found:
            raise GroundingError(f"--video {source} holds no video ({', '.join(VIDEO_EXTENSIONS)})")
        return found
    if not source.exists():
        raise GroundingError(f"--video {source} does not exist; pass a video file or a folder of videos")
    return [source]


def check_outputs(paths: list[str | Path | None], overwrite: bool) -> None:
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        if path.exists() and not overwrite:
            raise GroundingError(f"{path} exists; pass --overwrite to replace it, or another path")
        if not path.parent.is_dir():
            raise GroundingError(f"the folder of {path} does not exist; create it first")


def ground_all(grounder: Any, videos: list[Path], queries: list[dict[str, Any]], top_k: int
               ) -> list[tuple[Any, list[dict[str, Any]]]]:
    """``[(encoded video, [prediction per query])]``; each video is encoded once for all queries."""
    out = []
    for path in videos:
        video = grounder.encode_video(path)
        preds = grounder.predict([q["query"] for q in queries], video, top_k=top_k)
        for q, pred in zip(queries, preds, strict=True):
            pred["qid"] = q["qid"]
        out.append((video, preds))
    return out


def in_video_note(p: float | None) -> str:
    """``  (in video: p)`` after a query, plus the verdict below the threshold; nothing for a model without it."""
    if p is None:
        return ""
    verdict = in_video_verdict(p)
    return f"  (in video: {p:.2f}{'; ' + verdict if verdict else ''})"


def table(results: list[tuple[Any, list[dict[str, Any]]]]) -> str:
    lines = []
    for video, preds in results:
        lines.append(f"{video.vid} ({video.duration:.1f} s)")
        for pred in preds:
            lines.append(f"  query: {pred['query']}{in_video_note(pred.get('pred_in_video'))}")
            lines.append(f"    {'rank':>4}  {'start':>8}  {'end':>8}  {'score':>9}")
            for rank, (s, e, c) in enumerate(pred["pred_relevant_windows"], start=1):
                lines.append(f"    {rank:>4}  {s:>8.2f}  {e:>8.2f}  {c:>9.4f}")
    return "\n".join(lines)


def write_outputs(results: list[tuple[Any, list[dict[str, Any]]]], json_path: str | Path | None,
                  html_path: str | Path | None, title: str) -> None:
    from grounding.api.report import video_payload, write_atomic, write_report

    records = [pred for _, preds in results for pred in preds]
    payloads = [video_payload(video, preds) for video, preds in results] if html_path else []
    if json_path:
        write_atomic(json_path, json.dumps(records, indent=1) + "\n")
    if html_path:
        write_report(html_path, payloads, title)
