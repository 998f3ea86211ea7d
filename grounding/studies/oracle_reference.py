"""A bound, not a mechanism: word relations trained and tested with the *true* reference event.

``WordRelations`` (``grounding.models.relation``) has two jobs: find the reference event of a relational
query ("X before **Y**") and read the occurrence of X next to it. This diagnostic takes the first job away:
its first reference head becomes a distribution on the clips of the query's reference event, read from the
synthetic benchmark's replayed timeline and its tags sidecar (``relation``); queries without one get an
even distribution (no cue). What the model reaches then bounds what a better reference finder can give at
the same budget (docs/model.md, "Relational queries: the bound and the mechanism"). Synthetic benchmark
only, and never a training signal of the model itself.

    python -m grounding.studies.oracle_reference --config configs/synthetic.yaml --work-dir work_dirs/oracle \\
        train.epochs=6 train.num_threads=1 model.word_relations=true
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from grounding.errors import GroundingError, exit_cleanly_on_user_errors

Spans = list[tuple[float, float]]


def reference_distribution(spans: Spans, duration: float, num_clips: int, length: int) -> torch.Tensor:
    """(length,) mass spread evenly over the clips whose centre lies in one of ``spans`` (seconds); the
    clip nearest a span's centre when none does; even over the ``num_clips`` valid clips without spans."""
    out = torch.zeros(length)
    centres = (torch.arange(num_clips, dtype=torch.float64) + 0.5) * duration / num_clips
    for start, end in spans:
        inside = (centres >= start) & (centres < end)
        if not inside.any():
            inside[int(torch.argmin((centres - (start + end) / 2).abs()))] = True
        out[:num_clips][inside] = 1.0
    if not spans:
        out[:num_clips] = 1.0
    return out / out.sum()


def reference_spans(root: str | Path) -> dict[tuple[str, str], Spans]:
    """``(vid, query) -> spans of its reference event`` for every relational query of a synthetic benchmark
    folder in the Charades-STA layout (train and test)."""
    from grounding.synthetic.error_analysis import replayed_events
    from grounding.synthetic.shortcuts import read_split

    events = replayed_events(root)
    spans: dict[tuple[str, str], Spans] = {}
    for split in ("train", "test"):
        records, sides = read_split(Path(root), "charades", split)
        for rec in records:
            relation = sides.get(rec.qid, {}).get("relation")
            if relation:
                spans[(rec.vid, rec.query.strip())] = [(s, e) for name, s, e in events[rec.vid] if name == relation[1]]
    return spans


@contextmanager
def oracle_reference(root: str | Path) -> Iterator[None]:
    """While active, every CCMAN with word relations uses the true reference as its first head."""
    from grounding.models.ccman import CCMAN
    from grounding.models.relation import WordRelations

    table: dict[tuple[str, str], Spans] = {}
    current: dict[str, Any] = {}
    forward, phrase_grounding = CCMAN.forward, WordRelations.phrase_grounding

    def remember_batch(self: Any, batch: Any) -> Any:
        current["batch"] = batch
        return forward(self, batch)

    def true_first_head(self: Any, select: torch.Tensor, out: Any) -> torch.Tensor:
        if not table:
            table.update(reference_spans(root))  # the benchmark exists once training has prepared it
        batch, refs = current["batch"], phrase_grounding(self, select, out).clone()
        for i, (vid, query) in enumerate(zip(batch.vid, batch.query, strict=True)):
            n = int(batch.clip_mask[i].sum())
            spans = table.get((vid, query.strip()), [])
            refs[i, 0] = reference_distribution(spans, float(batch.duration[i]), n, refs.shape[-1]).to(refs)
        return refs

    with mock.patch.object(CCMAN, "forward", remember_batch), \
            mock.patch.object(WordRelations, "phrase_grounding", true_first_head):
        yield


@exit_cleanly_on_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    from grounding.config import load_config
    from grounding.engine.trainer import run_training
    from grounding.synthetic.prepare import prepare_data

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if not cfg.model.get("word_relations"):
        raise GroundingError("the bound replaces a word-relations head: add model.word_relations=true")
    prepare_data(cfg)
    with oracle_reference(cfg.data.root):
        run_training(cfg, args.work_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
