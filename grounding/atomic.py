"""Atomic writes: a crash mid-write never leaves a half-written checkpoint, feature file, index or manifest.

Each writer fills a temporary name in the target's folder, fsyncs it, then renames it over the target,
so a reader (or a resumed run) sees the old file or the new one, never half of one:

- ``write_atomic``: through an open file handle (``torch.save``, ``np.save``, ``json.dump``);
- ``write_atomic_by_name``: for libraries that only write to a file name (``faiss.write_index``);
- ``write_folder_atomic``: a whole folder of files that only make sense together (an index segment).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | Path, write: Callable[[IO[Any]], None], binary: bool = True) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync, then rename it over ``path``."""
    path = Path(path)
    with _staged(path, folder=False) as tmp:
        with open(tmp, "xb" if binary else "x") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())


def write_atomic_by_name(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` with a temporary file name beside ``path``, fsync that file, rename it over ``path``."""
    path = Path(path)
    with _staged(path, folder=False) as tmp:
        write(tmp)
        _fsync_file(tmp)


def write_folder_atomic(path: str | Path, fill: Callable[[Path], None]) -> None:
    """Call ``fill(tmp)`` on an empty temporary folder beside ``path``, fsync its files, rename it to ``path``.

    ``path`` must not exist yet: a folder cannot replace a non-empty one in a single rename."""
    path = Path(path)
    with _staged(path, folder=True) as tmp:
        fill(tmp)
        for item in tmp.rglob("*"):
            if item.is_file():
                _fsync_file(item)


@contextmanager
def _staged(path: Path, folder: bool) -> Iterator[Path]:
    """A temporary file (or folder) in ``path``'s folder, renamed to ``path`` when the block ends without
    an error and removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of our own, not mkstemp's: mkstemp makes files readable by their owner only, and feature
    # folders and indexes are often shared; the umask decides here, as for any file
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
