"""Scale figures of moment search (``tools/bench_search.py``); a benchmark, not a test.

For each library size (videos; 26 proposal entries each, 128-d as the default CCMAN):

- **build**: writing the index (segments of 1,000 videos, commits, the final FAISS structure) from
  embeddings, in videos/s; the CCMAN video side's own throughput (default config, 1024-d features, 32
  clips) is measured once beside it, since at build time the two run one after the other;
- **query latency**: p50/p95 over single queries of stage 1 (sentence embedding + FAISS + grouping) and
  of stage 1 + 2 with N = 20 (CCMAN cascade on the 20 best videos, batched, and decoding); features for
  stage 2 come from memory (a real library reads 20 ``.npy`` files per query: a few ms more);
- **memory per video**: the FAISS structure plus the metadata arrays a searcher holds, over the videos;
- **recall** of the approximate structure: share of queries whose best entry is the exact search's.

Embeddings are synthetic (videos drawn around 2,000 topics, entries around their video), so FAISS lists
are as uneven as with real data; the model has random weights (the cost of a forward pass does not
depend on them). Timing: ``grounding.timing``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.timing import Stopwatch, percentile, summarise, time_calls

ENTRIES, DIM, CLIPS, FEATURE_DIM = 26, 128, 32, 1024


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_embeddings(videos: int, seed: int = 0) -> np.ndarray:
    """(videos, ENTRIES, DIM) unit vectors: topic + video + entry components."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.normal(size=(2000, DIM)))
    out = np.empty((videos, ENTRIES, DIM), dtype=np.float32)
    for first in range(0, videos, 10_000):
        n = min(10_000, videos - first)
        video = topics[rng.integers(0, len(topics), n)] + 0.6 * _unit(rng.normal(size=(n, DIM)))
        out[first:first + n] = _unit(video[:, None] + 0.5 * _unit(rng.normal(size=(n, ENTRIES, DIM))))
    return out


def bench_checkpoint(folder: Path) -> Path:
    """A default-size CCMAN checkpoint with random weights and a small vocabulary."""
    from grounding.config import load_config, packaged_config
    from grounding.inference.checkpoint import random_checkpoint
    from grounding.synthetic import vocabulary as bench_vocabulary

    cfg = load_config(packaged_config("charades_sta.yaml"), ["model.video_dim=1024"])
    return random_checkpoint(cfg, bench_vocabulary(), folder / "ccman.pt")


class MemoryFeatures:
    """Stage-2 features from memory: 64 random (CLIPS, FEATURE_DIM) arrays shared round-robin."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.arrays = rng.normal(size=(64, CLIPS, FEATURE_DIM)).astype(np.float32)

    def get(self, vid: str) -> np.ndarray:
        return self.arrays[hash(vid) % len(self.arrays)]


def _percentiles(times: list[float]) -> tuple[float, float]:
    return summarise(times)["median"], percentile(times, 0.95)


def video_side_throughput(model: Any, videos: int = 128) -> float:
    """Videos/s through CCMAN's video side (encoder + projection + 26 proposal pools), batches of 32."""
    from grounding.search.embed import Granularity

    feats = [np.random.default_rng(i).normal(size=(CLIPS, FEATURE_DIM)).astype(np.float32) for i in range(32)]
    times = time_calls(lambda: model.embed_videos(feats, [30.0] * 32, Granularity()), max(1, videos // 32))
    return 32 * len(times) / sum(times)


def bench_size(videos: int, folder: Path, model: Any, queries: int, kind: str, nprobe: int) -> dict[str, Any]:
    from grounding.search.index import MomentIndex
    from grounding.search.searcher import Searcher, SearchSettings

    emb = synthetic_embeddings(videos)
    spans = np.stack([np.arange(ENTRIES), np.arange(ENTRIES) + 4], 1).astype(np.float32)
    create = {"embed_dim": DIM, "index": {"kind": kind, "nprobe": nprobe}}
    with Stopwatch() as build, MomentIndex.writer(folder, create=create) as index:
        mid = index.register_model(model.fingerprint, model.fingerprint, "embedded", str(model.path))
        for first in range(0, videos, 1000):
            n = min(1000, videos - first)
            index.add([(f"v{i}", 30.0, 0) for i in range(first, first + n)], list(emb[first:first + n]),
                      [spans] * n, mid)
            index.commit()
        built = index.finalize()
    index = MomentIndex.open(folder)
    faiss_index = index.faiss()
    import faiss

    meta = index.meta()
    memory = faiss.serialize_index(faiss_index).nbytes + sum(a.nbytes for a in meta.values())
    searcher = Searcher(index, model, MemoryFeatures(), SearchSettings(top_k=100, rerank=20))
    rng = np.random.default_rng(2)
    targets = rng.integers(0, videos * ENTRIES, queries)
    flat = emb.reshape(-1, DIM)
    query_vectors = _unit(flat[targets] + 0.3 * _unit(rng.normal(size=(queries, DIM))))
    sentences = [f"a person opens the door {i}" for i in range(queries)]
    # recall of the approximate structure against exact search
    exact = np.argmax(query_vectors @ flat.T, axis=1) if videos * ENTRIES <= 3_000_000 else targets
    found = index.search(query_vectors, 1).rows[:, 0]
    recall = float((meta["ids"][found] == exact).mean())
    times1, times2 = [], []
    searcher.search(sentences[0], rerank=20)  # warm-up
    for i, sentence in enumerate(sentences):
        with Stopwatch() as stage1:
            searcher.model.embed_queries([sentence])  # the query side of a real search...
            searcher.stage1(query_vectors[i:i + 1], 20, 100)  # ...then stage 1 on a vector with a true target
        times1.append(stage1.seconds * 1000)
        if i < max(20, queries // 4):
            with Stopwatch() as both:
                searcher.search(sentence, rerank=20)
            times2.append(both.seconds * 1000)
    p50_1, p95_1 = _percentiles(times1)
    p50_2, p95_2 = _percentiles(times2)
    return {"videos": videos, "entries": videos * ENTRIES, "index": built, "build_videos_per_s": round(videos / build.seconds),
            "stage1_p50_ms": round(p50_1, 2), "stage1_p95_ms": round(p95_1, 2), "stage12_p50_ms": round(p50_2, 1),
            "stage12_p95_ms": round(p95_2, 1), "memory_per_video_kb": round(memory / videos / 1024, 2),
            "top1_recall_vs_exact": round(recall, 3)}


def run(sizes: list[int], kinds: list[str], queries: int = 200, nprobe: int = 16, threads: int = 1) -> list[dict[str, Any]]:
    import faiss

    from grounding.search.model import SearchModel

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = SearchModel.load(bench_checkpoint(Path(tmp)), "cpu")
        encode = video_side_throughput(model)
        for videos in sizes:
            for kind in kinds:
                row = bench_size(videos, Path(tmp) / f"idx-{videos}-{kind}", model, queries, kind, nprobe)
                row["ccman_video_side_videos_per_s"] = round(encode, 1)
                rows.append(row)
                import shutil

                shutil.rmtree(Path(tmp) / f"idx-{videos}-{kind}", ignore_errors=True)
    return rows


def recall_on_queries(index_dir: str | Path, sentences: list[str], checkpoint: str | Path | None = None,
                      nprobe: int = 16, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """Recall of the approximate structure against exact search for *real* query embeddings: the
    ``sentences`` embedded by the model of the index's space, searched among the index's live entries
    (the real entries its model embedded), exactly (inner product over every entry) and through the
    ``IVF<nlist>,SQ8`` structure that ``search.index.kind: ivf`` would build over them (same lists,
    training sample and ``nprobe`` as ``MomentIndex.finalize``). ``recall@1``: share of queries whose
    best entry is the exact one; ``recall@k``: share of the exact top ``k`` found in the approximate top
    ``k``; ``same_top_video``: share whose best entry's video is the exact one's."""
    import faiss

    from grounding.search.index import DEFAULT_INDEX, MomentIndex, ivf_lists
    from grounding.search.model import SearchModel

    index = MomentIndex.open(index_dir)
    if checkpoint is None:
        spaces = index.spaces()
        checkpoint = [m for m in index.models if m["space"] in spaces][-1]["checkpoint"]
    model = SearchModel.load(checkpoint, "cpu")
    queries = np.ascontiguousarray(model.embed_queries(sentences), dtype=np.float32)
    meta = index.meta()
    live = np.flatnonzero(meta["live"])
    entries = np.ascontiguousarray(index.embeddings(live))
    exact = np.argsort(-(queries @ entries.T), axis=1)[:, :k]  # (Q, k) positions in ``live``
    nlist = min(ivf_lists(len(live)), max(1, len(live) // 39))
    ivf = faiss.index_factory(index.embed_dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    ivf.train(entries[np.sort(rng.choice(len(live), min(len(live), DEFAULT_INDEX["train_size"]), replace=False))])
    ivf.add(entries)
    ivf.nprobe = nprobe
    _, approx = ivf.search(queries, k)  # (Q, k) positions in ``live``
    videos = meta["video"][live]
    return {"entries": len(live), "videos": len(index.videos()), "queries": len(sentences), "nlist": nlist,
            "nprobe": nprobe, "recall@1": round(float((approx[:, 0] == exact[:, 0]).mean()), 3),
            f"recall@{k}": round(float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact, strict=True)])), 3),
            "same_top_video": round(float((videos[approx[:, 0]] == videos[exact[:, 0]]).mean()), 3)}
