"""The checkpoint file: one versioned schema, one writer, one reader.

Every ``.pt`` the project writes is a ``Checkpoint``: a trained grounding model (``kind="grounding"``,
written by the trainer, with its resume state in ``training``), a model of the compatibility study
(``compat_old`` / ``compat_new``), a search adapter (``search_adapter``), or a random model made for a
benchmark (``random_checkpoint``). Producers build the dataclass and call ``save_checkpoint``; nobody
writes the dict by hand.

``read_checkpoint`` reads a file once and upgrades older layouts, so a checkpoint of any earlier
version loads as the model it was: version 1 (no ``version`` key; every file written before this
module) kept resume state and extras at the top level, and a grounding model from before the saliency
head was added is read as a model *configured* without one (``model.saliency_head: false``), and one
from before the existence calibration (``grounding.models.existence``) as one with ``model.existence: false``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grounding.atomic import write_atomic
from grounding.errors import GroundingError

SCHEMA_VERSION = 2
KINDS = ("grounding", "compat_old", "compat_new", "search_adapter")
TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "epoch", "step", "best", "rng")  # resume state
V1_KNOWN = {"model", "config", "text", "feature_provenance", "compatible_with", "kind", *TRAINING_KEYS}


@dataclass
class Checkpoint:
    """What a ``.pt`` holds. ``model`` is a state dict; ``config`` the resolved config (plain dict)."""

    model: dict[str, torch.Tensor]
    config: dict[str, Any]
    kind: str = "grounding"
    text: dict[str, Any] | None = None  # the text input's state (vocabulary): word ids must match the embeddings
    feature_provenance: dict[str, Any] | None = None  # how Grounder.encode_video reproduces the features
    compatible_with: list[str] = field(default_factory=list)  # fingerprints of spaces this model may query
    training: dict[str, Any] | None = None  # optimizer, scheduler, scaler, epoch, step, best, rng
    extras: dict[str, Any] = field(default_factory=dict)  # kind-specific facts (e.g. a study's method)
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GroundingError(f"unknown checkpoint kind '{self.kind}'; known: {', '.join(KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "kind": self.kind, "model": self.model, "config": self.config,
                "text": self.text, "feature_provenance": self.feature_provenance,
                "compatible_with": list(self.compatible_with), "training": self.training, "extras": self.extras}

    @classmethod
    def from_dict(cls, state: Any, source: str | Path = "checkpoint") -> Checkpoint:
        if not isinstance(state, dict):
            raise GroundingError(f"{source} holds a {type(state).__name__}, not a grounding checkpoint; give a .pt "
                                 "written by tools/train_grounding.py")
        version = int(state.get("version", 1))
        if version > SCHEMA_VERSION:
            raise GroundingError(f"{source} was written by a newer grounding (checkpoint version {version}, this one "
                                 f"reads up to {SCHEMA_VERSION}); update grounding")
        found = sorted(state)
        if version == 1:
            state = _upgrade_v1(state)
        state = _configure_missing_parts(state)
        missing = [k for k in ("model", "config") if state.get(k) is None]
        if missing:
            raise GroundingError(f"checkpoint {source} is not compatible with this version of grounding (it lacks "
                                 f"{missing}; it has {found}); give a .pt written by tools/train_grounding.py")
        return cls(model=state["model"], config=state["config"], kind=state.get("kind") or "grounding",
                   text=state.get("text"), feature_provenance=state.get("feature_provenance"),
                   compatible_with=list(state.get("compatible_with") or []), training=state.get("training"),
                   extras=dict(state.get("extras") or {}))

    @property
    def model_config(self) -> dict[str, Any]:
        return dict(self.config.get("model") or {})


def _upgrade_v1(state: dict[str, Any]) -> dict[str, Any]:
    """A version-1 dict (resume state and extras at the top level) in the version-2 layout."""
    kind = state.get("kind") or "grounding"
    out = {k: state.get(k) for k in ("model", "config", "text", "feature_provenance", "compatible_with")}
    out["kind"] = kind
    if kind == "search_adapter":  # the adapter's weights were under "adapter"
        out["model"] = state.get("adapter")
        out["config"] = state.get("config") or {}
    if kind.startswith("compat_") and out["config"] is None:
        out["config"] = {}
    training = {k: state[k] for k in TRAINING_KEYS if k in state}
    out["training"] = training or None
    moved = V1_KNOWN | ({"adapter"} if kind == "search_adapter" else set())
    out["extras"] = {k: v for k, v in state.items() if k not in moved}
    if kind == "grounding" and isinstance(out["model"], dict) and isinstance(out["config"], dict):
        has_head = any(k.startswith("saliency_head.") for k in out["model"])
        model_cfg = out["config"].get("model") or {}
        if not has_head and model_cfg.get("saliency_head", True):
            # written before the saliency head existed: the same model is one configured without it
            out["config"] = copy.deepcopy(out["config"])
            out["config"].setdefault("model", {})["saliency_head"] = False
    return out


def _configure_missing_parts(state: dict[str, Any]) -> dict[str, Any]:
    """A grounding model written before a part existed is the same model *configured* without it."""
    model, config = state.get("model"), state.get("config")
    if (state.get("kind") or "grounding") != "grounding" or not isinstance(model, dict) or not isinstance(config, dict):
        return state
    model_cfg = config.get("model") or {}
    if model_cfg.get("name", "ccman") in ("ccman", "span_baseline") and model_cfg.get("existence", True) \
            and not any(k.startswith("existence.") for k in model):
        state = {**state, "config": copy.deepcopy(config)}
        state["config"].setdefault("model", {})["existence"] = False
    return state


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write ``checkpoint`` atomically (``grounding.atomic``): a crash mid-write never leaves a broken file."""
    path = Path(path)
    write_atomic(path, lambda fh: torch.save(checkpoint.to_dict(), fh))
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and upgrade a checkpoint file; a missing, truncated or foreign file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"checkpoint {path} does not exist; give the .pt written by tools/train_grounding.py")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise GroundingError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err
    return Checkpoint.from_dict(state, path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.pt`` file as is; a work dir -> its ``checkpoints/best.pt``, else ``checkpoints/last.pt``."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise GroundingError(f"{path} holds no checkpoints/best.pt or checkpoints/last.pt; pass a training work dir "
                             "(tools/train_grounding.py --work-dir) or a .pt file")
    if not path.exists():
        raise GroundingError(f"{path} does not exist; pass a training work dir or a checkpoint .pt file")
    return path


def random_checkpoint(cfg: Any, words: list[str], path: str | Path,
                      feature_provenance: dict[str, Any] | None = None, seed: int = 0) -> Path:
    """A grounding checkpoint with randomly initialised weights (from ``seed``, so reruns load the same model)
    of ``cfg.model`` and the vocabulary ``words``: what benchmarks and tests load where a trained model's
    speed, not its answers, is measured."""
    from grounding.config import to_plain
    from grounding.models import build_model

    with torch.random.fork_rng():  # the caller's random stream is left as it was
        torch.manual_seed(seed)
        model = build_model(cfg.model, vocab_size=len(words))
    return save_checkpoint(Checkpoint(model.state_dict(), to_plain(cfg), text={"words": list(words)},
                                      feature_provenance=feature_provenance), path)
