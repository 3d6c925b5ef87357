import math

import pytest
import torch

from cadm_utils.errors import ConfigError
from cadm_utils.method.masking import activation_scores, channel_mask, masked_count


def test_scores_equal_eq5_on_hand_made_tensor():
    # two samples, three channels, 2x2 maps; two domains
    features = torch.tensor([
        [[[1., 3.], [5., 7.]], [[0., 0.], [0., 4.]], [[2., 2.], [2., 2.]]],
        [[[1., 1.], [1., 1.]], [[8., 0.], [0., 0.]], [[0., 0.], [0., 6.]]],
    ])
    weight = torch.tensor([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])
    domains = torch.tensor([1, 0])
    # by hand: GAP = [4, 1, 2] and [1, 2, 1.5]; rows W[1] and W[0]
    expected_raw = torch.tensor([[0.25 * 4, 3.0 * 1, -1.0 * 2], [1.0 * 1, -2.0 * 2, 0.5 * 1.5]])
    raw = activation_scores(features, weight, domains, normalize=False)
    assert torch.allclose(raw, expected_raw)
    scores = activation_scores(features, weight, domains)
    for row, expected in zip(scores, expected_raw):
        low, high = expected.min(), expected.max()
        assert torch.allclose(row, (expected - low) / (high - low))
    assert scores.min() >= 0 and scores.max() <= 1


@pytest.mark.parametrize("p_mask, channels", [(0.33, 64), (0.33, 10), (0.5, 8), (0.0, 16), (0.9, 3)])
def test_mask_has_exactly_floor_p_c_zeros(p_mask, channels):
    scores = torch.rand(32, channels, generator=torch.Generator().manual_seed(1))
    mask = channel_mask(scores, p_mask, torch.Generator().manual_seed(2))
    assert mask.shape == (32, channels)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    expected = math.floor(p_mask * channels + 1e-9)
    assert (mask == 0).sum(1).eq(expected).all()


def test_higher_scores_are_masked_more_often():
    scores = torch.linspace(0.05, 1.0, 20).repeat(4000, 1)
    mask = channel_mask(scores, 0.25, torch.Generator().manual_seed(0))
    masked_rate = (mask == 0).float().mean(0)
    # strongly increasing in the score: top quarter masked far more than bottom quarter
    assert masked_rate[-5:].mean() > 2 * masked_rate[:5].mean()
    correlation = torch.corrcoef(torch.stack([scores[0], masked_rate]))[0, 1]
    assert correlation > 0.95


def test_single_draw_probability_is_proportional_to_score():
    """With M = 1, key r^(1/s) selects channel j with probability s_j / Σ s."""
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4]).repeat(40000, 1)
    mask = channel_mask(scores, 0.25, torch.Generator().manual_seed(3))
    frequency = (mask == 0).float().mean(0)
    assert torch.allclose(frequency, scores[0] / scores[0].sum(), atol=0.01)


def test_zero_score_never_masked_while_positive_ones_remain():
    scores = torch.tensor([[0.0, 0.5, 1.0, 0.7]]).repeat(500, 1)
    mask = channel_mask(scores, 0.5, torch.Generator().manual_seed(0))
    assert (mask[:, 0] == 1).all()


def test_same_generator_state_same_mask():
    scores = torch.rand(4, 16)
    a = channel_mask(scores, 0.33, torch.Generator().manual_seed(5))
    b = channel_mask(scores, 0.33, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_invalid_p_mask():
    with pytest.raises(ConfigError, match="p_mask"):
        masked_count(1.0, 8)
    with pytest.raises(ConfigError, match="p_mask"):
        channel_mask(torch.rand(2, 8), -0.1)
