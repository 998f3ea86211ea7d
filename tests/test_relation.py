"""The relation cue: where the reference event is, relative to each clip, reaches the fine stage; off, it costs nothing."""

from __future__ import annotations

import math

import pytest
import torch

from grounding.models.relation import side_mass
from tests.test_models import SMALL, _batch, _model


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


def test_word_side_features_are_each_words_mass_before_after_and_at_each_clip():
    from grounding.models.relation import word_side_features

    grounding = torch.zeros(1, 2, 10)
    grounding[0, 0, 5] = 1.0  # word 0 sits at clip 5
    grounding[0, 1] = 0.1  # word 1 is everywhere
    mask = torch.ones(1, 10, dtype=torch.bool)
    f = word_side_features(grounding, mask, scales=(0.1,))  # (1, 10, 2, 5): decayed before, all before, after.., at
    assert f.shape == (1, 10, 2, 5)
    assert f[0, 7, 0].tolist() == pytest.approx([math.exp(-2), 1.0, 0.0, 0.0, 0.0])  # word 0 lies 2 clips before 7
    assert f[0, 3, 0].tolist() == pytest.approx([0.0, 0.0, math.exp(-2), 1.0, 0.0])  # and 2 clips after 3
    assert f[0, 5, 0].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 10.0])  # at 5: mass times the 10 clips
    assert f[0, 0, 1, 1] == pytest.approx(0.0) and f[0, 0, 1, 3] == pytest.approx(0.9)  # evenly spread: position
    assert f[0, :, 1, 4].tolist() == pytest.approx([1.0] * 10)


def test_word_relations_ground_each_word_reach_the_fine_stage_and_off_cost_nothing(tmp_path):
    from grounding.inference.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
    from grounding.losses.relation import WordGroundingMIL, WordReferenceOffTarget
    from grounding.models import build_model

    batch = _batch()
    on = _model(word_relations=True).train()
    out = on(batch)
    g = out.word_grounding
    assert g.words.shape[:2] == batch.words.shape[:2] and g.clips.shape[:2] == batch.clip_mask.shape
    assert torch.allclose(g.words.norm(dim=-1), torch.ones(g.words.shape[:2]))
    out.stages["fine"].start_logits.sum().backward(retain_graph=True)  # the end task trains the readout ...
    for part in (on.word_relations.embed, on.word_relations.gate, on.word_relations.relation.proj):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0, part
    assert on.word_relations.select.weight.grad is None  # ... but does not choose the reference's words
    (WordGroundingMIL()(out, batch) + WordReferenceOffTarget()(out, batch)).backward()  # the two losses do
    for part in (on.word_relations.word_proj, on.word_relations.phrase, on.word_relations.select):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0, part

    # off: no parameters, no grounding, and a checkpoint whose config predates the flag loads and answers the same
    off = _model()
    assert not any(name.startswith("word_relations.") for name in off.state_dict())
    with torch.no_grad():
        before = off(batch)
        assert before.word_grounding is None and float(WordGroundingMIL()(before, batch)) == 0.0
    old_cfg = {"name": "ccman", **{k: v for k, v in SMALL.items()}}  # no word_relations key: an older config
    path = save_checkpoint(Checkpoint(off.state_dict(), {"model": old_cfg}), tmp_path / "old.pt")
    loaded = build_model(read_checkpoint(path).config["model"], vocab_size=30).eval()
    loaded.load_state_dict(read_checkpoint(path).model)  # strict: the same parameters, nothing new
    with torch.no_grad():
        again = loaded(batch)
    for name in ("start_logits", "end_logits", "inside_logits"):
        assert torch.equal(getattr(again.stages["fine"], name), getattr(before.stages["fine"], name))


def test_word_grounding_loss_is_the_words_infonce_over_distinct_videos():
    from types import SimpleNamespace

    from grounding.losses.relation import WordGroundingMIL
    from grounding.models.relation import WordGrounding

    clips = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # (3, 2, 2)
    words = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]]])  # one word per query
    vid = torch.tensor([0, 1, 1])  # queries 1 and 2 ask about the same video: one negative video each side
    g = WordGrounding(words, clips, torch.ones(3, 1, dtype=torch.bool), torch.ones(3, 2, dtype=torch.bool), vid,
                      torch.tensor(2.0))
    value = float(WordGroundingMIL()(SimpleNamespace(word_grounding=g), None))
    # query 0: best cosines 1 (own video) and 0 (video 1) -> -log(e^2 / (e^2 + 1));
    # queries 1, 2: the word's best cosine is 1 in both videos -> log 2
    expected = (math.log1p(math.exp(-2.0)) + 2 * math.log(2.0)) / 3
    assert value == pytest.approx(expected, rel=1e-6)


def test_word_evidence_is_sharpness_and_focus_share():
    from grounding.models.relation import word_evidence

    grounding = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]])  # a sharp word, an even one
    mask = torch.ones(1, 4, dtype=torch.bool)
    focus = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # the focus sits on the sharp word's clip
    ev = word_evidence(grounding, mask, focus)
    assert ev[0, :, 0].tolist() == pytest.approx([math.log(4.0), 0.0])  # log(max * T)
    assert ev[0, :, 1].tolist() == pytest.approx([4.0, 1.0])  # focus mass over the focus's mean
    assert word_evidence(grounding, mask, None)[0, :, 1].tolist() == pytest.approx([1.0, 1.0])


def test_the_reference_is_the_selected_words_grounded_together():
    """A clip must match every selected word to win (a conjunction): the decoy that shares one word with the
    reference loses to the reference, and a word every clip matches alike changes nothing but the sharpness."""
    from grounding.models.relation import WordGrounding, WordRelations

    part = WordRelations(8, 4, heads=1)
    words = torch.eye(4)[[0, 1, 3]].unsqueeze(0)  # "carrying", "towel", "a" (which every clip shows alike)
    clips = torch.tensor([[[1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0],
                           [0.0, 0.0, 2 ** 0.5, 1.0]]]) / 3 ** 0.5  # Y, a decoy sharing each word, a gap
    g = WordGrounding(words, clips, torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool),
                      torch.zeros(1, dtype=torch.long), torch.tensor(10.0))
    with torch.no_grad():
        both, one, with_a = (part.phrase_grounding(torch.tensor([[weights]]), g)[0, 0]
                             for weights in ([0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]))
    assert int(both.argmax()) == 0 and float(both[1]) == pytest.approx(float(both[2]))  # Y beats each decoy
    assert float(one[0]) == pytest.approx(float(one[1]), rel=1e-5)  # one word alone cannot tell Y from its decoy
    # "a" adds one cosine to every clip: half the weight on it halves the logits, the order stays
    assert torch.allclose(with_a, torch.softmax(torch.log(both) / 2, 0), atol=1e-6)


def test_a_word_is_grounded_with_its_neighbours_and_not_with_padding():
    from grounding.models.relation import WordRelations

    torch.manual_seed(0)
    part = WordRelations(8, 4)
    torch.nn.init.normal_(part.phrase.weight)  # a trained convolution (it starts at zero: words alone)
    lexical = torch.randn(1, 9, 8)
    clips, clip_mask, vid = torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool), torch.zeros(1, dtype=torch.long)
    word_mask = torch.ones(1, 9, dtype=torch.bool)
    word_mask[0, 7:] = False  # two padded words
    base = part.ground(clips, lexical, clip_mask, word_mask, vid)[1].words
    changed = lexical.clone()
    changed[0, 4] += 1.0  # another word in the middle
    moved = (part.ground(clips, changed, clip_mask, word_mask, vid)[1].words - base).abs().sum(-1)[0]
    assert (moved[2:7] > 0).all() and (moved[:2] == 0).all()  # two words on each side see it, farther ones do not
    padded = lexical.clone()
    padded[0, 7:] = 100.0  # what padding holds does not reach the real words
    same = part.ground(clips, padded, clip_mask, word_mask, vid)[1].words
    assert torch.allclose(same[0, :7], base[0, :7])


def test_word_references_are_pushed_off_the_target_and_cost_nothing_without_word_relations():
    from types import SimpleNamespace

    from grounding.losses.relation import WordReferenceOffTarget

    refs = torch.tensor([[[0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 0.5, 0.5]]])  # (1, 2 heads, 4 clips)
    g = SimpleNamespace(references=refs, clip_mask=torch.ones(1, 4, dtype=torch.bool))
    batch = SimpleNamespace(inside=torch.tensor([[1.0, 1.0, 0.0, 0.0]]))  # the moment is clips 0-1
    value = float(WordReferenceOffTarget()(SimpleNamespace(word_grounding=g, sentence=torch.zeros(1, 2)), batch))
    assert value == pytest.approx((-math.log(0.25) + 0.0) / 2)  # head 0 has 0.75 inside, head 1 none
    batch = _batch()
    with torch.no_grad():
        assert float(WordReferenceOffTarget()(_model()(batch), batch)) == 0.0
    on = _model(word_relations=True).train()
    loss = WordReferenceOffTarget()(on(batch), batch)
    loss.backward()  # it trains the selection (the groundings enter detached)
    assert on.word_relations.evidence_weight.grad.abs().sum() > 0
