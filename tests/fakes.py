"""Test-only inputs: broken videos and a tiny random BERT (kept out of the package: no user needs them)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def make_corrupt_video(path: str | Path, num_bytes: int = 4096, seed: int = 0) -> Path:
    """Random bytes under a video name: what a failed download or a disk error leaves behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, num_bytes, dtype=np.uint8).tobytes())
    return path


def save_random_bert(folder: str | Path, words: Sequence[str], hidden_size: int = 32, seed: int = 0) -> Path:
    """A tiny random BERT with a word-level vocabulary of ``words`` (plus the special tokens)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(w.lower() for w in words)]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    if "vocab" in inspect.signature(BertTokenizer.__init__).parameters:  # transformers 5
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    else:
        tokenizer = BertTokenizer(vocab_file=str(vocab_file))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder
