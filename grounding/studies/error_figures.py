"""TensorBoard figures of diagnosed queries (``grounding.synthetic.error_analysis``): the video's events by
role (target, other occurrences of the named event, reference, look-alikes), the prediction, and each
stage's per-clip scores, pooling attention and received focus, so one sees *where* the cascade looked
when it picked the wrong occurrence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grounding.synthetic.error_analysis import Diagnosis, ShownEvent, shares_word


def event_roles(events: list[ShownEvent], side: dict[str, Any], gt: Sequence[float]) -> list[tuple[str, float, float, str]]:
    """Each event with its role for the query: ``target`` (the occurrence the ground truth marks),
    ``occurrence`` (another one of the named event), ``reference``, ``shares_word``, ``other``."""
    target_name = side.get("event", "")
    reference = (side.get("relation") or [None, None])[1]
    mine = [i for i, (n, _, _) in enumerate(events) if n == target_name]
    overlap = [max(0.0, min(events[i][2], gt[1]) - max(events[i][1], gt[0])) for i in mine]
    target = mine[overlap.index(max(overlap))] if mine else -1
    out = []
    for i, (name, start, end) in enumerate(events):
        role = ("target" if i == target else "occurrence" if name == target_name else "reference" if name == reference
                else "shares_word" if shares_word(name, target_name) or (reference and shares_word(name, reference))
                else "other")
        out.append((name, start, end, role))
    return out


def pick_for_figures(diagnoses: Sequence[Diagnosis], tag: str, count: int) -> list[Diagnosis]:
    """Up to ``count`` queries of ``tag``, taken in turn from each class (misses first), so every kind of
    error is shown."""
    by_class: dict[str, list[Diagnosis]] = {}
    for d in diagnoses:
        if tag in d.tags:
            by_class.setdefault(d.category, []).append(d)
    order = sorted(by_class, key=lambda c: (c == "hit", c))
    out: list[Diagnosis] = []
    while len(out) < count and any(by_class.values()):
        for name in order:
            if by_class[name] and len(out) < count:
                out.append(by_class[name].pop(0))
    return out


def _model_and_split(cfg: Any, checkpoint: str | Path, split: str) -> tuple[Any, Any]:
    """The checkpoint's model (eval mode, CPU) and the dataset of ``split`` with the checkpoint's vocabulary."""
    from grounding.data.build import DataBundle
    from grounding.inference import read_checkpoint
    from grounding.inference.loading import build_model_from_checkpoint

    state = read_checkpoint(checkpoint)
    data = DataBundle(cfg, text_state=state.text)
    return build_model_from_checkpoint(state, data.text, checkpoint).eval(), data.dataset(split)


def _run(model: Any, dataset: Any, rows: Sequence[int]) -> tuple[Any, Any]:
    from grounding.data.dataset import collate

    batch = collate([dataset[i] for i in rows])
    with torch.no_grad():
        return model(batch), batch


def draw_error_figures(cfg: Any, checkpoint: str | Path, split: str, chosen: Sequence[Diagnosis],
                       predictions: dict[str, list[list[float]]], events: dict[str, list[ShownEvent]],
                       sides: dict[Any, dict[str, Any]], tb_dir: str | Path) -> int:
    """Run the checkpoint's model on the ``chosen`` queries of ``split`` and write one figure each to the
    TensorBoard folder ``tb_dir`` (tag ``errors/<class>/<qid>``); returns how many were written."""
    from torch.utils.tensorboard import SummaryWriter

    from grounding.engine.visualize import query_figure, stage_curves

    model, dataset = _model_and_split(cfg, checkpoint, split)
    where = {str(r.qid): i for i, r in enumerate(dataset.records)}
    pairs = [(where[str(d.qid)], d) for d in chosen if str(d.qid) in where]
    if not pairs:
        return 0
    output, batch = _run(model, dataset, [row for row, _ in pairs])
    writer = SummaryWriter(str(tb_dir))
    try:
        for j, (row, diagnosis) in enumerate(pairs):
            rec = dataset.records[row]
            shown = event_roles(events[rec.vid], sides.get(rec.qid, {}), rec.windows[0])
            title = f"[{diagnosis.category}{' / ' + diagnosis.detail if diagnosis.detail else ''}] {rec.query}"
            fig = query_figure(title, float(rec.duration), rec.windows, predictions.get(str(rec.qid), []),
                               stage_curves(output, j, int(batch.num_clips[j])), events=shown)
            writer.add_figure(f"errors/{diagnosis.category}/{rec.qid}", fig, 0)
    finally:
        writer.close()
    return len(pairs)


def scores_by_role(cfg: Any, checkpoint: str | Path, split: str, qids: Sequence[Any],
                   events: dict[str, list[ShownEvent]], sides: dict[Any, dict[str, Any]],
                   batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Mean per-clip value of every curve a figure draws (each stage's inside probability, pooling attention
    scaled to a peak of 1, received focus, reference score) over the clips of each event role of the
    queries ``qids`` (a clip belongs to the event holding its centre; ``gap`` when none does):
    ``{curve: {role: mean}}``. Says, e.g., whether the focus tells the target from the other occurrences."""
    from grounding.engine.visualize import stage_curves

    model, dataset = _model_and_split(cfg, checkpoint, split)
    where = {str(r.qid): i for i, r in enumerate(dataset.records)}
    rows = [where[str(q)] for q in qids if str(q) in where]
    sums: dict[str, dict[str, list[float]]] = {}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        output, batch = _run(model, dataset, chunk)
        for j, row in enumerate(chunk):
            rec = dataset.records[row]
            n = int(batch.num_clips[j])
            centers = (torch.arange(n).double() + 0.5) * float(rec.duration) / n
            shown = event_roles(events[rec.vid], sides.get(rec.qid, {}), rec.windows[0])
            role = ["gap"] * n
            for _, s, e, r in shown:
                for k in torch.nonzero((centers >= s) & (centers < e)).flatten().tolist():
                    role[k] = r
            for name, values in stage_curves(output, j, n).items():
                per = sums.setdefault(name, {})
                for k in range(n):
                    per.setdefault(role[k], []).append(float(values[k]))
    return {name: {r: sum(v) / len(v) for r, v in per.items()} for name, per in sums.items()}


__all__ = ["draw_error_figures", "event_roles", "pick_for_figures", "scores_by_role"]
