"""Retrieval metrics, negative flips, mixed galleries and backfill orders on hand-computed cases."""

import numpy as np
import pytest

from grounding.compat.backfill import backfill_order, mixed_gallery, refreshed_count, uncertainty_scores
from grounding.compat.metrics import (
    bootstrap_ci,
    hot_refresh_curve,
    negative_flip_rate,
    paired_difference,
    relevance_by_description,
    retrieve,
    verdict,
)
from grounding.errors import GroundingError

GALLERY = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])


def test_recall_and_map_by_hand():
    # q0 -> item 0 at rank 1; q1 -> item 2 at rank 2 (0.8 < 1.0); q2 -> item 1 at rank 3 (0.6 < 0.8 < 0.96)
    result = retrieve(QUERIES, GALLERY, np.array([0, 2, 1]), ks=(1, 2, 5))
    assert result.metrics["R@1"] == pytest.approx(100 / 3)
    assert result.metrics["R@2"] == pytest.approx(200 / 3)
    assert result.metrics["R@5"] == pytest.approx(100.0)
    assert result.metrics["mAP"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 3)
    assert result.hits.tolist() == [True, False, False]


def test_map_with_several_correct_items_and_a_query_without_any():
    relevant = np.array([[True, False, False], [False, False, False], [True, True, False]])
    result = retrieve(QUERIES, GALLERY, relevant)
    # q1 has no correct item and is skipped; q2's correct items sit at ranks 2 and 3: AP = (1/2 + 2/3) / 2
    assert result.metrics["mAP"] == pytest.approx(100 * (1 + (1 / 2 + 2 / 3) / 2) / 2)
    assert result.metrics["R@1"] == pytest.approx(50.0)


def test_ties_are_broken_by_gallery_index_and_chunking_changes_nothing():
    gallery = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert retrieve(np.array([[1.0, 0.0]]), gallery, np.array([1])).metrics["R@1"] == 0.0
    rng = np.random.default_rng(0)
    q, g, t = rng.normal(size=(50, 4)), rng.normal(size=(30, 4)), rng.integers(0, 30, 50)
    assert retrieve(q, g, t, chunk=7).metrics == retrieve(q, g, t).metrics


def test_negative_flip_rate():
    old = np.array([True, True, False, False])
    new = np.array([True, False, True, False])
    assert negative_flip_rate(old, new) == 25.0
    assert negative_flip_rate(old, old) == 0.0


def test_mixed_gallery_replaces_the_first_items_of_the_order():
    old, new = np.zeros((5, 2)), np.ones((5, 2))
    mixed = mixed_gallery(old, new, np.array([3, 1, 4, 0, 2]), 0.4)
    assert mixed[:, 0].tolist() == [0, 1, 0, 1, 0]
    assert refreshed_count(5, 0.5) == 2 and refreshed_count(10, 1.0) == 10
    assert (mixed_gallery(old, new, np.arange(5), 0.0) == old).all()
    assert (mixed_gallery(old, new, np.arange(5), 1.0) == new).all()


def test_hot_refresh_regression_depends_on_the_backfill_order():
    # the new query (1,0) is about item 0. Old gallery: item 0 at cross similarity 0.6, item 1 at 0.
    # New gallery: item 0 at 1.0, item 1 at 0.8. Refreshing item 1 first puts 0.8 above 0.6: a flip.
    query, relevant = np.array([[1.0, 0.0]]), np.array([0])
    old = np.array([[0.6, 0.8], [0.0, 1.0]])
    new = np.array([[1.0, 0.0], [0.8, 0.6]])
    old_hits = np.array([True])
    bad = hot_refresh_curve(query, old, new, relevant, np.array([1, 0]), [0, 0.5, 1], old_hits)
    good = hot_refresh_curve(query, old, new, relevant, np.array([0, 1]), [0, 0.5, 1], old_hits)
    assert [r["R@1"] for r in bad] == [100.0, 0.0, 100.0]
    assert [r["NFR"] for r in bad] == [0.0, 100.0, 0.0]
    assert [r["NFR"] for r in good] == [0.0, 0.0, 0.0]
    assert [r["fraction"] for r in good] == [0.0, 0.5, 1.0]


def test_uncertainty_order_puts_crowded_items_first():
    # items 0 and 1 are near-duplicates in the old space; 2 and 3 stand alone
    gallery = np.array([[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    for kind in ("entropy", "margin"):
        scores = uncertainty_scores(gallery, kind, temperature=0.05)
        assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()
        assert min(scores[:2]) > max(scores[2:])
        assert sorted(backfill_order("uncertainty", gallery, uncertainty=kind)[:2].tolist()) == [0, 1]
    with pytest.raises(GroundingError, match="entropy, least_confidence, margin, not 'variance'"):
        uncertainty_scores(gallery, "variance")


def test_uncertainty_from_the_old_classifier_is_racts_confidence():
    # two classes (rows of the old classifier); item 0 sits on class 0, item 1 halfway between both
    classifier = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery = np.array([[1.0, 0.0], [1.0, 1.0]])
    p0 = np.exp(1 / 0.5) / (np.exp(1 / 0.5) + 1)  # item 0: softmax([1, 0] / 0.5)
    least = uncertainty_scores(gallery, "least_confidence", temperature=0.5, classifier=classifier)
    np.testing.assert_allclose(least, [1 - p0, 0.5])
    margin = uncertainty_scores(gallery, "margin", temperature=0.5, classifier=classifier)
    np.testing.assert_allclose(margin, [1 - (2 * p0 - 1), 1.0])
    entropy = uncertainty_scores(gallery, "entropy", temperature=0.5, classifier=classifier)
    np.testing.assert_allclose(entropy, [-(p0 * np.log(p0) + (1 - p0) * np.log(1 - p0)) / np.log(2), 1.0])
    assert backfill_order("uncertainty", gallery, classifier=classifier, temperature=0.5).tolist() == [1, 0]


def test_random_order_is_a_seeded_permutation():
    gallery = np.random.default_rng(0).normal(size=(20, 3))
    first, again = backfill_order("random", gallery, seed=3), backfill_order("random", gallery, seed=3)
    assert sorted(first.tolist()) == list(range(20)) and (first == again).all()
    assert not (first == backfill_order("random", gallery, seed=4)).all()
    with pytest.raises(GroundingError, match="unknown backfill order"):
        backfill_order("alphabetical", gallery)


def test_per_query_ap_and_hits_average_to_the_metrics():
    relevant = np.array([[True, False, False], [False, False, False], [True, True, False]])
    result = retrieve(QUERIES, GALLERY, relevant)
    assert result.valid.tolist() == [True, False, True]
    assert result.ap.tolist() == pytest.approx([1.0, 0.0, (1 / 2 + 2 / 3) / 2])
    assert 100 * result.ap[result.valid].mean() == pytest.approx(result.metrics["mAP"])


def test_relevance_by_description_counts_equivalent_moments_of_other_videos():
    # queries 0 and 2 say the same thing about moments 0 and 2; query 1 names moment 1; moment 3 shows
    # the event "open door" without any query of that wording
    keys = ["open door", "take cup", "open door"]
    relevant = relevance_by_description(keys, np.array([0, 1, 2]), 4, [set(), set(), set(), {"open door"}])
    assert relevant.tolist() == [[True, False, True, True], [False, True, False, False], [True, False, True, True]]
    # with several correct items, a query whose top item is another equivalent moment is a hit
    gallery = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    hit = retrieve(np.array([[0.0, 1.0]]), gallery, relevant[:1, :3])
    single = retrieve(np.array([[0.0, 1.0]]), gallery, np.array([2]))
    assert hit.metrics["R@1"] == 100.0 and single.metrics["R@1"] == 0.0


def test_bootstrap_interval_and_paired_difference():
    assert bootstrap_ci(np.ones(50)) == (100.0, 100.0)
    low, high = bootstrap_ci(np.r_[np.ones(50), np.zeros(50)], samples=2000)
    assert 38 < low < 50 < high < 62  # about 50 +- 1.96 * 5
    a = np.r_[np.ones(60), np.zeros(40)]
    same = paired_difference(a, a)
    assert same == (0.0, 0.0, 0.0) and verdict(*same[1:]) == "tie"
    better = paired_difference(np.ones(100), a)  # 40 queries gained, none lost
    assert better[0] == pytest.approx(40.0) and verdict(*better[1:]) == "higher"
    noisy = paired_difference(np.r_[1, 0, 1, 0], np.r_[0, 1, 1, 0])  # one gained, one lost
    assert verdict(*noisy[1:]) == "tie" and verdict(-2.0, -1.0) == "lower"
