"""Figures for TensorBoard: predicted windows against the ground truth, and each stage's scores over time."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def query_figure(query: str, duration: float, gt: list[list[float]], predicted: list[list[float]],
                 curves: dict[str, np.ndarray]) -> plt.Figure:
    """Top: ground truth and the top predictions as bars on the timeline; bottom: per-clip curves."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 3.2), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]})
    for s, e in gt:
        top.barh(1, e - s, left=s, height=0.6, color="tab:green")
    for rank, w in enumerate(predicted[:3]):
        top.barh(0 - rank * 0.0, w[1] - w[0], left=w[0], height=0.6, color="tab:blue", alpha=1.0 - 0.3 * rank)
    top.set_yticks([0, 1], ["predicted (top 3)", "ground truth"])
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
    """Per-clip relevance / inside probability and pooling attention of every stage of a
    ``GroundingOutput`` for one query."""
    import torch

    curves = {}
    for name, stage in output.stages.items():
        curves[f"{name} inside"] = torch.sigmoid(stage.inside_logits[index, :num_clips].float()).cpu().numpy()
        if stage.attn is not None:
            attn = stage.attn[index, :num_clips].float().cpu().numpy()
            curves[f"{name} attention"] = attn / max(attn.max(), 1e-9)
    return curves
