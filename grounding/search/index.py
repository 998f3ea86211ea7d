"""A moment index: shared-space embeddings of a video library, their metadata, and a FAISS structure.

Each *entry* is one embedded piece of one video (a proposal window or a clip, ``grounding.search.embed``)
with its video id, span in seconds and the model that embedded it. Models are kept in a table
(``models``): a fingerprint of the weights, the *space* the embedding lives in (the fingerprint of the
model whose queries it answers; an adapted entry lives in the new model's space) and how it got there
(``embedded`` or ``adapted``). Search is inner product on unit vectors (cosine similarity).

Files and crash safety: ``grounding.search.store``. Writes go through ``MomentIndex.writer`` (one
process at a time); readers (``MomentIndex.open``) never take the lock and always see the last commit.

FAISS structure: ``flat`` (exact, ``IDMap2,Flat``) or ``ivf`` (``IVF<nlist>,SQ8``: inverted lists over
8-bit scalar-quantised codes, 4x smaller and sub-linear; ``nprobe`` lists are scanned per query).
``kind: auto`` picks ``ivf`` once the index holds more than ``exact_limit`` entries (measured in
docs/performance.md). A build adds to the exact structure while it runs; ``finalize`` switches to the
approximate one at the end, so a half-built index is always searchable.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding.atomic import write_atomic_by_name
from grounding.errors import GroundingError
from grounding.search.store import (
    FORMAT,
    MANIFEST,
    VERSION,
    Segment,
    WriterLock,
    read_manifest,
    save_npy_atomic,
    write_json_atomic,
)

log = logging.getLogger("grounding")

OPEN_ATTEMPTS = 50  # a reader racing a fast writer reads the manifest again at most this often
DEFAULT_INDEX = {"kind": "auto", "exact_limit": 200_000, "nlist": None, "nprobe": 16, "train_size": 100_000}


def import_faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a dependency
        raise GroundingError("moment search needs faiss: pip install faiss-cpu") from err
    return faiss


def ivf_lists(entries: int) -> int:
    """Inverted lists for ``entries`` vectors: about 4 sqrt(n) (the FAISS guideline), 16 at least."""
    return int(max(16, min(65536, 4 * round(math.sqrt(max(entries, 1))))))


@dataclass
class Hits:
    """Entries found for each query: ``scores``/``rows`` (Q, k), row -1 where fewer entries exist."""

    scores: np.ndarray
    rows: np.ndarray


class MomentIndex:
    def __init__(self, folder: Path, manifest: dict[str, Any], writable: bool = False) -> None:
        self.folder = folder
        self.manifest = manifest
        self.writable = writable
        self.segments = [Segment.read(folder / "segments" / name) for name in manifest["segments"]]
        removed = manifest.get("removed")
        self.removed = set(np.load(folder / removed).tolist()) if removed else set()
        self._pending_removed: set[int] = set()
        self._meta: dict[str, np.ndarray] | None = None
        self._table: list[tuple[str, float, int]] | None = None
        self._videos: dict[str, tuple[float, int]] | None = None
        self._faiss: Any = None
        self._faiss_segments: list[str] = []

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, folder: str | Path) -> MomentIndex:
        """Read-only: the index as of its last commit.

        A commit deletes the files only the previous manifest named (its removal list, its FAISS file)
        once the new manifest is in, so a reader that read the old manifest just before may find one
        gone: it then reads the new manifest and opens that state instead."""
        folder = Path(folder)
        for _ in range(OPEN_ATTEMPTS):
            manifest = read_manifest(folder)
            try:
                return cls(folder, manifest)
            except (OSError, GroundingError):
                if read_manifest(folder)["generation"] == manifest["generation"]:
                    raise  # nothing was committed meanwhile: the index is damaged
        raise GroundingError(f"index {folder} changed under every one of {OPEN_ATTEMPTS} attempts to open it; "
                             "try again when its writer is idle")

    @classmethod
    @contextmanager
    def writer(cls, folder: str | Path, create: dict[str, Any] | None = None, overwrite: bool = False
               ) -> Iterator[MomentIndex]:
        """The index opened for writing under the lock; ``create`` (embed_dim, settings, ...) makes a new one
        where none exists. An existing index is kept (a rerun resumes it) unless ``overwrite``."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise GroundingError(f"{folder} is a file; give a folder for the index")
        if create is not None and folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file() \
                and not overwrite:
            raise GroundingError(f"{folder} holds files but no moment index; choose an empty or new folder "
                                 "(nothing there is overwritten unasked)")
        with WriterLock(folder):
            if overwrite and (folder / MANIFEST).is_file():
                (folder / MANIFEST).unlink()
            if not (folder / MANIFEST).is_file():
                if create is None:
                    read_manifest(folder)  # raises the "not an index" error
                manifest = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "generation": 0, "next_id": 0, "segments": [], "removed": None, "faiss": None,
                            "models": [], "sources": [], "index": {**DEFAULT_INDEX, **(create.get("index") or {})},
                            **{k: v for k, v in create.items() if k != "index"}}
                write_json_atomic(manifest, folder / MANIFEST)
                _collect_garbage(folder, manifest)
            else:  # a writer that died left files no manifest names (a segment, a removal list): they
                # would block this one (a segment name is reused once the dead commit is undone)
                _collect_garbage(folder, read_manifest(folder))
            index = cls(folder, read_manifest(folder), writable=True)
            try:
                yield index
            finally:
                index.writable = False

    # ------------------------------------------------------------------ what it holds
    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    @property
    def models(self) -> list[dict[str, Any]]:
        return self.manifest["models"]

    @property
    def settings(self) -> dict[str, Any]:
        return self.manifest.get("settings", {})

    def meta(self) -> dict[str, np.ndarray]:
        """Every stored entry (live or removed), concatenated over segments: ``ids``, ``video`` (row of
        ``video_table``), ``spans``, ``model``, ``live``."""
        if self._meta is None:
            offsets = np.cumsum([0] + [len(s.videos) for s in self.segments])
            parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ids", "video", "spans", "model")}
            for seg, offset in zip(self.segments, offsets, strict=False):
                parts["ids"].append(np.asarray(seg.ids))
                parts["video"].append(np.asarray(seg.video, dtype=np.int64) + offset)
                parts["spans"].append(np.asarray(seg.spans))
                parts["model"].append(np.asarray(seg.model))
            meta = {k: np.concatenate(v) if v else np.zeros((0, 2) if k == "spans" else 0, dtype=np.int64)
                    for k, v in parts.items()}
            removed = self.removed | self._pending_removed
            meta["live"] = ~np.isin(meta["ids"], np.fromiter(removed, np.int64, len(removed)))
            self._meta = meta
        return self._meta

    def _changed(self) -> None:
        self._meta = self._table = self._videos = None

    @property
    def video_table(self) -> list[tuple[str, float, int]]:
        """Every stored video row ``(vid, duration, source)`` (a re-embedded video has a row per segment)."""
        if self._table is None:
            self._table = [v for seg in self.segments for v in seg.videos]
        return self._table

    def videos(self) -> dict[str, tuple[float, int]]:
        """Live videos: ``vid -> (duration, source)``."""
        if self._videos is None:
            meta, table = self.meta(), self.video_table
            self._videos = {table[i][0]: (float(table[i][1]), int(table[i][2]))
                            for i in np.unique(meta["video"][meta["live"]])}
        return self._videos

    @property
    def num_entries(self) -> int:
        return int(self.meta()["live"].sum())

    def live_models(self) -> dict[int, int]:
        """Model id -> live entries it embedded."""
        meta = self.meta()
        ids, counts = np.unique(meta["model"][meta["live"]], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}

    def spaces(self) -> set[str]:
        """The spaces (model fingerprints) the live entries live in."""
        return {self.models[m]["space"] for m in self.live_models()}

    def embeddings(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors (n, E) of entry ``rows`` (read from the memory-mapped segments)."""
        sizes = np.cumsum([0] + [len(s.ids) for s in self.segments])
        out = np.empty((len(rows), self.embed_dim), dtype=np.float32)
        seg_of = np.searchsorted(sizes, rows, side="right") - 1
        for s in np.unique(seg_of):
            pick = seg_of == s
            out[pick] = self.segments[s].emb[rows[pick] - sizes[s]]
        return out

    # ------------------------------------------------------------------ writing
    def _check_writable(self) -> None:
        if not self.writable:
            raise RuntimeError("open the index with MomentIndex.writer(...) to change it")

    def register_model(self, fingerprint: str, space: str, kind: str, checkpoint: str, note: str = "") -> int:
        """The id of this model in the table (added if new)."""
        self._check_writable()
        for m in self.models:
            if (m["fingerprint"], m["space"], m["kind"]) == (fingerprint, space, kind):
                return int(m["id"])
        self.models.append({"id": len(self.models), "fingerprint": fingerprint, "space": space, "kind": kind,
                            "checkpoint": str(checkpoint), "note": note, "added": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return len(self.models) - 1

    def register_source(self, source: dict[str, Any]) -> int:
        """Where the clip features of added videos come from (stage 2 reads them again)."""
        self._check_writable()
        sources = self.manifest["sources"]
        if source not in sources:
            sources.append(source)
        return sources.index(source)

    def add(self, videos: Sequence[tuple[str, float, int]], embeddings: Sequence[np.ndarray],
            spans: Sequence[np.ndarray], model: int | Sequence[np.ndarray]) -> None:
        """Write one segment holding videos ``(vid, duration, source)``, each with its entries
        ``embeddings[i]`` (n_i, E) and ``spans[i]`` (n_i, 2) seconds, embedded by ``model`` (an id, or one
        array of ids per video). Committed only by ``commit``."""
        self._check_writable()
        if not videos:
            return
        emb = np.concatenate([np.asarray(e, dtype=np.float32) for e in embeddings])
        if emb.ndim != 2 or emb.shape[1] != self.embed_dim:
            raise GroundingError(f"embeddings of dim {emb.shape[-1]} cannot go into index {self.folder} of dim "
                                 f"{self.embed_dim}; use the model that built it")
        counts = [len(e) for e in embeddings]
        first = int(self.manifest["next_id"])
        ids = np.arange(first, first + len(emb), dtype=np.int64)
        video = np.repeat(np.arange(len(videos)), counts)
        models = (np.full(len(emb), model) if isinstance(model, int | np.integer)
                  else np.concatenate([np.asarray(m) for m in model]))
        name = f"seg-{len(self.manifest['segments']) + 1:06d}-{first}"
        Segment.write(self.folder / "segments", name, ids, emb, video, np.concatenate(spans), models, list(videos))
        self.manifest["next_id"] = first + len(emb)
        self.manifest["segments"].append(name)
        self.segments.append(Segment.read(self.folder / "segments" / name))
        self._changed()
        if self._faiss is not None:
            self._faiss.add_with_ids(np.ascontiguousarray(emb), ids)
            self._faiss_segments.append(name)

    def remove_entries(self, ids: Iterable[int]) -> int:
        """Take entries out (at the next commit); returns how many were live."""
        self._check_writable()
        ids = {int(i) for i in ids} - self.removed - self._pending_removed
        self._pending_removed |= ids
        self._changed()
        if self._faiss is not None and ids:
            self._faiss.remove_ids(np.fromiter(ids, np.int64, len(ids)))
        return len(ids)

    def remove_videos(self, vids: Iterable[str]) -> list[str]:
        """Remove every entry of ``vids``; returns the vids that were not in the index."""
        meta, table = self.meta(), self.video_table
        wanted = set(vids)
        rows = [i for i, v in enumerate(table) if v[0] in wanted]
        found = {table[i][0] for i in rows}
        hit = np.isin(meta["video"], rows) & meta["live"]
        self.remove_entries(meta["ids"][hit].tolist())
        return sorted(wanted - found)

    def commit(self, write_faiss: bool = False) -> None:
        """Make everything added/removed since the last commit the index, atomically (manifest replace)."""
        self._check_writable()
        gen = int(self.manifest["generation"]) + 1
        if self._pending_removed:
            self.removed |= self._pending_removed
            self._pending_removed = set()
            name = f"removed-{gen:06d}.npy"
            save_npy_atomic(np.array(sorted(self.removed), dtype=np.int64), self.folder / name)
            self.manifest["removed"] = name
        if write_faiss:
            faiss = import_faiss()
            index = self.faiss()
            name = f"faiss-{gen:06d}.index"
            write_atomic_by_name(self.folder / name, lambda tmp: faiss.write_index(index, str(tmp)))
            self.manifest["faiss"] = {"file": name, "segments": list(self._faiss_segments),
                                      "kind": self.faiss_kind, "removed": len(self.removed)}
        self.manifest["generation"] = gen
        write_json_atomic(self.manifest, self.folder / MANIFEST)
        _collect_garbage(self.folder, self.manifest)

    # ------------------------------------------------------------------ FAISS
    @property
    def faiss_kind(self) -> str:
        cached = self.manifest.get("faiss") or {}
        return getattr(self, "_kind", None) or cached.get("kind") or "flat"

    def faiss(self) -> Any:
        """The search structure, loaded from the last written one plus the segments added after it."""
        if self._faiss is not None:
            return self._faiss
        faiss = import_faiss()
        cached = self.manifest.get("faiss")
        index = None
        if cached:
            try:
                index = faiss.read_index(str(self.folder / cached["file"]))
                covered = list(cached["segments"])
                self._kind = cached["kind"]
            except RuntimeError:  # gone: a later commit replaced it; search this state's entries exactly
                if (self.folder / cached["file"]).is_file():
                    raise
        if index is None:
            index = faiss.index_factory(self.embed_dim, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
            covered, self._kind = [], "flat"
        for seg in self.segments:
            if seg.name not in covered:
                index.add_with_ids(np.ascontiguousarray(seg.emb, dtype=np.float32), np.asarray(seg.ids))
                covered.append(seg.name)
        gone = self.removed | self._pending_removed
        if gone:
            index.remove_ids(np.fromiter(gone, np.int64, len(gone)))
        if self._kind == "ivf":
            index.nprobe = int(self.manifest["index"].get("nprobe") or 16)
        self._faiss, self._faiss_segments = index, [s for s in covered if s in {x.name for x in self.segments}]
        return index

    def wanted_kind(self) -> str:
        spec = self.manifest["index"]
        kind = spec.get("kind", "auto")
        if kind == "auto":
            return "ivf" if self.num_entries > int(spec.get("exact_limit", DEFAULT_INDEX["exact_limit"])) else "flat"
        if kind not in ("flat", "ivf"):
            raise GroundingError(f"search.index.kind must be auto, flat or ivf, not '{kind}'")
        return kind

    def finalize(self, seed: int = 0) -> str:
        """Build the structure ``search.index.kind`` asks for over every live entry, write it, commit."""
        self._check_writable()
        faiss = import_faiss()
        kind, spec = self.wanted_kind(), self.manifest["index"]
        meta = self.meta()
        live = np.flatnonzero(meta["live"])
        if kind == "ivf" and len(live) < 64:
            kind = "flat"  # too few vectors to train lists
        if kind == "flat":
            index = faiss.index_factory(self.embed_dim, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = int(spec.get("nlist") or ivf_lists(len(live)))
            nlist = min(nlist, max(1, len(live) // 39))  # FAISS wants about 39 training points per list
            index = faiss.index_factory(self.embed_dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(live, min(len(live), int(spec.get("train_size") or 100_000)), replace=False))
            index.train(np.ascontiguousarray(self.embeddings(sample)))
            index.nprobe = int(spec.get("nprobe") or 16)
        for first in range(0, len(live), 200_000):
            rows = live[first:first + 200_000]
            index.add_with_ids(np.ascontiguousarray(self.embeddings(rows)), meta["ids"][rows])
        self._faiss, self._kind = index, kind
        self._faiss_segments = [s.name for s in self.segments]
        self.commit(write_faiss=True)
        return kind

    def search(self, queries: np.ndarray, k: int) -> Hits:
        """The ``k`` most similar live entries of each query (Q, E): scores and rows of ``meta()``."""
        queries = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[1] != self.embed_dim:
            raise GroundingError(f"query embeddings of dim {queries.shape[-1]} cannot search index {self.folder} "
                                 f"of dim {self.embed_dim}; use a model of the index's space")
        index = self.faiss()
        k = max(1, min(k, index.ntotal))
        scores, ids = index.search(queries, k)
        meta = self.meta()
        rows = np.searchsorted(meta["ids"], ids)
        rows = np.where(ids < 0, -1, np.minimum(rows, len(meta["ids"]) - 1))
        return Hits(scores, rows)


def _collect_garbage(folder: Path, manifest: dict[str, Any]) -> None:
    """Delete what the manifest no longer names (old removal lists and FAISS files, dropped segments,
    temporary files of a writer that died)."""
    import shutil

    keep = {manifest.get("removed"), (manifest.get("faiss") or {}).get("file"), MANIFEST, ".lock", "segments"}
    for path in folder.iterdir():
        if path.name not in keep and (path.name.startswith(("removed-", "faiss-", ".")) and path.is_file()):
            path.unlink(missing_ok=True)
    segments = folder / "segments"
    if segments.is_dir():
        named = set(manifest["segments"])
        for path in segments.iterdir():
            if path.name not in named:
                shutil.rmtree(path, ignore_errors=True)
