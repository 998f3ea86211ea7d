import h5py
import numpy as np
import pytest

from grounding.data.features import (
    FeatureBank,
    HDF5Store,
    NpyFolderStore,
    NpzFolderStore,
    clip_to_seconds,
    resample_mean,
    seconds_to_clip,
)
from grounding.errors import GroundingError


def test_resample_mean_averages_the_covered_native_clips():
    x = np.arange(10, dtype=np.float32)[:, None]
    # 10 -> 5: pairs; 10 -> 4: clip 0 covers [0, 2.5) -> native 0, 1, 2
    assert resample_mean(x, 5).ravel().tolist() == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert resample_mean(x, 4).ravel().tolist() == [1.0, 3.0, 6.0, 8.0]


def test_resample_repeats_when_upsampling_and_is_identity_at_same_length():
    x = np.array([[0.0], [1.0], [2.0]], dtype=np.float32)
    assert resample_mean(x, 6).ravel().tolist() == [0, 0, 1, 1, 2, 2]
    y = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_array_equal(resample_mean(y, 7), y)


def test_clip_seconds_maps_are_inverse():
    start, end = clip_to_seconds(np.arange(8), 8, 20.0)
    assert start[3] == pytest.approx(7.5) and end[3] == pytest.approx(10.0)
    assert seconds_to_clip(start + 0.01, 8, 20.0).tolist() == list(range(8))
    assert seconds_to_clip(np.array([-1.0, 25.0]), 8, 20.0).tolist() == [0, 7]


def _write_npy(root, vid, array):
    root.mkdir(exist_ok=True)
    np.save(root / f"{vid}.npy", array)


def test_stores_round_trip_npy_npz_hdf5_with_subkey(tmp_path):
    a = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    _write_npy(tmp_path / "npy", "v1", a)
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "v1.npz", features=a)
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh.create_dataset("v1/c3d_features", data=a)
        fh.create_dataset("v2", data=a * 2)
    np.testing.assert_array_equal(NpyFolderStore(tmp_path / "npy").load("v1"), a)
    np.testing.assert_array_equal(NpzFolderStore(tmp_path / "npz").load("v1"), a)
    np.testing.assert_array_equal(HDF5Store(tmp_path / "f.h5", key="c3d_features").load("v1"), a)
    np.testing.assert_array_equal(HDF5Store(tmp_path / "f.h5").load("v2"), a * 2)
    with pytest.raises(GroundingError, match="set the store's key"):
        HDF5Store(tmp_path / "f.h5").load("v1")


def test_concatenation_along_features_truncates_to_the_shorter_set(tmp_path):
    _write_npy(tmp_path / "a", "v", np.ones((6, 3), np.float32))
    _write_npy(tmp_path / "b", "v", np.zeros((5, 2), np.float32))
    bank = FeatureBank([NpyFolderStore(tmp_path / "a"), NpyFolderStore(tmp_path / "b")])
    feats = bank.get("v")
    assert feats.shape == (5, 5) and feats[:, :3].sum() == 15 and feats[:, 3:].sum() == 0


def test_l2_normalisation_and_fixed_clip_count(tmp_path):
    _write_npy(tmp_path / "a", "v", np.random.default_rng(1).normal(size=(9, 4)).astype(np.float32) * 5)
    feats = FeatureBank([NpyFolderStore(tmp_path / "a")], num_clips=3, l2_normalize=True).get("v")
    assert feats.shape == (3, 4)
    raw = FeatureBank([NpyFolderStore(tmp_path / "a")], l2_normalize=True).get("v")
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, rtol=1e-5)


def test_keep_native_with_a_cap(tmp_path):
    _write_npy(tmp_path / "a", "short", np.ones((4, 2), np.float32))
    _write_npy(tmp_path / "a", "long", np.ones((40, 2), np.float32))
    bank = FeatureBank([NpyFolderStore(tmp_path / "a")], max_clips=10)
    assert bank.get("short").shape == (4, 2) and bank.get("long").shape == (10, 2)


def test_wrong_dim_nan_and_missing_video_are_clear_errors(tmp_path):
    _write_npy(tmp_path / "a", "v", np.ones((4, 3), np.float32))
    nan = np.ones((4, 3), np.float32)
    nan[1, 1] = np.nan
    _write_npy(tmp_path / "a", "bad", nan)
    store = NpyFolderStore(tmp_path / "a")
    with pytest.raises(GroundingError, match="model.video_dim=1024"):
        FeatureBank([store], expected_dim=1024).get("v")
    with pytest.raises(GroundingError, match="NaN"):
        FeatureBank([store]).get("bad")
    with pytest.raises(GroundingError, match="no features for video 'ghost'"):
        FeatureBank([store]).get("ghost")
    with pytest.raises(GroundingError, match="does not exist"):
        NpyFolderStore(tmp_path / "nowhere")


def test_each_file_is_read_once_per_process(tmp_path, monkeypatch):
    _write_npy(tmp_path / "a", "v", np.ones((4, 3), np.float32))
    store = NpyFolderStore(tmp_path / "a")
    calls = []
    original = store.load
    monkeypatch.setattr(store, "load", lambda vid: calls.append(vid) or original(vid))
    bank = FeatureBank([store])
    for _ in range(5):
        bank.get("v")
    assert calls == ["v"]


def test_hdf5_store_survives_pickling_for_dataloader_workers(tmp_path):
    import pickle

    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh.create_dataset("v", data=np.ones((2, 2)))
    store = HDF5Store(tmp_path / "f.h5")
    store.load("v")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.load("v").shape == (2, 2)
