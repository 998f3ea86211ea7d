"""A checkpoint -> a model ready to answer: the one place a trained model is built for use.

``load_for_inference`` reads the file once (``read_checkpoint``) and returns a ``LoadedModel``: the
model in eval mode on its device, its text input (vocabulary), decoding settings, feature provenance,
its fingerprint and the spaces it was trained to be compatible with. The Grounder, the Searcher, the
compatibility term, the studies and the benchmarks all start here; checkpoint-mode evaluation and the
trainer use the two steps beneath it (``build_model_from_checkpoint``, ``load_weights``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from grounding.data.settings import max_words
from grounding.data.text import TextInput, build_text_input
from grounding.device import select_device
from grounding.errors import GroundingError
from grounding.inference.checkpoint import Checkpoint, read_checkpoint, resolve_checkpoint
from grounding.inference.queries import encode_queries
from grounding.models import build_model_for_text
from grounding.models.decoding import DecodeConfig
from grounding.models.shared_space import SharedSpaceModel, require_shared_space


def model_fingerprint(model: nn.Module) -> str:
    """16 hex digits of a SHA-256 over every weight (names, shapes, bytes): which model embedded an entry."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


def incompatible(path: str | Path, detail: str) -> GroundingError:
    return GroundingError(f"checkpoint {path} is not compatible with this version of grounding ({detail}); use the "
                          "grounding version that wrote it, or train again with this one")


def text_input_of(checkpoint: Checkpoint) -> TextInput:
    """The checkpoint's text input with its saved state (the vocabulary its word embeddings were trained on)."""
    spec = dict(checkpoint.config.get("text") or {"input": "vocab"})
    text = build_text_input(spec)
    text.load_state(checkpoint.text or {})
    return text


def load_weights(model: nn.Module, checkpoint: Checkpoint, source: str | Path) -> None:
    """Load ``checkpoint``'s weights into ``model``, with an error that says what to do when they do not fit."""
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as err:
        raise GroundingError(
            f"checkpoint {source} does not fit the model of this config ({str(err).splitlines()[0]}); use the "
            "config.yaml saved beside the checkpoint (checkpoints written before the q/k/v fusion of daf3be6 "
            "cannot be loaded: retrain them)"
        ) from err


def build_model_from_checkpoint(checkpoint: Checkpoint, text: TextInput, source: str | Path) -> nn.Module:
    """The model ``checkpoint.config.model`` describes, for ``text``'s inputs, with the checkpoint's weights."""
    if checkpoint.kind != "grounding":
        raise GroundingError(f"{source} is a '{checkpoint.kind}' checkpoint, not a grounding model; give a .pt "
                             "written by tools/train_grounding.py")
    try:  # the checkpoint's own config describes the model: a mismatch means another version wrote it
        model = build_model_for_text(checkpoint.config["model"], text)
        model.load_state_dict(checkpoint.model)
    except (KeyError, TypeError, ValueError, RuntimeError, GroundingError) as err:
        raise incompatible(source, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
    return model


@dataclass
class LoadedModel:
    """A trained model ready for inference and what it needs around it."""

    path: Path
    model: nn.Module
    text: TextInput
    config: dict[str, Any]
    provenance: dict[str, Any] | None
    decode: DecodeConfig
    max_words: int
    device: torch.device
    fingerprint: str
    compatible_with: list[str]

    def answers(self, space: str) -> bool:
        """May this model's queries search entries embedded in ``space`` (a model fingerprint)?"""
        return space == self.fingerprint or space in self.compatible_with

    @property
    def space(self) -> SharedSpaceModel:
        """The model's shared embedding space, or an error for a model without one."""
        return require_shared_space(self.model, f"checkpoint {self.path} ('{self.config['model'].get('name')}')")

    def encode_queries(self, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        """Padded token inputs, their mask (on the model's device) and which queries were cut short."""
        return encode_queries(self.text, self.max_words, queries, self.device)


def load_for_inference(path: str | Path, device: str | torch.device = "auto") -> LoadedModel:
    """A work dir (its ``best.pt``, else ``last.pt``) or a ``.pt`` as a model that encodes new sentences."""
    ckpt_path = resolve_checkpoint(path)
    dev = device if isinstance(device, torch.device) else select_device(device, setting="device")
    checkpoint = read_checkpoint(ckpt_path, "cpu")
    if (checkpoint.config.get("text") or {}).get("input") == "precomputed":
        raise GroundingError(f"checkpoint {ckpt_path} reads precomputed query features (text.input=precomputed), so "
                             "it cannot encode a new sentence; train with text.input=vocab or hf")
    try:
        text = text_input_of(checkpoint)
    except (KeyError, TypeError, GroundingError) as err:
        raise incompatible(ckpt_path, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
    model = build_model_from_checkpoint(checkpoint, text, ckpt_path).to(dev).eval()
    return LoadedModel(ckpt_path, model, text, checkpoint.config, checkpoint.feature_provenance,
                       DecodeConfig.from_config(checkpoint.config), max_words(checkpoint.config), dev,
                       model_fingerprint(model), checkpoint.compatible_with)
