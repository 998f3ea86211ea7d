"""Parity of our Moment-DETR / QD-DETR ports with the authors' code, trained on identical inputs.

Why: the official evaluator is matched to 0.01, but a model trained by this engine (data loading,
clip-time conversions, training loop, decoding) had never been compared with the same model trained by
its authors' code. Here both train on the same files with the same epochs, seeds and batch, and both
prediction files are scored by the same evaluator.

The data is written once in both formats: either ``two_event`` (``write_two_event_set``: a small
QVHighlights-layout set both models learn within minutes on a CPU) or ``synthetic_qvh`` (the built-in
synthetic QVHighlights layout, which neither model learns moments on within minutes); unit-norm clip features as
``<vid>.npy`` (ours) and ``<vid>.npz`` key ``features`` (theirs), unit-norm per-token text features as
``<qid>.npz`` key ``features`` (ours, ``text.input=precomputed``) and ``qid<qid>.npz`` key
``last_hidden_state`` (theirs); both sides' own L2 normalisation is then the identity. The originals run
from a folder the user names (nothing is fetched) with ``parity_shim/sitecustomize.py`` first on their
PYTHONPATH (``.cuda()`` a no-op; see that file) and ``original_deps`` (their scipy, scikit-learn and tabulate)
after it; where a folder is absent that side is skipped.
Evaluated: the final epoch on both sides (ours ``train.eval_every=epochs``, so best = last; theirs the
last evaluation's file, ``latest_*_preds.jsonl`` or, when it was their best so far, ``best_*``; they
evaluate every 5 epochs, so ``epochs`` must be a multiple of 5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grounding.errors import GroundingError

SHIM = Path(__file__).resolve().parent / "parity_shim"
REPO = Path(__file__).resolve().parents[2]
ENTRY = {"moment_detr": "moment_detr/train.py", "qd_detr": "qd_detr/train.py"}  # the authors' code (ccman: none)
CONFIG = {"moment_detr": "synthetic_qvh_moment_detr.yaml", "qd_detr": "synthetic_qvh_qd_detr.yaml",
          "ccman": "synthetic_qvh.yaml"}
METRICS = ("MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "HL-min-VeryGood-mAP")


@dataclass
class ParitySettings:
    """What both sides share. ``model`` settings are passed to both (the authors' flag names on their side)."""

    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-3
    hidden_dim: int = 32
    ffn_dim: int = 64
    heads: int = 4
    input_dropout: float = 0.0
    dropout: float = 0.0
    threads: int = 1
    original_deps: list[str] = field(default_factory=list)  # folders with the originals' scipy / scikit-learn
    data: str = "two_event"  # two_event | synthetic_qvh
    our_overrides: list[str] = field(default_factory=list)  # extra key=value for our side (e.g. loss.saliency_margin.ties=keep)
    synthetic: dict[str, Any] = field(default_factory=lambda: {"train_videos": 100, "test_videos": 50, "seed": 0,
                                                               "clips": 40, "max_len": 17})


def write_two_event_set(root: str | Path, train_videos: int, test_videos: int, seed: int = 0, dim: int = 16,
                        clips: int = 16, min_len: int = 2, max_len: int = 5, actions: int = 4) -> None:
    """A QVHighlights-layout set a DETR learns in a few hundred steps: every video (``clips`` 2 s clips of
    noise) holds two events of different actions at random places, ``min_len``..``max_len`` clips long; each
    query names one action and its per-token text features (``text/<qid>.npz``, key ``features``) carry that
    action's vector between two filler tokens. Where the event is depends on the video and which one on
    the text, so no video-free predictor finds it. Writes ``features/<vid>.npy``, ``text/`` and
    ``annotations/highlight_{train,val}_release.jsonl``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    vectors = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:actions] * 2.0
    fillers = rng.normal(size=(2, dim))
    for folder in ("features", "text", "annotations"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    qid = 0
    for split, count in (("train", train_videos), ("val", test_videos)):
        lines = []
        for v in range(count):
            vid = f"{split}{v:04d}"
            feats = rng.normal(0, 0.5, size=(clips, dim)).astype(np.float32)
            pair, lengths = rng.choice(actions, 2, replace=False), rng.integers(min_len, max_len + 1, size=2)
            first = int(rng.integers(0, clips - lengths.sum() + 1))
            second = int(rng.integers(first + lengths[0], clips - lengths[1] + 1))
            for act, length, start in zip(pair, lengths.tolist(), (first, second), strict=True):
                feats[start:start + length] += vectors[act]
                ids = list(range(start, start + length))
                lines.append({"qid": qid, "query": f"a person does action {act}.", "duration": 2 * clips, "vid": vid,
                              "relevant_clip_ids": ids, "saliency_scores": [[4, 4, 4]] * length,
                              "relevant_windows": [[2 * start, 2 * (start + length)]]})
                tokens = np.stack([fillers[0], vectors[act] / 2.0, fillers[1]]).astype(np.float32)
                np.savez(root / "text" / f"{qid}.npz", features=tokens)
                qid += 1
            np.save(root / "features" / f"{vid}.npy", feats)
        (root / "annotations" / f"highlight_{split}_release.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def write_parity_data(out: str | Path, kind: str, synthetic: dict[str, Any]) -> Path:
    """Write the shared dataset under ``out`` (reused when written with the same settings): ``synthetic/``
    (annotations, raw features), ``ours/{video,text}`` and ``theirs/{video,text}``. Returns ``out``.

    The authors' evaluator fails when a length range (short <= 10 s, middle, long > 30 s) has no window in
    the val split, so that is checked here (make the two-event set's ``clips`` / ``max_len`` larger)."""
    from grounding.synthetic import SyntheticSpec, write_synthetic
    from grounding.synthetic.text_features import write_text_features

    out = Path(out)
    root = out / "synthetic"
    stamp = json.dumps({"kind": kind, **synthetic}, sort_keys=True)
    done = out / "ours" / "DONE"
    if done.is_file() and done.read_text() == stamp:
        return out
    if kind == "two_event":
        write_two_event_set(root, **synthetic)
        raw_text = root / "text"
    elif kind == "synthetic_qvh":
        write_synthetic(root, SyntheticSpec(layout="qvhighlights", **synthetic), progress=False)
        raw_text = write_text_features(root, out / "raw_text")
    else:
        raise GroundingError(f"parity data '{kind}' is unknown; use two_event or synthetic_qvh")
    lengths = [e - s for line in (root / "annotations" / "highlight_val_release.jsonl").read_text().splitlines()
               for s, e in json.loads(line)["relevant_windows"]]
    if not (any(x <= 10 for x in lengths) and any(10 < x <= 30 for x in lengths) and any(x > 30 for x in lengths)):
        raise GroundingError("the val split lacks windows of some length range (<= 10 s, 10-30 s, > 30 s), on which "
                             "the authors' evaluator fails; use more val videos or longer videos / events")
    for side in ("ours", "theirs"):
        for kind in ("video", "text"):
            (out / side / kind).mkdir(parents=True, exist_ok=True)
    for path in sorted((root / "features").glob("*.npy")):
        feats = _unit(np.load(path))
        np.save(out / "ours" / "video" / path.name, feats)
        np.savez(out / "theirs" / "video" / f"{path.stem}.npz", features=feats)
    for path in sorted(raw_text.glob("*.npz")):
        with np.load(path) as archive:
            tokens = _unit(np.asarray(archive["features"]))
        np.savez(out / "ours" / "text" / path.name, features=tokens)
        np.savez(out / "theirs" / "text" / f"qid{path.stem}.npz", last_hidden_state=tokens)
    done.write_text(stamp)
    return out


def score(predictions: Path, data: Path) -> dict[str, float]:
    """The four headline metrics of a prediction file on the val split, by this project's evaluator."""
    from grounding.eval.evaluate import evaluate

    gt = data / "synthetic" / "annotations" / "highlight_val_release.jsonl"
    brief = evaluate(predictions, gt, "qvhighlights", warn=lambda _: None)["brief"]
    return {k: float(brief[k]) for k in METRICS}


def model_overrides(name: str, s: ParitySettings) -> dict[str, Any]:
    """The shared model size: a DETR port takes the authors' flags' values; CCMAN (no original) its width,
    heads, shared-space width and dropout, the rest of its recipe (schedule, clipping, losses) its own."""
    if name == "ccman":
        return {"model.dim": s.hidden_dim, "model.heads": s.heads, "model.embed_dim": s.hidden_dim,
                "model.dropout": s.dropout}
    return {"model.dim": s.hidden_dim, "model.ffn_dim": s.ffn_dim, "model.heads": s.heads,
            "model.input_dropout": s.input_dropout, "model.dropout": s.dropout}


def run_ours(name: str, data: Path, seed: int, s: ParitySettings, work: Path) -> dict[str, Any]:
    """Train ``name`` with ``configs/<CONFIG[name]>`` on the shared data; its val metrics (and per-tag
    ``<tag>/MR-full-R1@0.5`` where the data has tags)."""
    from grounding.config import load_config
    from grounding.engine.trainer import run_training

    dim = int(np.load(next((data / "ours" / "video").glob("*.npy"))).shape[1])
    overrides = {
        "data.root": data / "synthetic", "data.synthetic": "null", "data.features": data / "ours" / "video",
        "data.l2_normalize": "true", "model.video_dim": dim, "text.input": "precomputed",
        "+text.root": data / "ours" / "text", **model_overrides(name, s), "train.epochs": s.epochs,
        "train.eval_every": s.epochs, "train.batch_size": s.batch_size, "train.lr": s.lr, "train.seed": seed,
        "train.device": "cpu", "train.num_threads": s.threads, "train.num_figures": 0}
    cfg = load_config(REPO / "configs" / CONFIG[name], [f"{k}={v}" for k, v in overrides.items()] + list(s.our_overrides))
    start = time.perf_counter()
    metrics = run_training(cfg, work, progress=False, overwrite=True)["val"]  # per-tag metrics at its top level
    tagged = {k: float(v) for k, v in metrics.items()
              if "/" in k and k.endswith(("MR-full-R1@0.5", "HL-min-VeryGood-mAP")) and v is not None}
    return {"seconds": time.perf_counter() - start, **score(work / "predictions_val.jsonl", data), **tagged}


def original_command(name: str, code: Path, data: Path, seed: int, s: ParitySettings, work: Path) -> list[str]:
    """The authors' ``train.py`` command line for the shared data (CPU: ``--device -1``, no loader workers)."""
    ann = data / "synthetic" / "annotations"
    dim = int(np.load(next((data / "theirs" / "video").glob("*.npz")))["features"].shape[1])
    tdim = int(np.load(next((data / "theirs" / "text").glob("*.npz")))["last_hidden_state"].shape[1])
    return [sys.executable, str(code / ENTRY[name]), "--dset_name", "hl", "--ctx_mode", "video_tef",
            "--train_path", str(ann / "highlight_train_release.jsonl"),
            "--eval_path", str(ann / "highlight_val_release.jsonl"), "--eval_split_name", "val",
            "--v_feat_dirs", str(data / "theirs" / "video"), "--v_feat_dim", str(dim),
            "--t_feat_dir", str(data / "theirs" / "text"), "--t_feat_dim", str(tdim),
            "--bsz", str(s.batch_size), "--n_epoch", str(s.epochs), "--lr", str(s.lr), "--seed", str(seed),
            "--hidden_dim", str(s.hidden_dim), "--dim_feedforward", str(s.ffn_dim), "--nheads", str(s.heads),
            "--input_dropout", str(s.input_dropout), "--dropout", str(s.dropout),
            "--device", "-1", "--num_workers", "0", "--no_pin_memory", "--results_root", str(work), "--exp_id", "parity"]


def run_original(name: str, code: Path, data: Path, seed: int, s: ParitySettings, work: Path) -> dict[str, Any]:
    """Run the authors' training in a child process (their code unchanged; the shim first on PYTHONPATH)."""
    if s.epochs % 5:
        raise GroundingError(f"the original code evaluates every 5 epochs; use --epochs a multiple of 5, not {s.epochs}")
    if name == "qd_detr" and s.hidden_dim != 256:
        raise GroundingError(f"the authors' QD-DETR hard-codes a 256-d anchor embedding (128 sines per coordinate); "
                             f"use --hidden-dim 256, not {s.hidden_dim}")
    work.mkdir(parents=True, exist_ok=True)
    paths = [str(SHIM), str(code), *(str(p) for p in s.original_deps), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p),
               PARITY_THREADS=str(s.threads), OMP_NUM_THREADS=str(s.threads), TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    start = time.perf_counter()
    with open(work / "train.log", "w") as log:
        subprocess.run(original_command(name, code, data, seed, s, work), cwd=code, env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    # the last evaluation's file: latest_*, or best_* when that evaluation was the best (they rename it)
    runs = sorted(work.glob("hl-video_tef-parity-*"))
    found = [p for p in (runs[-1] / "latest_hl_val_preds.jsonl", runs[-1] / "best_hl_val_preds.jsonl")
             if p.is_file()] if runs else []
    if not found:
        raise GroundingError(f"the original {name} wrote no prediction file; see {work / 'train.log'}")
    return {"seconds": seconds, **score(found[0], data)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``{side: {metric: "mean +- std"}}`` over seeds (std with n - 1; one seed: the value)."""
    out: dict[str, dict[str, str]] = {}
    for side in dict.fromkeys(r["side"] for r in rows):
        values = [r for r in rows if r["side"] == side]
        out[side] = {}
        for key in (*METRICS, "seconds"):
            v = np.array([r[key] for r in values], dtype=float)
            std = v.std(ddof=1) if len(v) > 1 else 0.0
            out[side][key] = f"{v.mean():.1f} +- {std:.1f}"
        out[side]["seeds"] = str(len(values))
    return out


def run_parity(names: list[str], originals: dict[str, Path | None], seeds: list[int], s: ParitySettings,
               out: str | Path, log=print) -> list[dict[str, Any]]:
    """Every (model, seed) on both sides; a side whose code folder is missing is skipped with a note, a run
    that fails is logged and skipped. Rows are appended to ``<out>/parity.jsonl`` as they finish; a row
    already there (same model, side, seed and settings) is reused, so an interrupted comparison resumes."""
    out = Path(out)
    data = write_parity_data(out / "data", s.data, s.synthetic)
    log_path = out / "parity.jsonl"
    done = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.is_file() else []
    done = [r for r in done if r.get("settings") == json.loads(json.dumps(asdict(s)))]
    rows: list[dict[str, Any]] = []
    for name in names:
        code = originals.get(name)
        if name not in ENTRY:
            code = None  # ours only (CCMAN beside the ports)
        elif code is None or not (Path(code) / ENTRY[name]).is_file():
            log(f"{name}: the original code is absent ({code}); running ours only")
            code = None
        for seed in seeds:
            for side in ("ours", "original") if code is not None else ("ours",):
                key = {"model": name, "side": side, "seed": seed}
                previous = next((r for r in done if all(r[k] == v for k, v in key.items())), None)
                if previous is not None:
                    rows.append({k: v for k, v in previous.items() if k != "settings"})
                    continue
                work = out / "runs" / f"{name}_{side}_{seed}"
                try:
                    result = (run_ours(name, data, seed, s, work) if side == "ours"
                              else run_original(name, Path(code), data, seed, s, work))
                except GroundingError as err:
                    log(f"{name} {side} seed {seed} failed: {err}")
                    continue
                row = {**key, **result}
                rows.append(row)
                with open(log_path, "a") as f:
                    f.write(json.dumps({**row, "settings": asdict(s)}) + "\n")
                log(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (model, side), mean +- std over seeds."""
    lines = ["| model | code | seeds | " + " | ".join(METRICS) + " | s/run |", "|---" * (len(METRICS) + 4) + "|"]
    for name in dict.fromkeys(r["model"] for r in rows):
        for side, stats in summarise([r for r in rows if r["model"] == name]).items():
            lines.append(f"| {name} | {side} | {stats['seeds']} | " + " | ".join(stats[k] for k in METRICS)
                         + f" | {stats['seconds']} |")
    return "\n".join(lines)
