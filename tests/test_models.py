import pytest
import torch

from grounding.data.batch import make_batch
from grounding.losses import build_criterion
from grounding.models.baseline import SpanBaseline, SpanBaselineConfig
from grounding.models.ccman import CCMAN, CCMANConfig
from tests.conftest import TINY_MODEL

SMALL = dict(video_dim=12, **TINY_MODEL, dropout=0.0, local_window=2)
LOSS = {"stage_weights": {"coarse": 0.5, "fine": 1.0}, "boundary_ce": {"weight": 1.0}, "span_l1": {"weight": 1.0},
        "span_iou": {"weight": 1.0}, "inside_bce": {"weight": 1.0}, "contrastive": {"weight": 0.5},
        "clip_alignment": {"weight": 0.5}, "attention_guidance": {"weight": 0.5}}


def _model(kind="ccman", **cfg):
    torch.manual_seed(0)
    if kind == "ccman":
        return CCMAN(CCMANConfig(**{**SMALL, **cfg}), vocab_size=30).eval()
    small = {k: v for k, v in SMALL.items() if k != "local_window"}
    return SpanBaseline(SpanBaselineConfig(**{**small, **cfg}), vocab_size=30).eval()


def _as_batch(video, video_mask, words, word_mask, start=None, end=None):
    """One video per query; targets default to the first clip."""
    b = video.shape[0]
    start = torch.zeros(b, dtype=torch.long) if start is None else start
    end = start.clone() if end is None else end
    t = video.shape[1]
    return make_batch(video, video_mask, torch.arange(b), words, word_mask, start, end,
                      span=torch.stack([start / t, (end + 1) / t], 1), duration=torch.full((b,), float(t)),
                      vid=[f"v{i}" for i in range(b)])


def _inputs(b=3, t=10, n_words=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, t, 12, generator=g)
    words = torch.randint(2, 30, (b, n_words), generator=g)
    return _as_batch(video, torch.ones(b, t, dtype=torch.bool), words, torch.ones(b, n_words, dtype=torch.bool))


VARIANTS = [("ccman", {}), ("ccman", {"query_context": "lstm"}), ("ccman", {"stages": ["coarse"]}),
            ("ccman", {"stages": ["fine"]}), ("ccman", {"focus": False}), ("ccman", {"relation_cue": True}),
            ("ccman", {"word_relations": True}),
            ("baseline", {})]


@pytest.mark.parametrize("kind,cfg", VARIANTS, ids=[f"{k}-{c}" for k, c in VARIANTS])
def test_padding_never_changes_an_output(kind, cfg):
    model = _model(kind, **cfg)
    one = _inputs(b=1, t=7, n_words=4)
    video, words = one.video, one.words
    alone = model(one)
    # the same query padded to 12 clips and 9 words, next to a longer sample
    pv, pw = torch.zeros(2, 12, 12), torch.zeros(2, 9, dtype=torch.long)
    pv[0, :7], pw[0, :4] = video[0], words[0]
    pv[1], pw[1] = torch.randn(12, 12), torch.randint(2, 30, (9,))
    pvm, pwm = torch.zeros(2, 12, dtype=torch.bool), torch.zeros(2, 9, dtype=torch.bool)
    pvm[0, :7], pwm[0, :4], pvm[1], pwm[1] = True, True, True, True
    pv[0, 7:] = 99.0  # garbage in the padding must not leak
    padded = model(_as_batch(pv, pvm, pw, pwm))
    for name, stage in alone.stages.items():
        other = padded.stages[name]
        for key in ("start_logits", "end_logits", "inside_logits"):
            torch.testing.assert_close(getattr(other, key)[0, :7], getattr(stage, key)[0], atol=1e-4, rtol=1e-4)
            assert (getattr(other, key)[0, 7:] < -1e30).all()
        for key in ("span", "refined_span"):
            if getattr(stage, key) is not None:
                torch.testing.assert_close(getattr(other, key)[0], getattr(stage, key)[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded.sentence[0], alone.sentence[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded.space.moments(padded.clip_mask)[0], alone.space.moments(alone.clip_mask)[0],
                               atol=1e-4, rtol=1e-4)
    assert padded.video_tokens[0, 7:].abs().sum() == 0  # padded clips leave every encoder and stage as zeros
    for stage in padded.stages.values():
        assert stage.tokens[0, 7:].abs().sum() == 0


@pytest.mark.parametrize("stages,expected", [(["coarse", "fine"], {"coarse", "fine"}), (["coarse"], {"coarse"}),
                                             (["fine"], {"fine"})])
def test_stage_switches(stages, expected):
    out = _model(stages=stages)(_inputs())
    assert set(out.stages) == expected and out.final == ("fine" if "fine" in stages else "coarse")
    for stage in out.stages.values():
        assert stage.start_logits.shape == (3, 10) and stage.span.shape == (3, 2)
        spans = [stage.span] + ([stage.refined_span] if stage.refined_span is not None else [])
        for span in spans:
            assert (span >= 0).all() and (span <= 1).all() and (span[:, 0] <= span[:, 1]).all()
    assert (out.stages.get("fine") is None) or out.stages["fine"].refined_span is not None


def test_a_video_shared_by_queries_is_encoded_once_and_gives_the_same_outputs():
    model = _model()
    one_each = _inputs(b=2)
    shared = make_batch(one_each.video[:1], one_each.video_mask[:1], torch.tensor([0, 0]), one_each.words,
                        one_each.word_mask, one_each.start_idx, one_each.end_idx, one_each.span, one_each.duration)
    repeated = make_batch(one_each.video[:1].expand(2, -1, -1), one_each.video_mask[:1].expand(2, -1),
                          torch.arange(2), one_each.words, one_each.word_mask, one_each.start_idx, one_each.end_idx,
                          one_each.span, one_each.duration)
    a, b = model(shared), model(repeated)
    torch.testing.assert_close(a.decoded.start_logits, b.decoded.start_logits, atol=1e-5, rtol=1e-5)


def _batch(b=4, t=10):
    x = _inputs(b, t)
    return _as_batch(x.video, x.video_mask, x.words, x.word_mask, torch.tensor([0, 2, 5, 7])[:b], torch.tensor([3, 4, 9, 7])[:b])


def test_gradients_reach_both_stages_and_both_encoders():
    model = _model().train()
    batch = _batch()
    loss, _ = build_criterion(LOSS)(model(batch), batch)
    loss.backward()
    for part in (model.video_encoder, model.query_encoder, model.coarse, model.fine, model.embedding):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), type(part).__name__


def test_no_focus_cuts_the_fine_stage_off_the_coarse_scores():
    model = _model(focus=False).train()
    out = model(_inputs())
    out.stages["fine"].start_logits.sum().backward()
    assert model.coarse.heads.out.weight.grad is None or model.coarse.heads.out.weight.grad.abs().sum() == 0


@pytest.mark.slow
def test_ccman_overfits_a_tiny_batch():
    model = _model().train()
    criterion = build_criterion(LOSS)
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = criterion(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    fine = model(batch).stages["fine"]
    assert fine.start_logits.argmax(1).tolist() == batch.start_idx.tolist()
    assert fine.end_logits.argmax(1).tolist() == batch.end_idx.tolist()


def test_build_model_rejects_unknown_options():
    from grounding.errors import GroundingError
    from grounding.models import build_model

    with pytest.raises(GroundingError, match="unknown model option"):
        build_model({"name": "ccman", "dimm": 3}, vocab_size=5)
    # another model's option is not a typo: composing the baseline over the CCMAN part must work
    assert isinstance(build_model({"name": "span_baseline", "coarse_layers": 1, "dim": 16, "heads": 2}, vocab_size=5),
                      SpanBaseline)
    with pytest.raises(GroundingError, match="unknown model 'nope'"):
        build_model({"name": "nope"}, vocab_size=5)


def test_attention_biases_stay_finite_under_low_precision_autocast():
    from grounding.models.layers import MultiHeadAttention

    attn = MultiHeadAttention(16, 2)
    x = torch.randn(1, 4, 16)
    bias = torch.full((1, 4, 4), torch.finfo(torch.float32).min)  # fp32 minimum: -inf once cast to bf16
    bias[..., 0] = 0.0
    captured = {}
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        captured["mask"] = attn_mask
        return original(q, k, v, attn_mask=attn_mask, **kw)

    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = attn(x, None, torch.ones(1, 4, dtype=torch.bool), bias)
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
    assert captured["mask"].dtype == torch.bfloat16 and torch.isfinite(captured["mask"]).all()
    assert torch.isfinite(out).all()


def test_span_losses_reach_every_decoded_head():
    """Decoding reads each stage's start/end logits: the span losses must train them, not only a side regression."""
    model = _model().train()
    batch = _batch()
    criterion = build_criterion({"stage_weights": {"coarse": 0.5, "fine": 1.0}, "span_l1": {"weight": 1.0},
                                 "span_iou": {"weight": 1.0}})
    loss, _ = criterion(model(batch), batch)
    loss.backward()
    for stage in (model.coarse, model.fine):
        grad = stage.heads.out.weight.grad
        assert grad is not None and grad[:2].abs().sum() > 0  # rows 0, 1: the start and end logits
