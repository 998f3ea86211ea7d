"""Upgrading an index to a new model without re-indexing it all at once.

Two ways (docs/search.md, "Upgrades"):

- **forward adapter** (BiCT): ``psi`` maps stored old embeddings into the new model's space
  (``grounding.compat.adapter.ForwardAdapter``); no video is read again. ``make_adapter`` trains one on
  a split's videos (old and new entries of the same windows); ``apply_adapter`` rewrites the old entries
  as ``adapted`` ones living in the new space.
- **backfill** (hot refresh): videos are re-embedded by the new model in a chosen order (``random`` or
  ``uncertainty``: the videos the old model separated worst first, ``grounding.compat.backfill``), a
  chunk per commit. Each commit adds the chunk's new entries and removes its old ones together, so at
  every moment the index holds each video exactly once, half old, half new, and a model compatible with
  both (trained with ``compat.old_checkpoint``) searches it. A rerun resumes the same plan.

Every entry keeps the id of the model that embedded it (``MomentIndex.live_models``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from grounding.compat.adapter import ForwardAdapter, fit_adapter
from grounding.compat.backfill import uncertainty_scores
from grounding.errors import GroundingError
from grounding.inference.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from grounding.search.embed import Granularity
from grounding.search.index import MomentIndex
from grounding.search.model import SearchModel

log = logging.getLogger("grounding")

PLAN = "backfill-plan.json"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------- forward adapter
def make_adapter(old: SearchModel, new: SearchModel, features: list[np.ndarray], durations: list[float],
                 granularity: Granularity, out: str | Path, epochs: int = 30, hidden: int = 256, seed: int = 0,
                 batch_videos: int = 64) -> list[float]:
    """Train ``psi: old space -> new space`` on the entries both models give the same videos; save it."""
    if old.embed_dim != new.embed_dim:
        raise GroundingError(f"the adapter maps {old.embed_dim}-d to {new.embed_dim}-d embeddings, but an index keeps "
                             "one dimension; train the new model with the old model's model.embed_dim")
    olds, news = [], []
    for first in range(0, len(features), batch_videos):
        f, d = features[first:first + batch_videos], durations[first:first + batch_videos]
        olds += [e for e, _ in old.embed_videos(f, d, granularity)]
        news += [e for e, _ in new.embed_videos(f, d, granularity)]
    torch.manual_seed(seed)
    adapter = ForwardAdapter(old.embed_dim, new.embed_dim, hidden)
    history = fit_adapter(adapter, torch.from_numpy(np.concatenate(olds)), torch.from_numpy(np.concatenate(news)),
                          epochs=epochs, seed=seed)
    facts = {"old_dim": old.embed_dim, "new_dim": new.embed_dim, "hidden": hidden, "from_space": old.fingerprint,
             "to_space": new.fingerprint, "to_checkpoint": str(new.path)}
    save_checkpoint(Checkpoint(adapter.state_dict(), {}, kind="search_adapter", extras=facts), out)
    return history


def load_adapter(path: str | Path) -> tuple[ForwardAdapter, dict[str, Any]]:
    checkpoint = read_checkpoint(path)
    if checkpoint.kind != "search_adapter":
        raise GroundingError(f"{path} is not a forward adapter (tools/upgrade_index.py --make-adapter writes one)")
    state = checkpoint.extras
    adapter = ForwardAdapter(state["old_dim"], state["new_dim"], state["hidden"])
    adapter.load_state_dict(checkpoint.model)
    return adapter.eval(), state


@torch.no_grad()
def apply_adapter(index_dir: str | Path, adapter_path: str | Path, chunk_videos: int = 2048,
                  progress: bool = True) -> dict[int, int]:
    """Replace every entry in the adapter's source space by its adapted vector (model kind ``adapted``)."""
    adapter, state = load_adapter(adapter_path)
    with MomentIndex.writer(index_dir) as index:
        if index.embed_dim != state["old_dim"]:
            raise GroundingError(f"{adapter_path} adapts {state['old_dim']}-d embeddings; index {index_dir} holds "
                                 f"{index.embed_dim}-d ones")
        source = [m["id"] for m in index.models if m["space"] == state["from_space"]]
        if not source or not any(m in index.live_models() for m in source):
            raise GroundingError(f"index {index_dir} holds no entry of the adapter's source model {state['from_space']} "
                                 f"(its spaces: {', '.join(sorted(index.spaces()))}); nothing to adapt")
        target = index.register_model(f"adapter:{Path(adapter_path).name}", state["to_space"], "adapted",
                                      str(state["to_checkpoint"]),  # the model whose queries search these entries
                                      note=f"adapter {adapter_path} from {state['from_space']}")
        videos = _videos_of(index, set(source))
        bar = tqdm(total=len(videos), desc="adapting", unit="video", disable=not progress)
        for first in range(0, len(videos), chunk_videos):
            _replace(index, videos[first:first + chunk_videos], set(source), target,
                     lambda emb, *_: adapter(torch.from_numpy(emb)).numpy())
            bar.update(len(videos[first:first + chunk_videos]))
        bar.close()
        index.finalize()
        return index.live_models()


# ---------------------------------------------------------------------- backfill
def _videos_of(index: MomentIndex, models: set[int]) -> list[str]:
    """Live videos with at least one entry embedded by ``models``, in index order."""
    meta, table = index.meta(), index.video_table
    rows = np.flatnonzero(meta["live"] & np.isin(meta["model"], list(models)))
    return list(dict.fromkeys(table[i][0] for i in meta["video"][rows]))


def _replace(index: MomentIndex, vids: list[str], old_models: set[int], new_model: int, embed) -> None:
    """Re-embed ``vids``'s entries of ``old_models`` with ``embed(old_vectors, vid, (duration, source), spans)``
    -> (vectors, spans) or vectors, then commit new entries and removals together."""
    meta, table = index.meta(), index.video_table
    known = index.videos()
    wanted = set(vids)
    rows = np.flatnonzero(meta["live"] & np.isin(meta["model"], list(old_models)))
    rows = rows[[table[v][0] in wanted for v in meta["video"][rows]]]
    by_vid: dict[str, list[int]] = {}
    for r in rows.tolist():
        by_vid.setdefault(table[meta["video"][r]][0], []).append(r)
    add_videos, add_emb, add_spans = [], [], []
    for vid in vids:
        if vid not in by_vid:
            continue
        r = np.array(by_vid[vid])
        out = embed(index.embeddings(r), vid, known[vid], meta["spans"][r])
        emb, spans = out if isinstance(out, tuple) else (out, meta["spans"][r])
        add_videos.append((vid, known[vid][0], known[vid][1]))
        add_emb.append(np.asarray(emb, dtype=np.float32))
        add_spans.append(np.asarray(spans, dtype=np.float32))
        index.remove_entries(meta["ids"][r].tolist())
    index.add(add_videos, add_emb, add_spans, new_model)
    index.commit()


def backfill_plan(index: MomentIndex, order: str, seed: int = 0) -> list[str]:
    """Every live video in the order it is re-embedded: ``random`` (seeded) or ``uncertainty``."""
    videos = sorted(index.videos())
    if order == "random":
        return [videos[i] for i in np.random.default_rng(seed).permutation(len(videos))]
    if order != "uncertainty":
        raise GroundingError(f"--order must be random or uncertainty, not '{order}'")
    meta, table = index.meta(), index.video_table
    live = np.flatnonzero(meta["live"])
    vid_of = np.array([table[v][0] for v in meta["video"][live]])
    pos = {v: i for i, v in enumerate(videos)}
    sums = np.zeros((len(videos), index.embed_dim))
    np.add.at(sums, np.array([pos[v] for v in vid_of]), index.embeddings(live))
    scores = uncertainty_scores(_unit(sums))  # a video = the mean of its entries
    return [videos[i] for i in np.argsort(-scores, kind="stable")]


@dataclass
class BackfillReport:
    done: int
    total: int
    models: dict[int, int]


def backfill(index_dir: str | Path, model: SearchModel, order: str = "random", fraction: float = 1.0,
             seed: int = 0, chunk_videos: int = 64, granularity: Granularity | None = None, features: Any = None,
             progress: bool = True) -> BackfillReport:
    """Re-embed videos with ``model`` until ``fraction`` of the library is new; resumable."""
    if not 0 < fraction <= 1:
        raise GroundingError(f"--fraction must be in (0, 1], not {fraction}")
    with MomentIndex.writer(index_dir) as index:
        if model.embed_dim != index.embed_dim:
            raise GroundingError(f"{model.path} embeds {model.embed_dim}-d vectors; index {index_dir} holds "
                                 f"{index.embed_dim}-d ones, and one index keeps one dimension")
        new_id = index.register_model(model.fingerprint, model.fingerprint, "embedded", str(model.path))
        old_models = {m["id"] for m in index.models if m["id"] != new_id}
        plan_path = index.folder / PLAN
        plan = json.loads(plan_path.read_text()) if plan_path.is_file() else None
        if not plan or plan.get("model") != model.fingerprint or plan.get("order") != order:
            plan = {"model": model.fingerprint, "order": order, "seed": seed, "videos": backfill_plan(index, order, seed)}
            from grounding.search.store import write_json_atomic

            write_json_atomic(plan, plan_path)
        granularity = granularity or Granularity(**{"kind": index.settings.get("granularity", "proposals"),
                                                    "scales": index.settings.get("scales", [0.125, 0.25, 0.5, 1.0]),
                                                    "stride": index.settings.get("stride", 0.5)})
        banks: dict[int, Any] = {}

        def load(vid: str, source: int) -> np.ndarray:
            if features is not None:
                return features.get(vid)
            if source not in banks:
                from grounding.data.build import build_feature_bank

                banks[source] = build_feature_bank(index.manifest["sources"][source],
                                                   model.loaded.config["model"].get("video_dim"))
            return banks[source].get(vid)

        def embed(_old: np.ndarray, vid: str, info: tuple[float, int], _spans: np.ndarray):
            (emb, spans), = model.embed_videos([load(vid, info[1])], [info[0]], granularity)
            return emb, spans

        remaining = set(_videos_of(index, old_models))
        videos = [v for v in plan["videos"] if v in index.videos()]
        goal = int(round(fraction * len(videos)))
        done = sum(v not in remaining for v in videos)
        todo = [v for v in videos if v in remaining][: max(0, goal - done)]
        if done:
            log.info("%s: %d of %d videos already backfilled; %d more to reach %.0f %%", index_dir, done, len(videos),
                     len(todo), 100 * fraction)
        bar = tqdm(total=len(todo), desc="backfilling", unit="video", disable=not progress)
        for first in range(0, len(todo), chunk_videos):
            _replace(index, todo[first:first + chunk_videos], old_models, new_id, embed)
            bar.update(len(todo[first:first + chunk_videos]))
        bar.close()
        index.commit(write_faiss=True)
        return BackfillReport(done + len(todo), len(videos), index.live_models())
