"""Atomic writes: a writer that fails leaves the old content and no temporary file behind."""

import os

import pytest

from grounding.atomic import write_atomic, write_atomic_by_name, write_folder_atomic


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_atomic_replaces_the_file_and_a_failed_write_keeps_the_old_one(tmp_path):
    path = tmp_path / "a.txt"
    write_atomic(path, lambda fh: fh.write("one"), binary=False)
    write_atomic(path, lambda fh: fh.write(b"two"))
    assert path.read_text() == "two"

    def crash(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, crash)
    assert path.read_text() == "two" and _listing(tmp_path) == ["a.txt"]


def test_write_atomic_by_name_hands_a_temporary_name_and_renames_it(tmp_path):
    seen = []

    def write(name):
        seen.append(name)
        name.write_bytes(b"index")

    write_atomic_by_name(tmp_path / "faiss.index", write)
    assert (tmp_path / "faiss.index").read_bytes() == b"index"
    assert seen[0].parent == tmp_path and seen[0].name != "faiss.index"

    def crash(name):
        name.write_bytes(b"half")
        raise OSError("the library failed")

    with pytest.raises(OSError):
        write_atomic_by_name(tmp_path / "other.index", crash)
    assert _listing(tmp_path) == ["faiss.index"]


def test_write_folder_atomic_shows_the_folder_complete_or_not_at_all(tmp_path):
    def fill(folder):
        (folder / "ids.npy").write_bytes(b"1")
        (folder / "videos.json").write_text("[]")

    write_folder_atomic(tmp_path / "seg-1", fill)
    assert _listing(tmp_path / "seg-1") == ["ids.npy", "videos.json"]

    def crash(folder):
        (folder / "ids.npy").write_bytes(b"1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_folder_atomic(tmp_path / "seg-2", crash)
    assert _listing(tmp_path) == ["seg-1"]


def test_new_files_follow_the_umask_not_owner_only(tmp_path):
    """Feature folders and indexes are shared; mkstemp's owner-only mode would lock other users out."""
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "f.npy", lambda fh: fh.write(b"x"))
        write_folder_atomic(tmp_path / "seg", lambda folder: (folder / "a").write_bytes(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "f.npy").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "seg").stat().st_mode & 0o777 == 0o755
