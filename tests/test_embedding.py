import pytest
import torch

from grounding.models.embedding import SharedEmbeddingSpace, soft_clamp


def test_interface_shapes_norms_and_temperature():
    space = SharedEmbeddingSpace(video_dim=6, text_dim=4, embed_dim=5, temperature=0.5, learn_temperature=False)
    v = space.embed_video(torch.randn(3, 7, 6))  # clips
    t = space.embed_text(torch.randn(2, 4))  # sentences
    assert v.shape == (3, 7, 5) and t.shape == (2, 5)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3, 7))
    sim = space.similarity(t, v[:, 0])
    assert sim.shape == (2, 3)
    torch.testing.assert_close(sim, (t @ v[:, 0].T) / 0.5)  # a fixed temperature is used as given
    assert space.similarity(t, t).diagonal().tolist() == pytest.approx([2.0, 2.0], rel=1e-5)


def test_pool_moment_averages_inside_clips_only():
    clips = torch.arange(12.0).view(1, 4, 3)
    mask = torch.tensor([[False, True, True, False]])
    assert SharedEmbeddingSpace.pool_moment(clips, mask).tolist() == [[4.5, 5.5, 6.5]]
    assert SharedEmbeddingSpace.pool_moment(clips, torch.zeros(1, 4, dtype=torch.bool)).tolist() == [[0, 0, 0]]


def test_soft_clamp_is_the_identity_inside_and_bounded_outside():
    x = torch.tensor([-50.0, -3.0, -1.0, 0.5, 50.0])
    out = soft_clamp(x, -2.0, 0.0)
    torch.testing.assert_close(out[[0, 2, 4]], torch.tensor([-2.0, -1.0, 0.0]), atol=1e-4, rtol=0)
    assert -2.0 < out[1] < -1.9 and -0.1 < out[3] < 0.0


def test_learnable_temperature_starts_at_the_floor_and_still_moves_up():
    space = SharedEmbeddingSpace(3, 3, 3, temperature=1e-4)
    assert space.log_temperature.requires_grad
    assert space.temperature.item() == pytest.approx(0.01, rel=0.1)  # started at the bound
    optimizer = torch.optim.SGD(space.parameters(), lr=0.5)
    start = space.temperature.item()
    for _ in range(5):  # a loss that wants a larger temperature: its gradient must reach the parameter
        loss = -space.temperature.log()
        optimizer.zero_grad()
        loss.backward()
        assert space.log_temperature.grad.abs().item() > 1e-3
        optimizer.step()
    assert space.temperature.item() > start * 2
