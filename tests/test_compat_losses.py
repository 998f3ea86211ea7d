"""Compatibility losses on hand-made unit embeddings, and UniBCT's prototype refinement inside each class."""

import math

import pytest
import torch
import torch.nn.functional as F

from grounding.compat.objectives import (
    COMPAT_LOSSES,
    OldReference,
    build_compat_loss,
    propagate_within_classes,
    same_moment,
)
from grounding.errors import GroundingError
from grounding.models.contrastive import info_nce

EYE = torch.eye(3)
IDS = torch.arange(3)


def reference(moments: torch.Tensor, temperature: float = 0.5) -> OldReference:
    return OldReference(moments, moments.clone(), torch.arange(len(moments)), temperature)


def test_registry_names_and_unknown_name():
    assert COMPAT_LOSSES.names() == ["bct", "l2", "ract", "unibct"]
    assert build_compat_loss(None) is None
    with pytest.raises(GroundingError, match="unknown compatibility loss 'bogus'"):
        build_compat_loss("bogus")


def test_info_nce_masks_other_queries_of_the_same_moment():
    # rows 0 and 1 describe the same moment: neither is a negative of the other
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = info_nce(emb, emb, 1.0, same_moment(torch.tensor([5, 5, 7])), symmetric=False)
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(1 + 2 * math.exp(-1))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_l2_is_zero_on_the_old_embedding_and_four_on_its_opposite():
    l2 = COMPAT_LOSSES.get("l2")()
    assert l2(EYE, EYE, EYE, EYE, IDS).item() == 0.0
    assert l2(-EYE, -EYE, EYE, EYE, IDS).item() == pytest.approx(4.0)
    assert l2(-EYE, EYE, EYE, EYE, IDS).item() == pytest.approx(2.0)  # moments off, sentences on


def test_bct_classifies_the_new_embedding_with_the_old_prototypes():
    bct = build_compat_loss("bct", {"temperature": None})
    bct.prepare(reference(EYE, temperature=0.5))  # classes = the 3 old moment embeddings, old tau = 0.5
    on_own = bct(EYE, EYE, EYE, EYE, IDS).item()
    assert on_own == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-5)  # -log e^2 / (e^2 + 2 e^0)
    shuffled = EYE[[1, 2, 0]]
    assert bct(shuffled, shuffled, EYE, EYE, IDS).item() > on_own + 1.0
    with pytest.raises(RuntimeError, match="prepare"):
        build_compat_loss("bct")(EYE, EYE, EYE, EYE, IDS)


def test_ract_is_lowest_when_the_new_embedding_sits_on_its_own_old_embedding():
    ract = build_compat_loss("ract", {"temperature": 0.5})
    on_own = ract(EYE, EYE, EYE, EYE, IDS).item()
    # each anchor: positive e^{1/0.5}; 2 old and 2 new negatives at similarity 0
    assert on_own == pytest.approx(math.log(1 + 4 * math.exp(-2)), rel=1e-5)
    shuffled = EYE[[1, 2, 0]]
    assert ract(shuffled, shuffled, EYE, EYE, IDS).item() > on_own + 1.0


def test_ract_penalises_new_embeddings_crowding_each_other_where_bct_does_not():
    # new moment 1 moves towards new moment 0 while both stay equally close to their own old embeddings
    old = EYE
    spread = EYE.clone()
    crowded = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    ract = build_compat_loss("ract", {"temperature": 0.5})
    assert ract(crowded, spread, old, old, IDS) > ract(spread, spread, old, old, IDS)


def test_ract_hardest_k_and_same_moment_mask():
    emb = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    new = F.normalize(emb + 0.3 * torch.randn(6, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
    ids = torch.arange(6)
    full = build_compat_loss("ract", {"temperature": 0.1})(new, new, emb, emb, ids)
    hardest = build_compat_loss("ract", {"temperature": 0.1, "hardest_k": 2})(new, new, emb, emb, ids)
    assert hardest < full  # fewer negatives in the denominator
    # two queries of one moment are no negatives of each other: by hand, with tau = 0.5
    emb = EYE[[0, 0, 1]]
    loss = build_compat_loss("ract", {"temperature": 0.5})(emb, emb, emb, emb, torch.tensor([0, 0, 1]))
    expected = (2 * math.log(1 + 2 * math.exp(-2)) + math.log(1 + 4 * math.exp(-2))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_propagation_inside_a_class_by_hand():
    # two samples: each one's only neighbour is the other, A = [[0, 1], [1, 0]];
    # (1 - 0.5)(I - 0.5 A)^-1 = [[2/3, 1/3], [1/3, 2/3]]: every old sample keeps weight 1 in the sum
    old = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    new = torch.randn(1, 2, 2)
    proto = propagate_within_classes(old, new, torch.ones(1, 2, dtype=torch.bool), lam=0.5)
    torch.testing.assert_close(proto, F.normalize(torch.tensor([[1.0, 1.0]]), dim=-1))


def test_propagation_down_weights_the_sample_the_new_model_sets_apart():
    old = torch.eye(3)[None]  # three old samples of one class, in three directions
    new = F.normalize(torch.tensor([[[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]]]), dim=-1)  # the third is far off
    mask = torch.ones(1, 3, dtype=torch.bool)
    proto = propagate_within_classes(old, new, mask, lam=0.9, temperature=0.1)[0]
    assert proto[2] < 0.1 and proto[0] > 0.65 and proto[1] > 0.65
    # lam = 0: no propagation, the mean of the old samples
    torch.testing.assert_close(propagate_within_classes(old, new, mask, lam=0.0)[0], torch.full((3,), 3 ** -0.5))
    # padding is ignored, and no edge leaves a class: another class's samples change nothing
    padded = propagate_within_classes(torch.cat([old, torch.ones(1, 1, 3)], 1), torch.cat([new, torch.ones(1, 1, 2)], 1),
                                      torch.tensor([[True, True, True, False]]), lam=0.9, temperature=0.1)[0]
    torch.testing.assert_close(padded, proto)
    two = propagate_within_classes(torch.cat([old, torch.rand(1, 3, 3)]), torch.cat([new, torch.rand(1, 3, 2)]),
                                   torch.ones(2, 3, dtype=torch.bool), lam=0.9, temperature=0.1)
    torch.testing.assert_close(two[0], proto)


def test_unibct_refines_with_the_new_models_embeddings_during_training():
    g = torch.Generator().manual_seed(3)
    old_moments = F.normalize(torch.randn(3, 4, generator=g), dim=-1)
    old_sentences = F.normalize(torch.randn(5, 4, generator=g), dim=-1)
    query_moment = torch.tensor([0, 0, 1, 2, 2])
    loss = build_compat_loss("unibct", {"lam": 0.5, "graph_temperature": 0.1})
    loss.prepare(OldReference(old_moments, old_sentences, query_moment, 0.1))
    assert loss.members.tolist() == [[0, 3, 4], [1, 5, 0], [2, 6, 7]]
    assert loss.member_mask.tolist() == [[True, True, True], [True, True, False], [True, True, True]]
    torch.testing.assert_close(loss.classifier, old_moments)  # before the first step: plain BCT
    new_m, new_s = F.normalize(torch.randn(2, 4, generator=g), dim=-1), F.normalize(torch.randn(2, 4, generator=g), dim=-1)
    with pytest.raises(ValueError, match="query_ids"):
        loss(new_m, new_s, old_moments[[0, 0]], old_sentences[[0, 1]], torch.tensor([0, 0]))
    value = loss(new_m, new_s, old_moments[[0, 0]], old_sentences[[0, 1]], torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert torch.isfinite(value)
    torch.testing.assert_close(loss.bank[[0, 3, 4]], torch.stack([new_m[1], new_s[0], new_s[1]]))
    # class 0 was refined with the new embeddings just written; its members' old embeddings set the prototype
    expected = propagate_within_classes(loss.old_nodes[[0, 3, 4]][None], loss.bank[[0, 3, 4]][None],
                                        torch.ones(1, 3, dtype=torch.bool), 0.5, 0.1)[0]
    torch.testing.assert_close(loss.classifier[0], expected)
    assert not torch.allclose(loss.classifier[0], old_moments[0])
