"""Text mode: features of every query of an annotation file, one ``<qid>.npz`` per query.

Each file holds ``features`` ``(L, D)`` (token features) and ``pooled`` ``(D,)`` (a sentence vector),
the precomputed-text input of the data layer. Queries are read with the dataset's annotation reader
(so qids are those of ``tools/convert_annotations.py``), deduplicated by qid, sorted, sharded and
resumed like videos.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from grounding.backbones import TextEncoder
from grounding.data.annotations import read_annotations
from grounding.data.manifest import append_manifest, read_manifest
from grounding.errors import GroundingError
from grounding.extract.inputs import take_shard
from grounding.extract.runtime import RunSummary, progress_bar, resolve_device
from grounding.extract.writers import NpzWriter


@dataclass
class TextExtractConfig:
    annotations: str | Path
    dataset: str  # an annotation format: charades_sta, activitynet, tacos, qvhighlights, native
    model: str | Path | None
    out: str | Path
    durations: str | Path | None = None
    device: str = "cpu"
    batch_size: int = 64  # queries per forward pass
    shard: tuple[int, int] = (0, 1)
    overwrite: bool = False
    progress: bool = True


def extract_text(cfg: TextExtractConfig) -> RunSummary:
    if cfg.batch_size < 1:
        raise GroundingError("--batch-size must be at least 1")
    # Charades-STA's reader insists on durations; text features do not depend on them.
    records = read_annotations(cfg.dataset, cfg.annotations, cfg.durations if cfg.durations is not None else {})
    queries = {}
    for rec in records:
        queries.setdefault(str(rec.qid), rec)
    queries = take_shard(sorted(queries.items()), *cfg.shard)
    writer = NpzWriter(cfg.out)
    done = read_manifest(cfg.out, key="qid")
    todo = [(qid, rec) for qid, rec in queries if cfg.overwrite or not (qid in done and writer.exists(qid))]
    summary = RunSummary("query", total=len(queries), skipped=len(queries) - len(todo))
    device, dtype = resolve_device(cfg.device)
    encoder = TextEncoder(cfg.model).to(device=device, dtype=dtype)
    started = time.perf_counter()
    with progress_bar(len(todo), "query", cfg.progress) as bar:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            for (qid, rec), (tokens, pooled) in zip(batch, encoder.encode([r.query for _, r in batch]), strict=True):
                writer.write(qid, tokens, pooled=pooled)
                append_manifest(
                    cfg.out,
                    {
                        "qid": qid,
                        "vid": rec.vid,
                        "query": rec.query,
                        "tokens": int(tokens.shape[0]),
                        "feature_dim": int(tokens.shape[1]),
                        "backbone": "text",
                        "model": str(cfg.model),
                        "file": writer.location(qid),
                    },
                )
                summary.done += 1
                summary.features += int(tokens.shape[0])
            bar.update(len(batch))
    summary.seconds = time.perf_counter() - started
    return summary
