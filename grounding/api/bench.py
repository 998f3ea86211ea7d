"""Speed figures of the grounding API (``tools/bench_ground.py``); benchmarks, not tests.

- ``predict``: a default-size CCMAN (configs/models/ccman.yaml, 512-d CLIP-like input, 32 model clips)
  on one 30 s video already encoded (15 two-second clips), for 1 and 100 queries; and the Charades-STA
  shape (configs/charades_sta.yaml: 1024-d I3D-like input, 32 model clips, a 30 s video of 30 clips);
- end to end from a file: decode + a CLIP ViT-B/32-sized random image tower + ground, per video minute;
- a 2-hour video's features (3600 clips of 2 s): ground one query, time and peak RSS.
Random weights: the cost of a forward pass does not depend on what the weights are. Timing and
memory: ``grounding.timing``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.timing import PeakMemory, Stopwatch, in_ms, time_calls


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    return in_ms(time_calls(fn, repeat, warmup=5))["median"]  # first calls fill caches (allocator, oneDNN)


def default_grounder(folder: Path, backbone_dir: Path | None = None, clip_len: float = 2.0):
    """A Grounder on a random default-size CCMAN checkpoint whose features are 512-d CLIP ones."""
    from grounding.api.grounder import Grounder
    from grounding.config import load_config, packaged_config
    from grounding.inference.checkpoint import random_checkpoint
    from grounding.synthetic import vocabulary as bench_vocabulary

    cfg = load_config(packaged_config("qvhighlights.yaml"),
                      ["model.video_dim=512", "data.num_clips=32", "data.max_clips=null"])
    store = {"backbone": "clip", "model": str(backbone_dir or folder / "clip"), "clip_len": clip_len,
             "frames_per_clip": 1, "clip_count": "ceil", "feature_dim": 512, "max_duration": 150.0}
    provenance = {"l2_normalize": True, "num_clips": 32, "max_clips": None, "video_dim": 512, "stores": [store]}
    random_checkpoint(cfg, bench_vocabulary(), folder / "ccman.pt", provenance)
    return Grounder.from_pretrained(folder / "ccman.pt", device="cpu")


def charades_grounder(folder: Path):
    """A Grounder on a random CCMAN checkpoint of ``configs/charades_sta.yaml`` (precomputed I3D-shaped features)."""
    from grounding.api.grounder import Grounder
    from grounding.config import load_config, packaged_config
    from grounding.inference.checkpoint import random_checkpoint
    from grounding.synthetic import vocabulary as bench_vocabulary

    cfg = load_config(packaged_config("charades_sta.yaml"), [])
    random_checkpoint(cfg, bench_vocabulary(), folder / "charades.pt", {"num_clips": cfg.data.num_clips, "stores": []})
    return Grounder.from_pretrained(folder / "charades.pt", device="cpu")


def bench_predict(repeat: int = 20) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    queries = [f"a person opens the door number {i}" for i in range(100)]
    with tempfile.TemporaryDirectory() as tmp:
        g = default_grounder(Path(tmp))
        video = g.video_from_features(rng.normal(size=(15, 512)).astype(np.float32), 30.0,
                                      provenance=g.feature_recipe())
        out = {"predict_1_query_ms": round(_median_ms(lambda: g.predict(queries[0], video), repeat), 2),
               "predict_100_queries_ms": round(_median_ms(lambda: g.predict(queries, video), max(3, repeat // 4)), 1)}
        charades = charades_grounder(Path(tmp))
        video = charades.video_from_features(rng.normal(size=(30, 1024)).astype(np.float32), 30.0)
        out["charades_predict_1_query_ms"] = round(_median_ms(lambda: charades.predict(queries[0], video), repeat * 5), 2)
    return out


def bench_end_to_end(minutes: float = 1.0) -> dict[str, Any]:
    from grounding.extract.synthetic import make_video, save_random_clip

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        save_random_clip(tmp_path / "clip", hidden_size=768, num_layers=12, num_heads=12, image_size=224,
                         patch_size=32, projection_dim=512)
        g = default_grounder(tmp_path)
        video_path = make_video(tmp_path / "video.mp4", int(minutes * 60 * 30), fps=30, size=(480, 270))
        g.encode_video(video_path)  # warm-up (model load)
        with Stopwatch() as encode:
            video = g.encode_video(video_path)
        with Stopwatch() as ground:
            g.predict("a person opens the door", video)
    return {"e2e_video_minutes": minutes, "e2e_decode_encode_s_per_video_minute": round(encode.seconds / minutes, 2),
            "e2e_ground_ms": round(ground.seconds * 1000, 1),
            "e2e_total_s_per_video_minute": round((encode.seconds + ground.seconds) / minutes, 2)}


def bench_two_hours() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        g = default_grounder(Path(tmp))
        with PeakMemory("cpu") as memory:
            feats = np.random.default_rng(0).normal(size=(3600, 512)).astype(np.float32)
            video = g.video_from_features(feats, 7200.0, provenance=g.feature_recipe())
            with Stopwatch() as watch:
                pred = g.predict("a person opens the door", video)
    before = None if memory.added_mb is None else round(memory.peak_mb - memory.added_mb)
    return {"two_hours_ground_s": round(watch.seconds, 2),
            "two_hours_windows": len(video.cache[next(iter(video.cache))].ranges),
            "two_hours_peak_rss_mb": round(memory.peak_mb), "rss_before_mb": before,
            "two_hours_top_window": pred["pred_relevant_windows"][0]}


def run(quick: bool = False, threads: int = 1) -> dict[str, Any]:
    torch.set_num_threads(threads)
    out: dict[str, Any] = {"threads": threads, "torch": torch.__version__}
    out.update(bench_predict(5 if quick else 20))
    out.update(bench_two_hours())
    out.update(bench_end_to_end(0.25 if quick else 1.0))
    return out


def zero_shot_on_synthetic(test_videos: int = 300, feature_dim: int = 1024, seed: int = 0) -> dict[str, Any]:
    """How the zero-shot window search does on the synthetic benchmark's test split (the default spec of
    ``configs/synthetic.yaml``) with an *oracle* text embedding: the query's action + object vectors,
    i.e. a perfectly aligned text-video space. Compares the scan statistic (several ``tau``) with the
    simplest search (the best clip, grown while its neighbours are above the video's mean)."""
    from grounding.api.zero_shot import search_windows
    from grounding.data.annotations import read_charades_sta
    from grounding.eval.metrics import evaluate_single_window
    from grounding.synthetic import ACTIONS, OBJECTS, SyntheticSpec, World, write_synthetic

    spec = SyntheticSpec(train_videos=1000, test_videos=test_videos, feature_dim=feature_dim, seed=seed)
    gen = World(spec)  # same seed: the same action/object vectors as the written benchmark
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic(root, spec, progress=False)
        records = read_charades_sta(root / "annotations/charades_sta_test.txt", root / "annotations/Charades_v1_test.csv")
        feats = {r.vid: np.load(root / "features" / f"{r.vid}.npy") for r in records}

    def oracle(query: str) -> np.ndarray:
        text = query.lower()
        obj = min((text.find(o), i) for i, o in enumerate(OBJECTS) if f" {o}" in text)[1]
        act = min((text.find(form), i) for i, forms in enumerate(ACTIONS) for form in forms if form in text)[1]
        return gen.action_vecs[act] + gen.object_vecs[obj]

    def grow_best(sim: np.ndarray, duration: float) -> list[list[float]]:
        z = sim - sim.mean()
        i = j = int(np.argmax(z))
        while i > 0 and z[i - 1] > 0:
            i -= 1
        while j < len(z) - 1 and z[j + 1] > 0:
            j += 1
        return [[float(i), float(min(j + 1, duration)), 1.0]]

    methods = {f"scan tau={t}": (lambda s, d, t=t: search_windows(s, 1.0, d, 5, tau=t)) for t in (0.0, 0.25, 0.5, 1.0)}
    methods["best clip, grown"] = grow_best
    out: dict[str, Any] = {"queries": len(records)}
    for name, search in methods.items():
        preds = []
        for r in records:
            clips = feats[r.vid] / np.linalg.norm(feats[r.vid], axis=1, keepdims=True)
            text = oracle(r.query)
            sim = clips @ (text / np.linalg.norm(text))
            preds.append({"qid": r.qid, "pred_relevant_windows": search(sim, float(r.duration))})
        metrics = evaluate_single_window(preds, records)
        out[name] = {k: round(float(metrics[k]), 2) for k in ("R1@0.5", "R1@0.7", "R5@0.5", "mIoU")}
    return out
