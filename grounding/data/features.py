"""Clip-feature stores, and the bank that serves them to the dataset.

A *store* reads one video's raw feature matrix ``(T, D)`` from disk (a folder of ``.npy``, a folder of
``.npz``, or one HDF5 file). The ``FeatureBank`` turns raw matrices into model inputs: concatenation
of several stores along D, optional L2 normalisation, resampling to a fixed clip count (or a cap), a
check of the feature dim and NaNs, and an in-memory cache so that each file is read at most once per
process. Clip ``i`` of ``T`` output clips covers ``[i, i + 1) * duration / T`` seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounding.errors import GroundingError
from grounding.registry import Registry


class FeatureStore:
    """Reads raw ``(T, D)`` features of a video id; subclasses know one on-disk format."""

    description = "feature store"

    def load(self, vid: str) -> np.ndarray:
        raise NotImplementedError

    def __contains__(self, vid: str) -> bool:
        raise NotImplementedError

    def identity(self) -> list[Any]:
        """What names this store on disk (part of the key of cached feature checks)."""
        raise NotImplementedError

    def stamp(self, vid: str) -> list[int] | None:
        """Size and modification time of what holds ``vid`` (None if absent): a changed file is checked again."""
        raise NotImplementedError

    def _missing(self, vid: str, where: Path) -> GroundingError:
        return GroundingError(
            f"no features for video '{vid}' in {self.description} {where}; extract them "
            "(tools/extract_features.py) or point data.features at the folder/file that has them"
        )


FEATURE_STORES: Registry[FeatureStore] = Registry("feature store format")


def _check_matrix(array: Any, vid: str, where: Path) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 1:  # a single pooled vector; treat as one clip
        array = array[None]
    if array.ndim != 2:
        raise GroundingError(f"features of '{vid}' in {where} have shape {array.shape}; expected (clips, dim)")
    return array


def _stamp(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


class FolderStore(FeatureStore):
    """A folder holding one ``<vid><suffix>`` file per video."""

    suffix = ""

    def __init__(self, root: str | Path, key: str | None = None, **_: Any) -> None:
        self.root = Path(root)
        self.key = key
        if not self.root.is_dir():
            raise GroundingError(
                f"feature folder {self.root} does not exist; set data.features to the folder of <vid>{self.suffix}"
            )

    def path(self, vid: str) -> Path:
        return self.root / f"{vid}{self.suffix}"

    def identity(self) -> list[Any]:
        return [type(self).__name__, str(self.root.resolve()), self.key]

    def stamp(self, vid: str) -> list[int] | None:
        return _stamp(self.path(vid))

    def __contains__(self, vid: str) -> bool:
        return self.path(vid).is_file()

    def load(self, vid: str) -> np.ndarray:
        path = self.path(vid)
        if not path.is_file():
            raise self._missing(vid, self.root)
        return _check_matrix(self._read(path), vid, path)

    def _read(self, path: Path) -> np.ndarray:
        raise NotImplementedError


@FEATURE_STORES.register("npy")
class NpyFolderStore(FolderStore):
    """A folder of ``<vid>.npy`` arrays, memory-mapped so only the rows used are paged in."""

    description = "folder of .npy files"
    suffix = ".npy"

    def _read(self, path: Path) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r")
        except ValueError as err:
            raise GroundingError(f"{path} is not a readable .npy array ({err}); re-extract this video") from err


@FEATURE_STORES.register("npz")
class NpzFolderStore(FolderStore):
    """A folder of ``<vid>.npz`` archives holding the matrix under ``key`` (default ``features``)."""

    description = "folder of .npz files"
    suffix = ".npz"

    def _read(self, path: Path) -> np.ndarray:
        key = self.key or "features"
        with np.load(path) as archive:
            if key not in archive:
                raise GroundingError(f"{path} has no array '{key}' (it has {list(archive.keys())}); set the store's key")
            return archive[key]


@FEATURE_STORES.register("hdf5")
class HDF5Store(FeatureStore):
    """One HDF5 file keyed by video id, optionally with a sub-key (``f[vid][key]``, e.g. ``c3d_features``).

    The file handle is opened lazily per process and thread, so the store survives DataLoader forks.
    """

    description = "HDF5 file"

    def __init__(self, path: str | Path, key: str | None = None, **_: Any) -> None:
        self.file_path = Path(path)
        self.key = key
        if not self.file_path.is_file():
            raise GroundingError(f"feature file {self.file_path} does not exist; set data.features to the HDF5 file")
        self._local = threading.local()

    def _file(self):
        import h5py

        handle = getattr(self._local, "handle", None)
        if handle is None:
            try:
                handle = h5py.File(self.file_path, "r")
            except OSError as err:
                raise GroundingError(f"{self.file_path} is not a readable HDF5 file ({err})") from err
            self._local.handle = handle
        return handle

    def __contains__(self, vid: str) -> bool:
        return vid in self._file()

    def identity(self) -> list[Any]:
        return [type(self).__name__, str(self.file_path.resolve()), self.key]

    def stamp(self, vid: str) -> list[int] | None:
        return _stamp(self.file_path) if vid in self else None

    def load(self, vid: str) -> np.ndarray:
        handle = self._file()
        if vid not in handle:
            raise self._missing(vid, self.file_path)
        node = handle[vid]
        if self.key is not None:
            if self.key not in node:
                raise GroundingError(f"{self.file_path}: '{vid}' has no sub-key '{self.key}'; fix the store's key")
            node = node[self.key]
        elif not hasattr(node, "shape"):
            raise GroundingError(f"{self.file_path}: '{vid}' is a group ({list(node.keys())}); set the store's key")
        return _check_matrix(node[()], vid, self.file_path)

    def __getstate__(self) -> dict[str, Any]:  # h5py handles cannot be pickled to workers
        return {"file_path": self.file_path, "key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.file_path, self.key = state["file_path"], state["key"]
        self._local = threading.local()


def build_store(spec: dict[str, Any], root: str | Path = ".") -> FeatureStore:
    """``{"format": "npy"|"npz"|"hdf5", "path": ..., "key": optional}``; a relative path is under ``root``."""
    if "path" not in spec:
        raise GroundingError(f"feature store {dict(spec)} has no 'path'")
    path = Path(spec["path"])
    if not path.is_absolute():
        path = Path(root) / path
    return FEATURE_STORES.get(spec.get("format", "npy"))(path, key=spec.get("key"))


def prepare_clips(feats: np.ndarray, l2_normalize: bool, num_clips: int | None, max_clips: int | None) -> np.ndarray:
    """A video's native clip features ``(T, D)`` as the model reads them: optionally unit-normalised per clip,
    then resampled to ``num_clips`` (or down to ``max_clips`` when longer). Training and the Grounder's
    windows both call this, so a window is prepared exactly like a training video."""
    if l2_normalize:
        feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-6)
    if num_clips:
        feats = resample_mean(feats, num_clips)
    elif max_clips and feats.shape[0] > max_clips:
        feats = resample_mean(feats, max_clips)
    return np.ascontiguousarray(feats, dtype=np.float32)


def resample_mean(features: np.ndarray, num_clips: int) -> np.ndarray:
    """Resample ``(T, D)`` to ``(num_clips, D)`` by averaging the native clips each output clip covers.

    Output clip ``i`` covers native positions ``[i T / N, (i + 1) T / N)``; it averages native clips
    ``floor(i T / N)`` up to ``ceil((i + 1) T / N) - 1`` (at least one). With ``T < N`` native clips
    repeat. Vectorised with a cumulative sum, so it costs O(T D) whatever N is.
    """
    total = features.shape[0]
    if total == num_clips:
        return np.asarray(features, dtype=np.float32)
    edges = np.arange(num_clips + 1, dtype=np.float64) * total / num_clips
    starts = np.minimum(np.floor(edges[:-1]).astype(np.int64), total - 1)
    ends = np.maximum(np.ceil(edges[1:] - 1e-9).astype(np.int64), starts + 1)
    cumsum = np.concatenate([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0, dtype=np.float64)])
    return ((cumsum[ends] - cumsum[starts]) / (ends - starts)[:, None]).astype(np.float32)


def clip_to_seconds(index: np.ndarray | int, num_clips: int, duration: float) -> tuple[Any, Any]:
    """The ``[start, end)`` seconds that clip ``index`` of ``num_clips`` covers in a video of ``duration``."""
    step = duration / num_clips
    return np.asarray(index) * step, (np.asarray(index) + 1) * step


def seconds_to_clip(seconds: np.ndarray | float, num_clips: int, duration: float) -> np.ndarray:
    """Index of the clip that contains ``seconds`` (clamped to the video)."""
    idx = np.floor(np.asarray(seconds, dtype=np.float64) / duration * num_clips).astype(np.int64)
    return np.clip(idx, 0, num_clips - 1)


class FeatureBank:
    """Model-ready clip features per video: concat stores, normalise, resample, validate, cache.

    ``num_clips`` resamples every video to exactly that many clips; otherwise native clips are kept
    and videos longer than ``max_clips`` are resampled down to it. ``expected_dim`` (the config's
    feature dim) is checked on first load so a wrong feature set fails loudly, never silently.
    """

    def __init__(
        self,
        stores: Sequence[FeatureStore],
        num_clips: int | None = None,
        max_clips: int | None = None,
        l2_normalize: bool = False,
        expected_dim: int | None = None,
        cache: bool = True,
    ) -> None:
        if not stores:
            raise GroundingError("data.features lists no feature store")
        self.stores = list(stores)
        self.num_clips = num_clips
        self.max_clips = max_clips
        self.l2_normalize = l2_normalize
        self.expected_dim = expected_dim
        self._cache: dict[str, np.ndarray] | None = {} if cache else None

    def __contains__(self, vid: str) -> bool:
        return all(vid in store for store in self.stores)

    def missing(self, vids: Iterable[str]) -> list[str]:
        return sorted({v for v in vids if v not in self})

    def identity(self) -> list[Any]:
        """The stores and the expected dim: what a cached verdict on a video's features depends on."""
        return [store.identity() for store in self.stores] + [self.expected_dim]

    def stamp(self, vid: str) -> list[Any] | None:
        stamps = [store.stamp(vid) for store in self.stores]
        return None if any(s is None for s in stamps) else stamps

    def load_raw(self, vid: str) -> np.ndarray:
        """The stores' matrices of ``vid`` concatenated along the feature axis, unchecked and uncached."""
        parts = [store.load(vid) for store in self.stores]
        length = min(p.shape[0] for p in parts)  # sets extracted separately can differ by a clip
        feats = np.concatenate([np.asarray(p[:length], dtype=np.float32) for p in parts], axis=1)
        return feats

    def problem(self, vid: str, feats: np.ndarray) -> str | None:
        """Why ``feats`` of ``vid`` cannot be used (wrong dim, NaN/inf, no clips), or None if they can."""
        if self.expected_dim is not None and feats.shape[1] != self.expected_dim:
            where = ", ".join(getattr(s, "description", "store") for s in self.stores)
            return (f"features of '{vid}' ({where}) have dim {feats.shape[1]} but the config says "
                    f"model.video_dim={self.expected_dim}; fix data.features or set model.video_dim={feats.shape[1]}")
        if feats.shape[0] == 0:
            return f"features of '{vid}' have zero clips"
        if not np.isfinite(feats).all():
            return f"features of '{vid}' contain NaN or inf"
        return None

    def _prepare(self, vid: str) -> np.ndarray:
        feats = self.load_raw(vid)
        problem = self.problem(vid, feats)
        if problem is not None:
            fix = "" if "video_dim" in problem else "; re-extract this video, or set data.bad_features=drop to skip it"
            raise GroundingError(problem + fix)
        return prepare_clips(feats, self.l2_normalize, self.num_clips, self.max_clips)

    def get(self, vid: str) -> np.ndarray:
        if self._cache is None:
            return self._prepare(vid)
        feats = self._cache.get(vid)
        if feats is None:
            feats = self._cache[vid] = self._prepare(vid)
        return feats
