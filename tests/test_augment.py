import torch

from cadm_utils.method.augment import DsaParams, OPS, apply_dsa, crop_flip, sample_dsa


def test_shared_params_transform_real_and_synthetic_alike():
    x = torch.rand(1, 3, 16, 16)
    for seed in range(12):
        params = sample_dsa(1, torch.Generator().manual_seed(seed), shared=True)
        a = apply_dsa(x.expand(4, -1, -1, -1), params)
        b = apply_dsa(x.expand(7, -1, -1, -1), params)
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a, a[:1].expand_as(a))


def test_every_op_is_differentiable():
    for op in OPS:
        x = torch.rand(2, 3, 16, 16, requires_grad=True)
        params = DsaParams(op, {k: torch.full((1,), 0.3) for k in "abcd"})
        apply_dsa(x, params).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, op


def test_flip_op_mirrors():
    x = torch.rand(1, 3, 8, 8)
    params = DsaParams("flip", {k: torch.zeros(1) for k in "abcd"})  # a < 0.5: flip
    assert torch.allclose(apply_dsa(x, params), x.flip(3), atol=1e-6)


def test_crop_flip_keeps_shape_and_content():
    x = torch.rand(5, 3, 12, 12)
    y = crop_flip(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert not torch.equal(x, y)
