"""Writing features in the formats ``grounding.data.features`` reads (the run's manifest: ``grounding.data.manifest``).

- ``npy``:  ``<out>/<id>.npy``, ``(T, D)`` float32 (the default; what ``NpyFolderStore`` reads)
- ``npz``:  ``<out>/<id>.npz`` with key ``features`` (and any extra arrays, e.g. ``pooled`` for text)
- ``hdf5``: ``<out>/features.h5``, one dataset per id (``HDF5Store(path)`` with no sub-key)

Files are written to a temporary name and renamed (``grounding.atomic``), so a crash never leaves a half-written file that
a resumed run would take as done. ``manifest.jsonl`` gets one JSON line per finished item, appended
after its features are on disk: the record of what a run did, and (with the feature file) what a
resumed run skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from grounding.atomic import write_atomic
from grounding.errors import GroundingError
from grounding.registry import Registry

HDF5_NAME = "features.h5"


class FeatureWriter:
    """Stores one feature matrix per id under ``out_dir``; ``exists`` says whether one is there."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def write(self, key: str, features: np.ndarray, **extra: np.ndarray) -> None:
        raise NotImplementedError

    def location(self, key: str) -> str:
        """Where ``key`` is stored, relative to ``out_dir`` (for the manifest)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


FEATURE_WRITERS: Registry[FeatureWriter] = Registry("feature format")


class _FileWriter(FeatureWriter):
    suffix = ""

    def location(self, key: str) -> str:
        return f"{key}{self.suffix}"

    def exists(self, key: str) -> bool:
        return (self.out_dir / self.location(key)).is_file()

    def write(self, key: str, features: np.ndarray, **extra: np.ndarray) -> None:
        features = np.ascontiguousarray(features, dtype=np.float32)
        write_atomic(self.out_dir / self.location(key), lambda fh: self._dump(fh, features, extra))

    def _dump(self, fh: Any, features: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


@FEATURE_WRITERS.register("npy")
class NpyWriter(_FileWriter):
    suffix = ".npy"

    def _dump(self, fh: Any, features: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        np.save(fh, features)  # extra arrays have no place in a .npy; npz keeps them


@FEATURE_WRITERS.register("npz")
class NpzWriter(_FileWriter):
    suffix = ".npz"

    def _dump(self, fh: Any, features: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        np.savez(fh, features=features, **{k: np.asarray(v, dtype=np.float32) for k, v in extra.items()})


@FEATURE_WRITERS.register("hdf5")
class HDF5Writer(FeatureWriter):
    """One HDF5 file for the whole run; one process only (HDF5 files cannot take concurrent writers)."""

    def __init__(self, out_dir: str | Path) -> None:
        import h5py

        super().__init__(out_dir)
        self.path = self.out_dir / HDF5_NAME
        try:
            self._file = h5py.File(self.path, "a")
        except OSError as err:
            raise GroundingError(
                f"cannot open {self.path} for writing ({err}); another extraction may be writing it, "
                "or it is damaged (delete it to start over)"
            ) from err

    def location(self, key: str) -> str:
        return f"{HDF5_NAME}:{key}"

    def exists(self, key: str) -> bool:
        return key in self._file

    def write(self, key: str, features: np.ndarray, **extra: np.ndarray) -> None:
        if key in self._file:
            del self._file[key]
        self._file.create_dataset(key, data=np.ascontiguousarray(features, dtype=np.float32))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def make_writer(fmt: str, out_dir: str | Path) -> FeatureWriter:
    return FEATURE_WRITERS.get(fmt)(out_dir)
