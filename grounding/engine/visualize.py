"""Figures for TensorBoard: predicted windows against the ground truth, and each stage's scores over time."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# how an event of the video is drawn in a figure, by its role for the query (error analyses)
EVENT_COLORS = {"target": "tab:green", "occurrence": "tab:olive", "reference": "tab:purple",
                "shares_word": "tab:orange", "other": "0.75"}
ShownEvent = tuple[str, float, float, str]  # (name, start s, end s, role: a key of EVENT_COLORS)


def query_figure(query: str, duration: float, gt: list[list[float]], predicted: list[list[float]],
                 curves: dict[str, np.ndarray], events: list[ShownEvent] | None = None) -> plt.Figure:
    """Top: ground truth and the top predictions as bars on the timeline (and, when given, every event
    of the video, coloured by its role for the query); bottom: per-clip curves."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7 if events is None else 10, 3.2 if events is None else 3.8),
                                      sharex=True, gridspec_kw={"height_ratios": [1 if events is None else 1.5, 1.4]})
    for s, e in gt:
        top.barh(1, e - s, left=s, height=0.6, color="tab:green")
    for rank, w in enumerate(predicted[:3]):
        top.barh(0 - rank * 0.0, w[1] - w[0], left=w[0], height=0.6, color="tab:blue", alpha=1.0 - 0.3 * rank)
    rows = ["predicted (top 3)", "ground truth"]
    for name, start, end, role in events or []:
        top.barh(2, end - start, left=start, height=0.6, color=EVENT_COLORS.get(role, "0.75"))
        if role != "other":
            top.text((start + end) / 2, 2.45, name, fontsize=6, ha="center", va="bottom", rotation=20)
    if events is not None:
        rows.append("events")
    top.set_yticks(list(range(len(rows))), rows)
    top.set_ylim(-0.5, len(rows) - 0.2 + (0.6 if events is not None else 0.0))
    top.set_title(query if len(query) < 90 else query[:87] + "...", fontsize=9)
    for name, values in curves.items():
        centers = (np.arange(len(values)) + 0.5) * duration / max(len(values), 1)
        bottom.plot(centers, values, label=name)
    bottom.set_xlim(0, duration)
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("seconds")
    bottom.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def stage_curves(output: Any, index: int, num_clips: int) -> dict[str, np.ndarray]:
    """Per-clip relevance / inside probability, pooling attention (scaled to a peak of 1) and received
    focus of every stage of a ``GroundingOutput`` for one query."""
    import torch

    curves = {}
    for name, stage in output.stages.items():
        curves[f"{name} inside"] = torch.sigmoid(stage.inside_logits[index, :num_clips].float()).cpu().numpy()
        if stage.attn is not None:
            attn = stage.attn[index, :num_clips].float().cpu().numpy()
            curves[f"{name} attention"] = attn / max(attn.max(), 1e-9)
        if stage.focus is not None:  # where the previous stage told this one to look
            curves[f"{name} focus"] = stage.focus[index, :num_clips].float().cpu().numpy()
        if stage.reference is not None:  # where the relation cue put the sentence's reference event
            reference = stage.reference[index, :num_clips].float().cpu().numpy()
            curves[f"{name} reference"] = reference / max(reference.max(), 1e-9)
    return curves
