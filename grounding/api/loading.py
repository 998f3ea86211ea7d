"""Checkpoint -> model plumbing for the Grounder, all in this one module.

Everything the API needs from the training side lives here: finding the checkpoint of a work dir,
reading it, rebuilding the query text input from ``state["text"]``, building the model from
``state["config"]["model"]`` (``build_model_for_text``), running a ``Batch`` and decoding its
``GroundingOutput`` with ``grounding.models.decoding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from grounding.data.batch import make_batch, pad_sequences
from grounding.data.records import MomentRecord
from grounding.data.text import TextInput, build_text_input, tokenize
from grounding.device import select_device
from grounding.engine.checkpoint import load_checkpoint, load_weights
from grounding.errors import GroundingError
from grounding.models import build_model_for_text
from grounding.models.decoding import DecodeConfig, decode_output

REQUIRED_KEYS = ("model", "config", "text")


@dataclass
class LoadedCheckpoint:
    """A model ready for inference and what it needs around it."""

    path: Path
    model: nn.Module
    text: TextInput
    config: dict[str, Any]
    provenance: dict[str, Any] | None
    decode: DecodeConfig
    max_words: int
    device: torch.device


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


def pick_device(name: str) -> torch.device:
    return select_device(name, setting="device")


def _incompatible(path: Path, detail: str) -> GroundingError:
    return GroundingError(f"checkpoint {path} is not compatible with this version of grounding ({detail}); use the "
                          "grounding version that wrote it, or train again with this one")


def load_for_inference(path: str | Path, device: str = "auto") -> LoadedCheckpoint:
    ckpt = resolve_checkpoint(path)
    dev = pick_device(device)
    state = load_checkpoint(ckpt, "cpu")
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise _incompatible(ckpt, f"it lacks {list(REQUIRED_KEYS)}; it has {have}")
    cfg = OmegaConf.create(state["config"])
    text_spec = OmegaConf.to_container(cfg.get("text") or OmegaConf.create({"input": "vocab"}), resolve=True)
    if text_spec.get("input") == "precomputed":
        raise GroundingError(f"checkpoint {ckpt} reads precomputed query features (text.input=precomputed), so it "
                             "cannot encode a new sentence; train with text.input=vocab or hf")
    text = build_text_input(text_spec)
    text.load_state(state["text"])
    max_words = int(cfg.data.get("max_words", 30))
    try:
        model = build_model_for_text(cfg.model, text)
        load_weights(model, state, ckpt)
    except (RuntimeError, KeyError, TypeError, GroundingError) as err:
        raise _incompatible(ckpt, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
    decode_cfg = DecodeConfig.from_config(cfg)
    return LoadedCheckpoint(ckpt, model.to(dev).eval(), text, OmegaConf.to_container(cfg, resolve=True),
                            state.get("feature_provenance"), decode_cfg, max_words, dev)


def encode_queries(loaded: LoadedCheckpoint, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """Padded token inputs ``(Q, L)`` ids or ``(Q, L, Dw)`` features, their mask, and which were cut short."""
    arrays = [loaded.text.encode(MomentRecord(i, query, "video", 1.0, []), loaded.max_words)
              for i, query in enumerate(queries)]
    cut = [len(tokenize(query)) > loaded.max_words for query in queries]
    words, mask = pad_sequences(arrays, torch.long if loaded.text.kind == "ids" else torch.float32)
    return words.to(loaded.device), mask.to(loaded.device), cut


@torch.inference_mode()
def run_and_decode(loaded: LoadedCheckpoint, videos: torch.Tensor, video_mask: torch.Tensor, vid_index: torch.Tensor,
                   words: torch.Tensor, word_mask: torch.Tensor, duration: torch.Tensor, decode_cfg: DecodeConfig
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground queries ``(B, L)`` in clip sequences ``videos`` ``(V, T, D)`` (query b in row ``vid_index[b]``;
    each row runs through the video encoder once), then ``decode``: windows ``(B, K, 3)`` in seconds
    (NaN rows = none) and per-clip saliency ``(B, T)``."""
    none = torch.zeros(len(vid_index), dtype=torch.long, device=videos.device)
    batch = make_batch(videos, video_mask, vid_index, words, word_mask, none, none,
                       span=torch.zeros(len(vid_index), 2, device=videos.device), duration=duration)
    output = loaded.model(batch)
    return decode_output(output, duration, decode_cfg)
