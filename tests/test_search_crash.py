"""The index under a crash with readers: a backfill into a genuinely different space (``FakeModel(1)`` over
an index of ``FakeModel(0)``) is killed with SIGKILL while a reader opens and searches the index again and
again. Every answer must come from one committed state (each video exactly once, the re-embedded videos a
prefix of the plan, the search equal to brute force over that state), the rerun must finish, and the
result must equal an uninterrupted backfill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from grounding.search.build import build_index
from grounding.search.embed import Granularity
from grounding.search.index import MomentIndex
from grounding.search.store import MANIFEST
from grounding.search.upgrade import PLAN
from tests import backfill_worker
from tests.conftest import REPO
from tests.index_fakes import DIM, FakeModel, library

pytestmark = pytest.mark.slow  # each test runs a backfill as a subprocess

VIDEOS, ENTRIES = 24, 42  # 16 clips of 32 s: 42 proposal entries per video
OLD, NEW = "fake0", f"fake{backfill_worker.NEW_MODEL_SEED}"


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, np.ndarray]]:
    """Every video's entries as each model embeds them: ``{fingerprint: {vid: (42, E)}}``."""
    videos, feats = library(VIDEOS)
    out = {}
    for seed in (0, backfill_worker.NEW_MODEL_SEED):
        model = FakeModel(seed)
        out[model.fingerprint] = {v.vid: model.embed_videos([feats[v.vid]], [v.duration], Granularity())[0][0]
                                  for v in videos}
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    videos, feats = library(VIDEOS)
    out = tmp_path_factory.mktemp("crash") / "base"
    build_index(FakeModel(0), out, videos, lambda v: feats[v], {"root": "."}, Granularity(), progress=False)
    return out


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory) -> tuple[Path, list[str]]:
    """The uninterrupted backfill, and its plan (the order videos are re-embedded in)."""
    out = tmp_path_factory.mktemp("crash") / "reference"
    shutil.copytree(base, out)
    backfill_worker.run(str(out), VIDEOS)
    return out, json.loads((out / PLAN).read_text())["videos"]


QUERIES = np.random.default_rng(7).normal(size=(6, DIM)).astype(np.float32)
QUERIES /= np.linalg.norm(QUERIES, axis=1, keepdims=True)


def read_committed(folder: Path, plan: list[str], expected: dict) -> tuple[int, int]:
    """Open and search the index as a reader does; assert it is one committed state; return its generation
    and how many videos of the plan it holds re-embedded."""
    index = MomentIndex.open(folder)
    meta, table = index.meta(), index.video_table
    live = np.flatnonzero(meta["live"])
    vids = np.array([table[v][0] for v in meta["video"][live]])
    models = np.array([index.models[m]["fingerprint"] for m in meta["model"][live]])
    assert Counter(vids.tolist()) == {f"v{i:03d}": ENTRIES for i in range(VIDEOS)}  # each video exactly once
    new = []
    for vid in np.unique(vids):
        mine = vids == vid
        (model,) = set(models[mine])  # a video is all old or all new, never half
        np.testing.assert_allclose(index.embeddings(live[mine]), expected[model][vid], atol=1e-6)
        if model == NEW:
            new.append(vid)
    done = len(new)
    assert set(new) == set(plan[:done])  # a commit re-embeds the next video of the plan, nothing else
    hits = index.search(QUERIES, 10)
    stored = index.embeddings(live)
    best = np.sort(stored @ QUERIES.T, axis=0)[::-1][:10].T
    np.testing.assert_allclose(hits.scores, best, atol=1e-5)  # the search is over exactly this state
    assert meta["live"][hits.rows].all()
    np.testing.assert_allclose(np.einsum("qke,qe->qk", index.embeddings(hits.rows.ravel()).reshape(6, 10, DIM), QUERIES),
                               hits.scores, atol=1e-5)  # each hit's row is the entry that scored
    return int(index.manifest["generation"]), done


def assert_same_index(got: Path, want: Path) -> None:
    """The same live entries (video, model, vector, span), the same answers, and no file a manifest
    does not name."""
    a, b = MomentIndex.open(got), MomentIndex.open(want)

    def content(index: MomentIndex) -> dict:
        meta, table = index.meta(), index.video_table
        live = np.flatnonzero(meta["live"])
        out: dict = {}
        for row, emb in zip(live, index.embeddings(live), strict=True):
            key = (table[meta["video"][row]][0], index.models[meta["model"][row]]["fingerprint"])
            out.setdefault(key, []).append(np.concatenate([emb, meta["spans"][row]]))
        return {k: np.stack(v) for k, v in out.items()}

    ca, cb = content(a), content(b)
    assert sorted(ca) == sorted(cb) and all(k[1] == NEW for k in ca)
    for key in ca:
        np.testing.assert_allclose(ca[key], cb[key], atol=1e-6)
    assert [(m["fingerprint"], m["kind"]) for m in a.models] == [(m["fingerprint"], m["kind"]) for m in b.models]
    ha, hb = a.search(QUERIES, 20), b.search(QUERIES, 20)
    np.testing.assert_allclose(ha.scores, hb.scores, atol=1e-6)
    assert (a.manifest["faiss"]["kind"], len(a.manifest["faiss"]["segments"])) == \
        (b.manifest["faiss"]["kind"], len(a.manifest["segments"]))  # the search structure covers every segment
    named = {MANIFEST, ".lock", PLAN, "segments", a.manifest["removed"], a.manifest["faiss"]["file"]}
    assert {p.name for p in got.iterdir()} == named
    assert {p.name for p in (got / "segments").iterdir()} == set(a.manifest["segments"])


def worker(index: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.backfill_worker", str(index), "--videos", str(VIDEOS), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_while(running, folder: Path, plan: list[str], expected: dict, kill_at: int | None = None,
               timeout: float = 120) -> list[tuple[int, int]]:
    """Read continuously while ``running()`` (with ``kill_at``: until that many videos are done)."""
    seen, deadline = [], time.monotonic() + timeout
    while running():
        assert time.monotonic() < deadline, "the backfill did not finish in time"
        seen.append(read_committed(folder, plan, expected))
        if kill_at is not None and seen[-1][1] >= kill_at:
            break
        time.sleep(0.002)  # leave the writer a share of the CPU
    return seen


def test_a_reader_sees_only_committed_states_while_a_backfill_is_killed_and_rerun(base, reference, expected,
                                                                                 tmp_path):
    ref, plan = reference
    work = tmp_path / "idx"
    shutil.copytree(base, work)
    proc = worker(work, "--pause", "0.1")
    try:
        seen = read_while(lambda: proc.poll() is None, work, plan, expected, kill_at=VIDEOS // 4)
    finally:
        proc.send_signal(signal.SIGKILL)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == -signal.SIGKILL, f"the backfill ended before it could be killed: {output}"
    crashed = read_committed(work, plan, expected)[1]
    assert VIDEOS // 4 <= crashed < VIDEOS  # killed mid-way; the reader still answers
    rerun = threading.Thread(target=backfill_worker.run, args=(str(work), VIDEOS, 0.02))
    rerun.start()
    seen += read_while(rerun.is_alive, work, plan, expected)
    rerun.join()
    assert read_committed(work, plan, expected)[1] == VIDEOS
    done = [d for _, d in seen]
    assert done == sorted(done) and len(set(done)) > VIDEOS // 4  # the reader saw many commits, never one undone
    assert_same_index(work, ref)


def test_a_writer_killed_between_its_segment_and_its_manifest_leaves_a_rerunnable_index(base, reference, expected,
                                                                                    tmp_path):
    """SIGKILL inside the 4th commit: the segment and removal list are on disk, the manifest does not name
    them. Readers keep the 3 committed videos; the rerun must not trip over the dead writer's segment."""
    ref, plan = reference
    work = tmp_path / "idx"
    shutil.copytree(base, work)
    proc = worker(work, "--die-at", "4")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == -signal.SIGKILL, output
    manifest = json.loads((work / MANIFEST).read_text())
    assert len(list((work / "segments").iterdir())) == len(manifest["segments"]) + 1  # the orphan segment
    assert read_committed(work, plan, expected)[1] == 3
    backfill_worker.run(str(work), VIDEOS)
    assert read_committed(work, plan, expected)[1] == VIDEOS
    assert_same_index(work, ref)
