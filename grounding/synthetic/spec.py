"""What a synthetic benchmark is made of: its size, difficulty, seed and file layout, checked once.

The spec is also the folder's identity: ``synthetic_spec.json`` records ``SyntheticSpec.marker()``, and
a folder whose marker matches is reused instead of rewritten (``grounding.synthetic.benchmark``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from grounding.errors import GroundingError

LAYOUTS = ("charades", "qvhighlights", "long")
# Per-layout values of the fields a spec leaves at None: Charades-STA-like short videos at one clip per
# second; QVHighlights-like 30-150 s videos at one feature per 2 s clip (the QVHighlights clip, fixed);
# TACoS / ActivityNet-like long videos of 128-256 one-second clips with many short events.
LAYOUT_DEFAULTS: dict[str, dict[str, float | int]] = {
    "charades": {"train_videos": 1000, "test_videos": 300, "clips_per_second": 1.0,
                 "min_duration": 24.0, "max_duration": 40.0},
    "qvhighlights": {"train_videos": 500, "test_videos": 150, "clips_per_second": 0.5,
                     "min_duration": 30.0, "max_duration": 150.0},
    "long": {"train_videos": 300, "test_videos": 100, "clips_per_second": 1.0,
             "min_duration": 128.0, "max_duration": 256.0},
}
# Fields that only some layouts read are left out of the other layouts' ``synthetic_spec.json`` (and
# ``layout`` out of the Charades one), so a Charades-layout folder written before the QVHighlights
# layout existed is still recognised instead of being rewritten.
LAYOUT_ONLY_FIELDS: dict[str, tuple[str, ...]] = {
    "layout": ("qvhighlights", "long"), "repeat_fraction": ("qvhighlights",), "annotator_noise": ("qvhighlights",),
    "temporal_fraction": ("charades",), "relational_blocks": ("long",), "min_moment": ("long",),
    "max_moment": ("long",)}


@dataclass
class SyntheticSpec:
    """Size, difficulty and seed of the synthetic benchmark (all written to ``synthetic_spec.json``).

    ``layout`` picks the files: ``charades`` (Charades-STA txt + csv, splits train/test; see
    ``grounding.synthetic.charades``) or ``qvhighlights`` (QVHighlights JSONL with saliency scores,
    splits train/val; ``test_videos`` is then the number of val videos; see
    ``grounding.synthetic.qvhighlights``) or ``long`` (ActivityNet Captions JSON, splits train/test, 128-256 s
    videos with many short events; see ``grounding.synthetic.long``). Fields left at None take the
    layout's value from ``LAYOUT_DEFAULTS``.
    """

    train_videos: int | None = None
    test_videos: int | None = None
    feature_dim: int = 1024
    clips_per_second: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    noise: float = 1.0  # per-clip noise std, relative to unit-variance action/object coordinates
    signal: float = 0.25  # scale of action/object vectors (per coordinate)
    background: float = 1.0  # scale of the per-video constant background
    boundary_fuzz: float = 1.0  # seconds over which an event fades in and out
    label_jitter: float = 0.4  # std (s) of annotation noise on the given boundaries
    style: float = 0.5  # per-video variation of how an action looks, relative to the action vector
    interaction: float = 0.75  # scale of the action-object interaction term (elementwise product)
    temporal_fraction: float = 0.6  # share of videos with a repeated event ("X before/after Y"; charades)
    heldout_fraction: float = 0.15  # share of action-object combinations never seen in training
    seed: int = 0
    layout: str = "charades"
    repeat_fraction: float = 0.35  # qvhighlights: share of queries whose event happens 2 or 3 times
    annotator_noise: float = 0.6  # qvhighlights: std of each annotator's per-clip saliency noise (score units)
    relational_blocks: int = 2  # long: "X before/after Y" groups per video (X repeated, Y once, a decoy of Y)
    min_moment: float = 0.02  # long: shortest event, as a fraction of the video
    max_moment: float = 0.10  # long: longest event, as a fraction of the video

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise GroundingError(f"synthetic layout '{self.layout}' is unknown; use one of {', '.join(LAYOUTS)}")
        for name, value in LAYOUT_DEFAULTS[self.layout].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.layout == "qvhighlights" and self.clips_per_second != 0.5:
            raise GroundingError(f"the qvhighlights layout has one feature per 2 s clip (clips_per_second 0.5), "
                                 f"not {self.clips_per_second}; leave clips_per_second unset")
        if not 0 < self.min_moment <= self.max_moment <= 0.5:
            raise GroundingError(f"synthetic min_moment {self.min_moment} and max_moment {self.max_moment} must satisfy "
                                 "0 < min_moment <= max_moment <= 0.5 (fractions of the video)")
        if self.min_duration > self.max_duration:  # type: ignore[operator]
            raise GroundingError(f"synthetic min_duration {self.min_duration} exceeds max_duration {self.max_duration}")
        if self.layout == "qvhighlights" and not (
                max(2, math.ceil(self.min_duration)) <= 2 * math.floor(self.max_duration / 2)):  # type: ignore[arg-type, operator]
            raise GroundingError(f"the qvhighlights layout needs an even duration of at least 2 s between min_duration "
                                 f"{self.min_duration} and max_duration {self.max_duration}; widen the range")

    def marker(self) -> dict[str, object]:
        """The fields that shape this layout's files (what ``synthetic_spec.json`` records)."""
        return {k: v for k, v in asdict(self).items() if self.layout in LAYOUT_ONLY_FIELDS.get(k, (self.layout,))}

    def novel_videos(self) -> int:
        """How many of the held-out split's videos are about held-out combinations: a quarter of them,
        none when no combination is held out."""
        return int(round(self.test_videos * 0.25)) if self.heldout_fraction > 0 else 0  # type: ignore[operator]


__all__ = ["LAYOUTS", "LAYOUT_DEFAULTS", "LAYOUT_ONLY_FIELDS", "SyntheticSpec"]
