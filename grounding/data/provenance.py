"""How a checkpoint's training features were made, so that a new video can be encoded the same way.

A grounding model only understands features from the backbone, clip length and frame sampling it was
trained on. ``feature_provenance(cfg)`` collects that record when a run starts and the trainer stores
it in every checkpoint (``state["feature_provenance"]``). It comes from, in order:

1. ``data.feature_provenance`` in the config: for features made elsewhere, e.g.
   ``{backbone: clip, model: /models/clip-b32, clip_len: 2.0, frames_per_clip: 1, feature_dim: 512}``;
2. the extractor's ``manifest.jsonl`` beside the features (``tools/extract_features.py`` writes one
   line per video with backbone, model folder, seconds per clip, frames per clip and dimension);
3. nothing known: the record says so, and ``Grounder.encode_video`` explains how to fix it.

Features of a **recipe** (``tools/extract_features.py --recipe NAME``, a reproduction of a released
feature set) also name it: each store's manifest gives ``recipe``, ``recipe_part`` and the part's
weights (path, file name, sha256 prefix), and the record gets ``"recipe": {"name", "clip_len",
"parts": [{"part", "weights", "weights_file", "weights_sha256", "feature_dim"}, ...]}`` (parts in store
order). Features downloaded from the release itself say so in the config:
``data.feature_provenance: {recipe: qvh_slowfast_clip}``; the weights are then named at grounding time.

Normalisation has two parts: the frame normalisation is the backbone's (read from its model folder
by the extractor), and ``l2_normalize`` is the data layer's choice, recorded here. ``max_duration``
(the longest video the features cover) sets how much of a long video the model sees at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grounding.data.manifest import MANIFEST, read_manifest
from grounding.data.settings import data_root
from grounding.errors import GroundingError

KEYS = ("backbone", "model", "clip_len", "frames_per_clip", "clip_count", "feature_dim")
# manifest field -> provenance field
_MANIFEST_FIELDS = {"backbone": "backbone", "model": "model", "seconds_per_clip": "clip_len",
                    "frames_per_clip": "frames_per_clip", "clip_count": "clip_count", "feature_dim": "feature_dim",
                    "recipe": "recipe", "recipe_part": "recipe_part", "weights": "weights",
                    "weights_file": "weights_file", "weights_sha256": "weights_sha256"}


def _store_paths(data_cfg: Any) -> list[Path]:
    root = Path(data_root(data_cfg))
    features = data_cfg.get("features", "features")
    specs = [{"path": features}] if isinstance(features, str) else [dict(s) for s in features]
    paths = []
    for spec in specs:
        path = Path(str(spec.get("path", "")))
        path = path if path.is_absolute() else root / path
        paths.append(path if path.is_dir() else path.parent)  # an HDF5 file's manifest sits beside it
    return paths


def manifest_provenance(folder: str | Path) -> dict[str, Any] | None:
    """The common extraction settings of a feature folder's manifest, or None without a manifest.

    Videos extracted with different settings in one folder make the features inconsistent; that is
    an error rather than a guess."""
    records = list(read_manifest(folder).values())
    if not records:
        return None
    out: dict[str, Any] = {}
    for field, key in _MANIFEST_FIELDS.items():
        if field == "weights":  # the same file may sit elsewhere on another machine; the hash decides
            out[key] = records[-1].get(field)
            continue
        values = {str(r.get(field)) for r in records}
        if len(values) > 1:
            raise GroundingError(
                f"{Path(folder) / MANIFEST}: videos were extracted with different {field} values "
                f"({sorted(values)}); re-extract them with one setting"
            )
        out[key] = records[0].get(field)
    durations = [float(r["duration"]) for r in records if r.get("duration") is not None]
    out["max_duration"] = max(durations) if durations else None
    out["source"] = f"manifest {Path(folder) / MANIFEST}"
    return out


def feature_provenance(cfg: Any) -> dict[str, Any]:
    """The provenance record a checkpoint stores (see the module docstring); plain JSON-able values."""
    data_cfg = cfg.data
    base = {"l2_normalize": bool(data_cfg.get("l2_normalize", False)), "num_clips": data_cfg.get("num_clips"),
            "max_clips": data_cfg.get("max_clips"), "video_dim": cfg.model.get("video_dim")}
    explicit = data_cfg.get("feature_provenance")
    if explicit and dict(explicit).get("recipe"):
        given = dict(explicit)
        recipe = {"name": str(given["recipe"]), "clip_len": given.get("clip_len"), "parts": [],
                  "source": "config data.feature_provenance"}
        return {**base, "recipe": recipe, "stores": [{"recipe": recipe["name"], "source": recipe["source"]}]}
    if explicit:
        given = {k: v for k, v in dict(explicit).items()}
        missing = [k for k in ("backbone", "model", "clip_len") if given.get(k) is None]
        if missing:
            raise GroundingError(f"data.feature_provenance lacks {missing}; give backbone, model (a local folder) "
                                 "and clip_len (seconds per clip), e.g. data.feature_provenance.backbone=clip")
        return {**base, "stores": [{**given, "source": "config data.feature_provenance"}]}
    stores = []
    for path in _store_paths(data_cfg):
        found = manifest_provenance(path) if path.is_dir() else None
        stores.append(found or {"source": f"unknown: {path} has no manifest.jsonl"})
    recipe = recipe_summary(stores)
    return {**base, "stores": stores, **({"recipe": recipe} if recipe else {})}


def recipe_summary(stores: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recipe all stores were made by (see the module docstring), None when they were not; stores of
    different recipes, or a recipe mixed with other features, cannot be re-made from a video: an error."""
    names = {s.get("recipe") for s in stores}
    if names == {None}:
        return None
    if len(names) > 1:
        raise GroundingError(f"data.features mixes features of recipe(s) {sorted(str(n) for n in names)}; a "
                             "checkpoint can re-make one recipe's features only: use the stores of one recipe")
    parts = [{"part": s.get("recipe_part"), "weights": s.get("weights"), "weights_file": s.get("weights_file"),
              "weights_sha256": s.get("weights_sha256"), "feature_dim": s.get("feature_dim")} for s in stores]
    durations = [float(s["max_duration"]) for s in stores if s.get("max_duration") is not None]
    return {"name": stores[0]["recipe"], "clip_len": stores[0].get("clip_len"), "parts": parts,
            "max_duration": min(durations) if durations else None,
            "source": ", ".join(str(s.get("source")) for s in stores)}


def single_store(provenance: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """The one known feature recipe of a checkpoint, or a clear error on why video encoding cannot work."""
    fix = ("set data.feature_provenance (backbone, model, clip_len, frames_per_clip) in the training config, "
           "or extract the training features with tools/extract_features.py, and train again")
    if not provenance:
        raise GroundingError(f"{where} does not record how its training features were made; {fix}")
    stores = provenance.get("stores") or []
    if len(stores) != 1:
        raise GroundingError(f"{where} was trained on {len(stores)} concatenated feature sets; encode_video can "
                             "reproduce one backbone only (train on one feature set, or pass features yourself)")
    store = stores[0]
    if not store.get("backbone"):
        raise GroundingError(f"{where}: the training features' origin is {store.get('source')}; {fix}")
    return store


def describe(store: dict[str, Any]) -> str:
    """'clip (/models/clip-b32, 2.0 s clips, 512-d)' for messages."""
    return (f"{store.get('backbone')} ({store.get('model')}, {store.get('clip_len')} s clips, "
            f"{store.get('feature_dim')}-d)")


def same_features(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two recipes make interchangeable features: same backbone, model folder name, clip length, frames, dim."""
    def key(s: dict[str, Any]) -> tuple:
        model = Path(str(s.get("model"))).name if s.get("model") else None
        clip_len = float(s["clip_len"]) if s.get("clip_len") is not None else None
        return (s.get("backbone"), model, clip_len, s.get("frames_per_clip"), s.get("feature_dim"))

    return key(a) == key(b)
