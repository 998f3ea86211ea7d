"""The BiCT forward adapter: starts as the identity, learns a known linear map from embeddings alone."""

import torch
import torch.nn.functional as F

from grounding.compat.adapter import ForwardAdapter, fit_adapter, forward_loss


def test_adapter_starts_as_the_identity_when_dims_agree():
    x = F.normalize(torch.randn(5, 6), dim=-1)
    torch.testing.assert_close(ForwardAdapter(6, 6, hidden=8)(x), x)


def test_adapter_learns_a_known_linear_map():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 6, generator=g) / 6**0.5  # old (6-d) -> new (4-d)
    old = torch.randn(512, 6, generator=g)
    adapter = ForwardAdapter(6, 4, hidden=16, normalize=False)
    history = fit_adapter(adapter, old, old @ a.t(), epochs=60, lr=2e-2, batch_size=128, contrast_weight=0.0)
    assert history[-1] < 0.01 * history[0]
    held_out = torch.randn(64, 6, generator=g)
    with torch.no_grad():
        error = (adapter(held_out) - held_out @ a.t()).norm() / (held_out @ a.t()).norm()
    assert error < 0.05


def test_adapter_with_sentences_makes_adapted_moments_retrievable():
    g = torch.Generator().manual_seed(0)
    new = F.normalize(torch.randn(40, 8, generator=g), dim=-1)
    rotation = torch.linalg.qr(torch.randn(8, 8, generator=g))[0]
    old = new @ rotation  # the old space is a rotation of the new one
    query_moment = torch.arange(40)
    adapter = ForwardAdapter(8, 8, hidden=16)
    fit_adapter(adapter, old, new, new.clone(), query_moment, epochs=80, lr=1e-2, batch_size=20, temperature=0.1)
    with torch.no_grad():
        adapted = adapter(old)
    assert ((new @ adapted.t()).argmax(1) == query_moment).float().mean() > 0.95


def test_forward_loss_terms():
    x = F.normalize(torch.randn(4, 3), dim=-1)
    assert forward_loss(x, x, contrast_weight=0.0).item() == 0.0
    assert forward_loss(x, x, x, temperature=0.1) > 0  # the contrastive term is never exactly zero
