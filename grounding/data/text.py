"""Query inputs: three interchangeable ways to turn a sentence into token inputs for the model.

- ``vocab``: lower-cased word tokens (``[a-z0-9]+`` runs, apostrophes kept inside words, all other
  characters split) mapped to ids of a vocabulary built from the *training* sentences; words seen
  fewer than ``min_freq`` times and words never seen map to ``<unk>``. Optionally initialised from a
  GloVe-format text file (``word v1 ... vD`` per line) that the user points to.
- ``hf``: a transformers tokenizer + encoder from a local folder, frozen; token features are computed
  once per query and cached (an unfrozen encoder would belong inside the model).
- ``precomputed``: a folder of ``<qid>.npz`` with key ``features`` ``(L, D)``.

Each input encodes a record to either ``{"word_ids": (L,) int64}`` or ``{"word_feats": (L, D)}``; the
model's query encoder has a matching input layer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from grounding.data.records import MomentRecord
from grounding.errors import GroundingError
from grounding.registry import Registry

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(sentence: str) -> list[str]:
    """Lower-case and split into word tokens: 'The man's DOG, runs.' -> ['the', "man's", 'dog', 'runs']."""
    return _TOKEN.findall(sentence.lower())


class TextInput:
    """Interface: ``fit`` on training records, then ``encode`` each record to token inputs."""

    kind: str  # "ids" or "feats"

    @property
    def vocab_size(self) -> int | None:
        """Rows of the word-embedding table the model needs (word-id inputs), else None."""
        return None

    @property
    def feature_dim(self) -> int | None:
        """Dimension of each token feature (feature inputs), else None."""
        return None

    def fit(self, records: Iterable[MomentRecord]) -> None:  # noqa: B027 - optional hook
        pass

    def encode(self, record: MomentRecord, max_words: int) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What a checkpoint must store to rebuild the same encoding (e.g. the vocabulary)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass


TEXT_INPUTS: Registry[TextInput] = Registry("text input")


def read_glove(path: str | Path, words: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Vectors of a GloVe-format text file, restricted to ``words`` when given (keeps memory small)."""
    path = Path(path)
    if not path.is_file():
        raise GroundingError(f"word-vector file {path} does not exist; set text.glove to a GloVe .txt file or null")
    wanted = set(words) if words is not None else None
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with path.open(encoding="utf8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            word, _, rest = line.rstrip().partition(" ")
            if wanted is not None and word not in wanted:
                continue
            try:
                vec = np.asarray(rest.split(), dtype=np.float32)
            except ValueError as err:
                raise GroundingError(f"{path}:{line_no}: not a 'word v1 v2 ...' line") from err
            if dim is None:
                dim = vec.size
            elif vec.size != dim:
                raise GroundingError(f"{path}:{line_no}: vector has {vec.size} values, earlier lines have {dim}")
            vectors[word] = vec
    return vectors


@TEXT_INPUTS.register("vocab")
class WordVocabulary(TextInput):
    kind = "ids"

    def __init__(self, min_freq: int = 1, glove: str | None = None, **_: Any) -> None:
        self.min_freq = min_freq
        self.glove = glove
        self.words: list[str] = [PAD, UNK]
        self.index: dict[str, int] = {PAD: 0, UNK: 1}

    def fit(self, records: Iterable[MomentRecord]) -> None:
        counts = Counter(tok for rec in records for tok in tokenize(rec.query))
        self.words = [PAD, UNK] + sorted(w for w, c in counts.items() if c >= self.min_freq)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, record: MomentRecord, max_words: int) -> np.ndarray:
        ids = [self.index.get(tok, 1) for tok in tokenize(record.query)][:max_words]
        return np.asarray(ids or [1], dtype=np.int64)  # an empty query still has one (unknown) token

    def pretrained_embeddings(self, dim: int, seed: int = 0) -> np.ndarray | None:
        """An initial embedding matrix from ``glove`` (random rows for words it lacks), or None."""
        if not self.glove:
            return None
        vectors = read_glove(self.glove, self.words)
        if not vectors:
            raise GroundingError(f"{self.glove} shares no word with the training vocabulary; is it a word-vector file?")
        found_dim = next(iter(vectors.values())).size
        if found_dim != dim:
            raise GroundingError(f"{self.glove} has {found_dim}-d vectors; set model.word_dim={found_dim}")
        rng = np.random.default_rng(seed)
        matrix = rng.normal(0, 0.1, size=(len(self.words), dim)).astype(np.float32)
        matrix[0] = 0
        for word, i in self.index.items():
            if word in vectors:
                matrix[i] = vectors[word]
        return matrix

    def state(self) -> dict[str, Any]:
        return {"words": self.words}

    def load_state(self, state: dict[str, Any]) -> None:
        self.words = list(state["words"])
        self.index = {w: i for i, w in enumerate(self.words)}


@TEXT_INPUTS.register("precomputed")
class PrecomputedText(TextInput):
    """``<root>/<qid>.npz`` holding ``features`` (L, D), as written by ``tools/extract_features.py --text``."""

    kind = "feats"

    def __init__(self, root: str, key: str = "features", **_: Any) -> None:
        self.root = Path(root)
        self.key = key
        if not self.root.is_dir():
            raise GroundingError(f"text feature folder {self.root} does not exist; set text.root")
        self._dim: int | None = None

    @property
    def feature_dim(self) -> int:
        """Read from the first feature file of the folder (all queries share one encoder)."""
        if self._dim is None:
            first = next(iter(sorted(self.root.glob("*.npz"))), None)
            if first is None:
                raise GroundingError(f"text feature folder {self.root} holds no .npz file; run the --text extraction")
            with np.load(first) as archive:
                self._dim = int(np.asarray(archive[self.key]).shape[-1])
        return self._dim

    def encode(self, record: MomentRecord, max_words: int) -> np.ndarray:
        path = self.root / f"{record.qid}.npz"
        if not path.is_file():
            raise GroundingError(f"no text features for query {record.qid}: {path} is missing; run the --text extraction")
        with np.load(path) as archive:
            feats = np.asarray(archive[self.key], dtype=np.float32)
        if feats.ndim == 1:
            feats = feats[None]
        return feats[:max_words]


@TEXT_INPUTS.register("hf")
class HFTextEncoder(TextInput):
    """A frozen transformers text encoder from a local folder, the same one ``tools/extract_features.py
    --text`` runs (CLIP-aware), so features computed online equal the precomputed ones; cached per text."""

    kind = "feats"

    def __init__(self, model: str, device: str = "cpu", **_: Any) -> None:
        path = Path(model)
        if not path.is_dir():
            raise GroundingError(
                f"text model folder {path} does not exist; set text.model to a local transformers folder "
                "(models are never downloaded at run time)"
            )
        from grounding.backbones.text import TextEncoder

        self.encoder = TextEncoder(path).eval().to(device)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def feature_dim(self) -> int:
        return self.encoder.feature_dim

    def encode(self, record: MomentRecord, max_words: int) -> np.ndarray:
        if record.query not in self._cache:
            self._cache[record.query] = self.encoder.encode([record.query])[0][0]
        return self._cache[record.query][:max_words]


def build_text_input(spec: dict[str, Any]) -> TextInput:
    spec = dict(spec)
    return TEXT_INPUTS.get(spec.pop("input", "vocab"))(**spec)
