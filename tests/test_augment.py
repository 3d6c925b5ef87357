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


def test_cut_box_has_the_cutmix_side_and_is_clipped():
    from cadm_utils.method.augment import cut_box

    # keep 0.75: side √0.25 = 0.5 of 32 = 16 pixels, centred at (10, 20)
    assert cut_box(32, 32, 0.75, 10, 20) == (2, 18, 12, 28)
    # near the corner the box is clipped to the image
    assert cut_box(32, 32, 0.75, 3, 30) == (0, 11, 22, 32)
    # keep 1: no box
    top, bottom, left, right = cut_box(32, 32, 1.0, 5, 5)
    assert (bottom - top) * (right - left) == 0


def test_cutmix_pastes_one_box_from_the_partner_and_reports_the_kept_share():
    from cadm_utils.method.augment import cutmix

    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 16, 16).clone()
    labels = torch.arange(8)  # image i is filled with the value i
    ratios = []
    for seed in range(20):
        mixed, partner_labels, ratio = cutmix(x, labels, torch.Generator().manual_seed(seed))
        ratios.append(ratio)
        if ratio == 1.0:  # no mix: the batch untouched
            assert torch.equal(mixed, x) and torch.equal(partner_labels, labels)
            continue
        own = mixed == labels.view(8, 1, 1, 1).float()
        from_partner = mixed == partner_labels.view(8, 1, 1, 1).float()
        assert bool((own | from_partner).all())  # a pixel is the image's own or its partner's
        moved = labels != partner_labels
        own_share = own[moved].float().mean(dim=(1, 2, 3))  # of each image with another partner
        torch.testing.assert_close(own_share, torch.full_like(own_share, ratio))
    assert 0 < sum(r < 1 for r in ratios) < len(ratios)  # some batches mixed, some not (p 0.5)
    assert cutmix(x, labels, torch.Generator().manual_seed(0), p=0.0)[2] == 1.0
