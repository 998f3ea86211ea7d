import pytest
import torch

from grounding.models.layers import (
    TABLE_LENGTH,
    BandBias,
    SinusoidalPositions,
    band_bias,
    dropout,
    sinusoidal_positions,
)


def test_cpu_dropout_keeps_the_expectation_and_the_rounded_rate():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = dropout(x, 0.1, training=True)
    kept = y > 0
    assert kept.float().mean().item() == pytest.approx(1 - 13 / 128, abs=2e-3)  # p rounded to 13/128
    assert torch.allclose(y[kept], torch.tensor(128 / 115))  # kept values scaled by 1 / (1 - 13/128)
    assert y.mean().item() == pytest.approx(1.0, abs=5e-3)
    assert len(y.unique()) == 2


def test_cpu_dropout_masks_are_independent_and_seeded():
    torch.manual_seed(1)
    a = dropout(torch.ones(64, 33, 7), 0.5, training=True) > 0  # numel not a multiple of 8
    b = dropout(torch.ones(64, 33, 7), 0.5, training=True) > 0
    torch.manual_seed(1)
    again = dropout(torch.ones(64, 33, 7), 0.5, training=True) > 0
    assert torch.equal(a, again) and not torch.equal(a, b)
    assert (a == b).float().mean().item() == pytest.approx(0.5, abs=0.02)  # uncorrelated masks agree half the time
    for lane in range(8):  # every byte of the 64-bit draw is a fair coin (the top byte has only 7 bits)
        assert a.flatten()[lane::8].float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_dropout_is_the_identity_in_eval_and_passes_gradients():
    x = torch.randn(4, 5, requires_grad=True)
    assert dropout(x, 0.3, training=False) is x
    y = dropout(x, 0.3, training=True)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)


def test_position_and_band_tables_equal_the_direct_formulas_beyond_the_buffer_too():
    positions = SinusoidalPositions(16)
    for length in (7, TABLE_LENGTH + 3):
        x = torch.zeros(2, length, 16)
        torch.testing.assert_close(positions(x)[1], sinusoidal_positions(length, 16))
    band = BandBias(2)
    for length in (9, TABLE_LENGTH + 1):
        assert torch.equal(band(length), band_bias(length, 2, torch.device("cpu")))
    assert band(5)[0].tolist()[:4] == [0.0, 0.0, 0.0, torch.finfo(torch.float32).min]


def test_residual_dropout_adds_the_dropped_branch():
    from grounding.models.layers import residual_dropout

    torch.manual_seed(0)
    x, branch = torch.full((400, 500), 2.0), torch.ones(400, 500)
    y = residual_dropout(x, branch, 0.1, training=True) - x
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(128 / 115)
    assert y.mean().item() == pytest.approx(1.0, abs=5e-3)
    assert torch.equal(residual_dropout(x, branch, 0.1, training=False), x + branch)
