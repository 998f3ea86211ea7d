"""The relation cue: where the reference event is, relative to each clip, reaches the fine stage; off, it costs nothing."""

from __future__ import annotations

import math

import pytest
import torch

from grounding.models.relation import side_mass
from tests.test_models import _batch, _model


def test_side_mass_is_the_decayed_reference_before_and_after_each_clip():
    reference = torch.zeros(1, 10)
    reference[0, 5] = 1.0
    mask = torch.ones(1, 10, dtype=torch.bool)
    mass = side_mass(reference, mask, scales=(0.1, 0.5))  # decay lengths 1 and 5 clips
    before, after = mass[0, :, :2], mass[0, :, 2:]
    assert before[7].tolist() == pytest.approx([math.exp(-2), math.exp(-2 / 5)])  # the reference is 2 clips before
    assert after[3].tolist() == pytest.approx([math.exp(-2), math.exp(-2 / 5)])
    assert before[:6].abs().sum() == 0 and after[5:].abs().sum() == 0  # strictly before / after
    short = mask.clone()
    short[0, 8:] = False  # padded clips: no mass, and the decay length follows the valid clips
    assert side_mass(reference, short, scales=(0.5,))[0, 7, 0] == pytest.approx(math.exp(-2 / 4))


def test_the_cue_reaches_the_fine_stage_and_off_it_has_no_parameters():
    off, on = _model(), _model(relation_cue=True).train()
    assert not any(name.startswith("relation.") for name, _ in off.named_parameters())
    batch = _batch()
    out = on(batch)
    reference = out.stages["fine"].reference.detach()
    assert reference.shape == (4, 10) and float(reference.min()) >= 0 and float(reference.max()) <= 1
    assert on.relation.match_scale.grad is None
    assert off(batch).stages["fine"].reference is None
    out.stages["fine"].start_logits.sum().backward()  # the cue feeds the fine stage: its every part gets a gradient
    for part in (on.relation.context, on.relation.embed, on.relation.gate):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), type(part).__name__
    assert on.relation.match_scale.grad.abs() > 0 and on.embedding.text_proj is not None


def test_the_context_avoids_the_words_the_sentence_rests_on():
    from grounding.models.relation import RelationCue

    cue = RelationCue(8)
    words = torch.eye(8)[:4].unsqueeze(0)  # (1, 4, 8): four orthogonal words
    mask = torch.ones(1, 4, dtype=torch.bool)
    word_attn = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # the sentence vector is the first word only
    context = cue.context_vector(words, mask, torch.zeros(1, 8), word_attn).detach()
    assert float(context[0, 0]) == pytest.approx(0.0) and float(context[0, 1:4].sum()) == pytest.approx(1.0)


def test_the_reference_is_pushed_off_the_target_and_costs_nothing_without_a_cue():
    from grounding.losses.relation import ReferenceOffTarget

    batch = _batch()
    term = ReferenceOffTarget()
    with torch.no_grad():
        assert float(term(_model()(batch), batch)) == 0.0
    on = _model(relation_cue=True).train()
    value = term(on(batch), batch)
    assert float(value.detach()) > 0
    value.backward()
    assert on.relation.context.proj.weight.grad.abs().sum() > 0
