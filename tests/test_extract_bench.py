"""tools/bench_extract.py's measurement runs end to end on a tiny workload."""

import pytest

pytest.importorskip("decord")
pytest.importorskip("imageio_ffmpeg")

from grounding.extract.bench import run_benchmark  # noqa: E402


def test_benchmark_reports_videos_and_clips_per_second(tmp_path):
    rows = run_benchmark(["tiny"], num_videos=2, seconds=3.0, fps="25", size=(64, 48), clip_len=1.0,
                         num_workers=0, work_dir=tmp_path)
    assert [row.name for row in rows] == ["decode@224", "tiny"]
    for row in rows:
        assert (row.videos, row.clips) == (2, 6) and row.seconds > 0
        assert "videos/s" in row.line() and "clips/s" in row.line()
        assert row.peak_memory_mb > 50 and "MB" in row.line()  # this process's resident set, in MB
