"""The real Charades video in ../shared/videos (about 31 s at 14.985 fps) extracts to the expected clips."""

from pathlib import Path

import numpy as np
import pytest

from grounding.data.features import NpyFolderStore
from grounding.extract.sampling import count_clips

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "videos" / "charades_sample.mp4"

pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"{SAMPLE} is not here (the shared folder is absent)")


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    pytest.importorskip("decord")
    from grounding.extract import synthetic

    return synthetic.save_random_clip(tmp_path_factory.mktemp("clip"))


@pytest.mark.parametrize(("clip_len", "rule", "clips"), [(1.0, "ceil", 31), (1.0, "floor", 30), (2.0, "ceil", 16)])
def test_charades_sample_extracts_to_the_expected_clip_count(clip_model, tmp_path, clip_len, rule, clips):
    from grounding.data.manifest import read_manifest
    from grounding.extract.pipeline import ExtractConfig, extract_videos

    listing = tmp_path / "videos.txt"
    listing.write_text(f"{SAMPLE}\n")
    cfg = ExtractConfig(videos=listing, out=tmp_path / "out", backbone="clip", model=clip_model, clip_len=clip_len,
                        clip_count=rule, num_workers=0, progress=False)
    summary = extract_videos(cfg)
    assert summary.exit_code == 0
    record = read_manifest(tmp_path / "out")["charades_sample"]
    assert record["num_frames"] == 460 and record["fps"] == pytest.approx(15000 / 1001, rel=1e-5)
    assert record["duration"] == pytest.approx(30.697, abs=1e-3)
    assert count_clips(record["duration"], clip_len, rule) == clips == record["clips"]
    feats = NpyFolderStore(tmp_path / "out").load("charades_sample")
    assert feats.shape == (clips, 16) and np.isfinite(feats).all()
    assert np.abs(np.diff(feats, axis=0)).sum() > 0  # real content: clips differ
