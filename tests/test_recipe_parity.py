"""Parity of qvh_slowfast_clip with the HERO extractor's own code on the real clip. It runs only where the
reference checkout and its packages are present (e.g. under /work/ref/venv/bin/python with
GROUNDING_HERO_REFERENCE set); it fetches nothing and skips elsewhere. tools/compare_recipe.py also
compares the backbone outputs (docs/features.md, "Recipes")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import SHARED

REFERENCE = Path(os.environ.get("GROUNDING_HERO_REFERENCE", "/work/ref/HERO_Video_Feature_Extractor"))
VIDEO = SHARED / "videos" / "charades_sample.mp4"


@pytest.mark.slow
def test_frames_times_and_inputs_equal_the_reference_pipeline():
    from grounding.extract.recipes.parity import compare_qvh_slowfast_clip, missing_requirements

    missing = missing_requirements(REFERENCE) + ([] if VIDEO.is_file() else [str(VIDEO)])
    if missing:
        pytest.skip(f"reference comparison needs {', '.join(missing)}")
    report = compare_qvh_slowfast_clip(VIDEO, REFERENCE, clips=0)
    for part in ("slowfast", "clip"):
        assert report[part]["frame_times_identical"] and report[part]["frames_uint8_equal"], part
        assert report[part]["clips"]["reference"] == report[part]["clips"]["ours"]
    assert report["slowfast"]["fast_input"]["equal"] and report["slowfast"]["slow_input"]["equal"]
    assert report["clip"]["input"]["equal"]
