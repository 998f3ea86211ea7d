"""A backfill of a fake-model index in its own process, so that a test can kill it with SIGKILL
(tests/test_search_crash.py): ``python -m tests.backfill_worker INDEX --videos N [--pause S] [--die-at K]``.

``--pause`` slows each video down (a reader then sees many commits); ``--die-at K`` makes the process
SIGKILL itself inside its K-th commit, after the new segment and the removal list are on disk but before
the manifest names them (the worst moment for a crash)."""

from __future__ import annotations

import argparse
import os
import signal
import time

import numpy as np

from grounding.search import index as index_module
from grounding.search import upgrade
from tests.index_fakes import FakeModel, library

NEW_MODEL_SEED = 1  # the old index is built with FakeModel(0): a genuinely different space


class SlowFeatures:
    def __init__(self, feats: dict[str, np.ndarray], pause: float) -> None:
        self.feats, self.pause = feats, pause

    def get(self, vid: str) -> np.ndarray:
        time.sleep(self.pause)
        return self.feats[vid]


def die_at_commit(k: int) -> None:
    """SIGKILL this process when the index writes its manifest for the ``k``-th time."""
    real, calls = index_module.write_json_atomic, {"n": 0}

    def write(obj, path) -> None:
        calls["n"] += 1
        if calls["n"] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        real(obj, path)

    index_module.write_json_atomic = write


def run(index_dir: str, videos: int, pause: float = 0.0) -> upgrade.BackfillReport:
    _, feats = library(videos)
    return upgrade.backfill(index_dir, FakeModel(NEW_MODEL_SEED), "random", chunk_videos=1,
                            features=SlowFeatures(feats, pause), progress=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index")
    parser.add_argument("--videos", type=int, required=True)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--die-at", type=int, default=0)
    args = parser.parse_args(argv)
    if args.die_at:
        die_at_commit(args.die_at)
    run(args.index, args.videos, args.pause)


if __name__ == "__main__":
    main()
