import math

import pytest
import torch

from grounding.data.batch import make_batch
from grounding.losses.alignment import AttentionGuidance, IntraVideoClipAlignment, SentenceMomentContrastive
from grounding.losses.base import build_criterion
from grounding.losses.localization import (
    BoundaryCrossEntropy,
    InsideBCE,
    SpanIoU,
    SpanL1,
    soft_targets,
    temporal_iou,
)
from grounding.models.embedding import SharedEmbeddingSpace
from grounding.models.outputs import GroundingOutput, SpaceOutput, StageOutput


def _batch(same_video=False):
    """Two queries of 4 and 3 clips: targets clips 1-2 and clip 0."""
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    vid_index = torch.tensor([0, 0] if same_video else [0, 1])
    return make_batch(torch.zeros(2, 4, 1), mask if not same_video else mask[:1].expand(2, 4) & mask, vid_index,
                      torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool), torch.tensor([1, 0]),
                      torch.tensor([2, 0]), span=torch.tensor([[0.25, 0.75], [0.0, 1 / 3]]), duration=torch.ones(2))


def _stage(**fields):
    zeros = torch.zeros(2, 4)
    values = dict(start_logits=zeros, end_logits=zeros, inside_logits=zeros, span=torch.zeros(2, 2),
                  tokens=torch.zeros(2, 4, 1))
    values.update(fields)
    return StageOutput(**values)


def _output(clips, sentence, space, batch, stages=None):
    """An output whose clip encodings are ``clips`` (B, T, D) and sentence vectors ``sentence`` (B, D)."""
    projected = SpaceOutput(space.video_proj(clips), space.embed_text(sentence), space.temperature)
    return GroundingOutput(batch.clip_mask, clips, sentence, torch.zeros(2, 3), projected, stages or {}, "")


def test_boundary_ce_equals_hand_computed_value():
    stage = _stage(start_logits=torch.tensor([[0.0, math.log(3), 0, 0], [0, 0, 0, -1e30]]),
                   end_logits=torch.zeros(2, 4).masked_fill(~_batch().clip_mask, -1e30))
    value = BoundaryCrossEntropy().stage(stage, _batch())
    # start: -log(3/6) and -log(1/3); end: -log(1/4) and -log(1/3)
    expected = ((-math.log(0.5) - math.log(1 / 3)) / 2 + (-math.log(0.25) - math.log(1 / 3)) / 2) / 2
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_gaussian_targets_sum_to_one_and_ignore_padding():
    mask = torch.tensor([[True, True, True, False]])
    target = soft_targets(torch.tensor([2]), mask, sigma=1.0)
    assert target.sum().item() == pytest.approx(1.0) and target[0, 3] == 0 and target[0].argmax() == 2
    assert soft_targets(torch.tensor([1]), mask, 0.0).tolist() == [[0, 1, 0, 0]]


def test_span_losses_on_hand_cases():
    stage = _stage(span=torch.tensor([[0.25, 0.75], [0.5, 1.0]]))
    batch = _batch()
    # second: L1 = 0.5 + 2/3; IoU = 0 (disjoint)
    assert SpanL1().stage(stage, batch).item() == pytest.approx((0 + 0.5 + 2 / 3) / 2)
    assert SpanIoU().stage(stage, batch).item() == pytest.approx((0 + 1) / 2)
    # a stage that also refines its span: both spans are supervised, averaged
    refined = _stage(span=torch.tensor([[0.25, 0.75], [0.5, 1.0]]), refined_span=torch.tensor([[0.25, 0.75], [0.0, 1 / 3]]))
    assert SpanL1().stage(refined, batch).item() == pytest.approx(((0 + 0.5 + 2 / 3) / 2 + 0) / 2)
    assert temporal_iou(torch.tensor([[0.0, 0.5]]), torch.tensor([[0.25, 1.0]])).item() == pytest.approx(0.25 / 1.0)


def test_inside_bce_ignores_padded_clips():
    batch = _batch()
    logits = torch.zeros(2, 4)
    logits[1, 3] = 50.0  # padding: must not count
    assert InsideBCE().stage(_stage(inside_logits=logits), batch).item() == pytest.approx(math.log(2), rel=1e-5)


def _identity_space(dim=2):
    space = SharedEmbeddingSpace(dim, dim, dim, temperature=0.1, learn_temperature=False)
    with torch.no_grad():
        for proj in (space.video_proj, space.text_proj):
            proj.weight.copy_(torch.eye(dim))
            proj.bias.zero_()
    return space


def test_contrastive_is_low_when_pairs_match_and_high_when_swapped():
    space, batch = _identity_space(), _batch()
    clips = torch.zeros(2, 4, 2)
    clips[0, 1:3] = torch.tensor([1.0, 0.0])
    clips[1, 0] = torch.tensor([0.0, 1.0])
    matched = SentenceMomentContrastive()(_output(clips, torch.tensor([[1.0, 0], [0, 1.0]]), space, batch), batch)
    swapped = SentenceMomentContrastive()(_output(clips, torch.tensor([[0, 1.0], [1.0, 0]]), space, batch), batch)
    assert matched.item() == pytest.approx(math.log(1 + math.exp(-10)), abs=1e-4)
    assert swapped.item() == pytest.approx(10 + math.log(1 + math.exp(-10)), abs=1e-3)


def test_contrastive_does_not_use_same_video_queries_as_negatives():
    space, batch = _identity_space(), _batch(same_video=True)
    clips = torch.zeros(2, 4, 2)
    clips[:, :] = torch.tensor([1.0, 0.0])
    loss = SentenceMomentContrastive()(_output(clips, torch.tensor([[1.0, 0], [1.0, 0]]), space, batch), batch)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_clip_alignment_prefers_inside_clips_closer_to_the_sentence():
    space, batch = _identity_space(), _batch()
    good = torch.zeros(2, 4, 2)
    good[:, :] = torch.tensor([0.0, 1.0])
    good[0, 1:3] = torch.tensor([1.0, 0.0])
    good[1, 0] = torch.tensor([1.0, 0.0])
    bad = good.flip(-1)
    sentence = torch.tensor([[1.0, 0], [1.0, 0]])
    low = IntraVideoClipAlignment()(_output(good, sentence, space, batch), batch)
    high = IntraVideoClipAlignment()(_output(bad, sentence, space, batch), batch)
    assert low.item() < 1e-3 < 5 < high.item()


def test_attention_guidance_is_minus_log_of_mass_inside():
    batch = _batch()
    attn = torch.tensor([[0.1, 0.4, 0.4, 0.1], [0.5, 0.25, 0.25, 0.0]])
    output = _output(torch.zeros(2, 4, 2), torch.ones(2, 2), _identity_space(), batch, {"coarse": _stage(attn=attn)})
    value = AttentionGuidance()(output, batch)
    assert value.item() == pytest.approx((-math.log(0.8) - math.log(0.5)) / 2, rel=1e-5)


def test_criterion_logs_each_term_and_skips_zero_weights():
    criterion = build_criterion({"stage_weights": {"coarse": 0.5}, "span_l1": {"weight": 2.0}, "span_iou": {"weight": 0}})
    batch = _batch()
    stages = {"coarse": _stage(span=torch.tensor([[0.25, 0.75], [0.0, 1 / 3]])),
              "fine": _stage(span=torch.tensor([[0.0, 1.0], [0.0, 1 / 3]]))}
    total, logs = criterion(_output(torch.zeros(2, 4, 2), torch.ones(2, 2), _identity_space(), batch, stages), batch)
    assert set(logs) == {"coarse/span_l1", "fine/span_l1", "total"}
    assert total.item() == pytest.approx(2.0 * (0.5 * 0 + 1.0 * 0.25))


def _two_window_batch():
    """One query of 6 clips with two ground-truth windows: clips 0-1 and clips 4-5."""
    video_mask = torch.ones(1, 6, dtype=torch.bool)
    clips = torch.tensor([[[0, 1], [4, 5]]])
    spans = torch.tensor([[[0.0, 2 / 6], [4 / 6, 1.0]]])
    return make_batch(torch.zeros(1, 6, 1), video_mask, torch.tensor([0]), torch.zeros(1, 2, dtype=torch.long),
                      torch.ones(1, 2, dtype=torch.bool), clips[:, 0, 0], clips[:, 0, 1], spans[:, 0], torch.ones(1),
                      window_clips=clips, window_spans=spans, window_mask=torch.ones(1, 2, dtype=torch.bool))


def test_every_window_of_a_query_is_a_target():
    batch = _two_window_batch()
    assert batch.inside.tolist() == [[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]]
    assert batch.saliency.tolist() == batch.inside.tolist()  # no annotated saliency: the windows' clips
    # boundary CE: the start target is half on clip 0, half on clip 4: -(log p0 + log p4) / 2 per side
    logits = torch.zeros(1, 6)
    value = BoundaryCrossEntropy().stage(_stage(start_logits=logits, end_logits=logits), batch)
    assert value.item() == pytest.approx(math.log(6), rel=1e-5)
    # a span near the second window is compared with the second window only
    near_second = _stage(span=torch.tensor([[0.7, 1.0]]))
    assert SpanL1().stage(near_second, batch).item() == pytest.approx(abs(0.7 - 4 / 6), rel=1e-5)
    near_first = _stage(span=torch.tensor([[0.0, 0.3]]))
    assert SpanL1().stage(near_first, batch).item() == pytest.approx(abs(0.3 - 2 / 6), rel=1e-5)


def test_span_losses_supervise_the_chosen_spans():
    batch = _batch()
    stage = _stage(span=torch.tensor([[0.25, 0.75], [0.0, 1 / 3]]), refined_span=torch.tensor([[0.0, 1.0], [0.0, 1 / 3]]))
    assert SpanL1(spans="own").stage(stage, batch).item() == pytest.approx(0.0)
    assert SpanL1(spans="refined").stage(stage, batch).item() == pytest.approx(0.5 / 2)
    assert SpanL1(spans="both").stage(stage, batch).item() == pytest.approx(0.5 / 4)
    with pytest.raises(ValueError, match="spans"):
        SpanL1(spans="mine")


def test_saliency_ranking_prefers_the_annotated_order():
    from grounding.losses.localization import SaliencyRanking

    mask = torch.ones(1, 4, dtype=torch.bool)
    batch = make_batch(torch.zeros(1, 4, 1), mask, torch.tensor([0]), torch.zeros(1, 2, dtype=torch.long),
                       torch.ones(1, 2, dtype=torch.bool), torch.tensor([1]), torch.tensor([2]),
                       torch.tensor([[0.25, 0.75]]), torch.ones(1), saliency=torch.tensor([[0.0, 1.0, 0.5, 0.0]]),
                       saliency_labelled=torch.tensor([True]))
    assert batch.saliency.tolist() == [[0.0, 1.0, 0.5, 0.0]]  # annotated scores win over the window

    def loss(scores):
        output = _output(torch.zeros(1, 4, 2), torch.ones(1, 2), _identity_space(), batch)
        output.clip_mask = mask
        output.saliency = torch.tensor([scores])
        return SaliencyRanking(bce=0.0)(output, batch).item()

    # pairs (i > j by target), weighted by the target gap: (1,0) 1, (1,3) 1, (2,0) .5, (2,3) .5, (1,2) .5
    right, wrong = loss([-5.0, 5.0, 0.0, -5.0]), loss([5.0, -5.0, 0.0, 5.0])
    expected = (2 * math.log1p(math.exp(-10)) + 2 * 0.5 * math.log1p(math.exp(-5)) + 0.5 * math.log1p(math.exp(-5))) / 3.5
    assert right == pytest.approx(expected, rel=1e-4) and wrong > 5
