import pytest
import torch

from grounding.data.batch import window_to_clips
from grounding.data.build import DataBundle
from grounding.data.dataset import collate
from grounding.errors import GroundingError
from tests.conftest import tiny_config


@pytest.mark.parametrize("window,expected", [((0.0, 10.0), (0, 9)), ((2.5, 5.0), (2, 4)), ((3.0, 3.0), (3, 3)),
                                             ((9.9, 10.0), (9, 9)), ((0.0, 0.4), (0, 0))])
def test_window_to_clips(window, expected):
    assert window_to_clips(window, 10.0, 10) == expected


def _bundle(root, **extra):
    return DataBundle(tiny_config(root, **extra))


def test_batches_are_padded_and_masked(tiny_synthetic):
    bundle = _bundle(tiny_synthetic, **{"data.num_clips": None, "data.max_clips": 100})
    dataset = bundle.dataset("train")
    items = [dataset[i] for i in range(8)]
    batch = collate(items)
    lengths = [it["video"].shape[0] for it in items]
    words = [len(it["words"]) for it in items]
    vids = list(dict.fromkeys(it["record"].vid for it in items))
    assert batch.video.shape == (len(vids), max(lengths), 64)  # each distinct video once
    assert [vids[i] for i in batch.vid_index.tolist()] == batch.vid == [it["record"].vid for it in items]
    assert batch.clip_mask.sum(1).tolist() == lengths == batch.num_clips.tolist()
    assert batch.word_mask.sum(1).tolist() == words
    assert batch.words.dtype == torch.long
    for i, n in enumerate(lengths):
        assert batch.video[batch.vid_index[i], n:].abs().sum() == 0 and batch.inside[i, n:].sum() == 0
        s, e = batch.start_idx[i].item(), batch.end_idx[i].item()
        assert batch.inside[i].nonzero().ravel().tolist() == list(range(s, e + 1))
        start, end = items[i]["record"].windows[0]
        duration = items[i]["record"].duration
        assert batch.span[i].tolist() == pytest.approx([start / duration, end / duration])


def test_a_video_with_several_queries_is_stored_once(tiny_synthetic):
    dataset = _bundle(tiny_synthetic).dataset("train")
    by_vid: dict = {}
    for i, rec in enumerate(dataset.records):
        by_vid.setdefault(rec.vid, []).append(i)
    pair = next(rows for rows in by_vid.values() if len(rows) >= 2)[:2]
    other = next(rows for rows in by_vid.values() if rows[0] not in pair)[0]
    batch = collate([dataset[i] for i in (pair[0], other, pair[1])])
    assert batch.video.shape[0] == 2 and batch.vid_index.tolist() == [0, 1, 0]


def test_fixed_clip_count_resamples_every_video(tiny_synthetic):
    batch = collate([_bundle(tiny_synthetic).dataset("test")[i] for i in range(4)])
    assert batch.video.shape[1] == 16 and bool(batch.video_mask.all())


def test_video_without_features_is_an_error_or_dropped(tiny_synthetic, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_synthetic, root)
    victim = sorted((root / "features").glob("SYNTR*.npy"))[0]
    victim.unlink()
    with pytest.raises(GroundingError, match=victim.stem):
        _bundle(root)
    bundle = _bundle(root, **{"data.missing_features": "drop"})
    assert all(r.vid != victim.stem for r in bundle.records("train"))


def test_wrong_feature_dim_names_the_config_key(tiny_synthetic):
    bundle = _bundle(tiny_synthetic, **{"model.video_dim": 1024})
    with pytest.raises(GroundingError, match="model.video_dim=64"):
        bundle.dataset("train")[0]


def test_tags_sidecar_is_found(tiny_synthetic):
    dataset = _bundle(tiny_synthetic).dataset("test")
    tags = {t for ts in dataset.tags.values() for t in ts}
    assert tags == {"plain", "temporal", "novel"}
    assert len(dataset.tags) == len(dataset)


def test_missing_annotation_split_is_a_clear_error(tiny_synthetic):
    with pytest.raises(GroundingError, match="data.annotations.val"):
        _bundle(tiny_synthetic).records("val")


def test_tensorized_batches_equal_the_collated_ones(tiny_synthetic):
    from grounding.data.tensorized import TensorizedSplit

    dataset = _bundle(tiny_synthetic).dataset("train")
    fast = TensorizedSplit(dataset)
    same_video = [i for i, r in enumerate(dataset.records) if r.vid == dataset.records[0].vid]
    rows = torch.tensor([5, same_video[0], 17, 3, same_video[1]])  # two queries of one video
    got, want = fast.batch(rows), collate([dataset[i] for i in rows.tolist()])
    for key in ("video", "video_mask", "vid_index", "words", "word_mask", "span", "start_idx", "end_idx", "inside",
                "duration", "num_clips", "clip_mask"):
        torch.testing.assert_close(getattr(got, key), getattr(want, key), msg=key, check_dtype=False, rtol=0, atol=0)
    assert got.video.shape[0] == len(set(got.vid)) < len(rows)
    assert got.qid == want.qid and got.vid == want.vid and got.windows == want.windows and got.query == want.query
    seen = sum(len(b) for b in fast.batches(7, shuffle=True, seed=1))
    assert seen == len(dataset)
    shards = [sum(len(b) for b in fast.batches(8, shuffle=True, rank=r, world=3)) for r in range(3)]
    assert len(set(shards)) == 1 and sum(shards) >= len(dataset)  # equal shards for DDP


def _labelled_dataset(tmp_path):
    """Two videos of 20 s in 10 clips; one query with two windows and QVHighlights-style saliency labels."""
    import numpy as np

    from grounding.data.dataset import GroundingDataset
    from grounding.data.features import FeatureBank, NpyFolderStore
    from grounding.data.records import MomentRecord
    from grounding.data.text import WordVocabulary

    for vid in ("a", "b"):
        np.save(tmp_path / f"{vid}.npy", np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    records = [
        MomentRecord(0, "a person sits", "a", 20.0, [[2.0, 6.0], [14.0, 18.0]],
                     {"relevant_clip_ids": [1, 2, 7, 8], "saliency_scores": [[4, 4, 4], [2, 2, 2], [1, 1, 1], [0, 0, 0]]}),
        MomentRecord(1, "a person stands", "b", 20.0, [[10.0, 12.0]]),
        MomentRecord(2, "a person sits again", "a", 20.0, [[0.0, 2.0]]),
    ]
    vocab = WordVocabulary()
    vocab.fit(records)
    return GroundingDataset(records, FeatureBank([NpyFolderStore(tmp_path)], num_clips=10), vocab)


def test_several_windows_and_saliency_labels_become_targets(tmp_path):
    from grounding.data.tensorized import TensorizedSplit

    dataset = _labelled_dataset(tmp_path)
    batch = collate([dataset[i] for i in range(3)])
    assert batch.window_mask.tolist() == [[True, True], [True, False], [True, False]]
    assert batch.window_clips[0].tolist() == [[1, 2], [7, 8]] and batch.start_idx.tolist() == [1, 5, 0]
    assert batch.inside[0].nonzero().ravel().tolist() == [1, 2, 7, 8]
    assert batch.saliency[0].tolist() == pytest.approx([0, 1.0, 0.5, 0, 0, 0, 0, 0.25, 0, 0])  # mean score / 4
    assert batch.saliency[1].tolist() == batch.inside[1].tolist()  # no labels: the window's clips
    fast = TensorizedSplit(dataset).batch(torch.arange(3))
    for key in ("window_clips", "window_spans", "window_mask", "inside", "saliency", "span", "vid_index"):
        torch.testing.assert_close(getattr(fast, key), getattr(batch, key), msg=key, rtol=0, atol=0)
    single = TensorizedSplit(dataset).batch(torch.tensor([1, 2]))
    assert single.window_clips.shape == (2, 1, 2)  # window padding trimmed to the batch, like collate
