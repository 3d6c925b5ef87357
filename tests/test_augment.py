import pytest
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


# ------------------------------------------------- the evaluation's DSA, as DM's DiffAugment
# DM's data are normalised when loaded (VICO-UoE/DatasetCondensation utils.py get_dataset),
# so its DSA sees (x − MEAN) / STD: every fill is the mean colour, brightness moves by a
# fraction of the channel's std. Checked here with the constants alone, not the code's
# normalisation.
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def mean_colour_images(n: int = 6, size: int = 16) -> torch.Tensor:
    return IMAGENET_MEAN.expand(n, 3, size, size).clone()


def largest_departure(augmented: torch.Tensor) -> torch.Tensor:
    """Per channel, the largest |pixel − MEAN| in units of that channel's STD."""
    return ((augmented - IMAGENET_MEAN).abs() / IMAGENET_STD).amax(dim=(0, 2, 3))


def every_operation_draw(n: int, seed: int = 0):
    """Each of DSA's six operations with per-image draws, extremes included."""
    generator = torch.Generator().manual_seed(seed)
    for op in OPS:
        values = {k: torch.rand(n, generator=generator) for k in "abcd"}
        values = {k: torch.cat([v[:-2], torch.tensor([0.0, 1.0])]) for k, v in values.items()}
        yield op, [DsaParams(op, values)]


def test_the_evaluations_dsa_keeps_a_mean_colour_image_within_half_a_std():
    from cadm_utils.method.augment import in_normalised_space

    for op, params in every_operation_draw(6):
        moved = largest_departure(in_normalised_space(mean_colour_images(), params))
        assert (moved <= 0.5 + 1e-5).all(), (op, moved)


def test_the_same_operations_on_pixels_leave_that_band():
    """The check above fails for DSA on [0, 1] pixels (black fills, brightness ±0.5)."""
    from cadm_utils.method.augment import apply_all

    escaped = {op for op, params in every_operation_draw(6)
               if (largest_departure(apply_all(mean_colour_images(), params)) > 0.5).any()}
    assert {"color", "crop", "cutout"} <= escaped


def test_the_evaluations_dsa_draws_keep_the_band_through_the_training_path():
    from cadm_utils.method.train import augment_batch

    generator = torch.Generator().manual_seed(3)
    for _ in range(40):  # every operation is drawn in 40 batches
        moved = largest_departure(augment_batch(mean_colour_images(), "dsa", generator))
        assert (moved <= 0.5 + 1e-5).all()
    pixels = [largest_departure(augment_batch(mean_colour_images(), "dsa_pixels", generator))
              for _ in range(40)]
    assert any((m > 0.5).any() for m in pixels)


def test_a_brightness_draw_moves_each_channel_by_its_std():
    from cadm_utils.method.augment import in_normalised_space

    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    b = torch.tensor([0.0, 0.3, 1.0])
    # saturation factor 2·0.5 = 1 and contrast factor 0.5 + 0.5 = 1: brightness alone
    brightness = DsaParams("color", {"a": b, "b": torch.full((3,), 0.5),
                                     "c": torch.full((3,), 0.5), "d": torch.zeros(3)})
    moved = in_normalised_space(x, [brightness]) - x
    expected = (b.view(3, 1, 1, 1) - 0.5) * IMAGENET_STD
    assert torch.allclose(moved, expected.expand_as(moved), atol=1e-5)


def test_the_evaluation_trains_with_the_dsa_its_profile_names():
    from cadm_utils.method.train import EvaluateConfig

    assert EvaluateConfig(epochs=2).train_config().augment == "dsa"
    assert EvaluateConfig(epochs=2, dsa="pixels").train_config().augment == "dsa_pixels"


def test_a_batch_draw_moves_every_image_of_the_batch_alike():
    """draws "batch" (DiffAugment's batchmode): copies of one image stay copies under every
    operation; draws "image" (DM's evaluation) sends them apart."""
    from cadm_utils.method.augment import dsa

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5)).expand(6, -1, -1, -1)
    apart = []
    for seed in range(12):
        shared = dsa(x, torch.Generator().manual_seed(seed), draws="batch", operations="all")
        assert torch.allclose(shared, shared[:1].expand_as(shared), atol=1e-6)
        own = dsa(x, torch.Generator().manual_seed(seed), draws="image")
        apart.append(not torch.allclose(own, own[:1].expand_as(own), atol=1e-6))
    assert any(apart)


def test_all_operations_run_every_operation_in_diffaugments_order(monkeypatch):
    """operations "all" (DiffAugment's mode 'M') applies the strategy
    'color_crop_cutout_flip_scale_rotate' in that order; "one" (mode 'S') one operation."""
    from cadm_utils.method import augment

    applied = []
    real = augment.apply_dsa
    monkeypatch.setattr(augment, "apply_dsa", lambda x, p: applied.append(p.op) or real(x, p))
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    augment.dsa(x, torch.Generator().manual_seed(1), operations="all")
    assert applied == "color_crop_cutout_flip_scale_rotate".split("_")
    applied.clear()
    augment.dsa(x, torch.Generator().manual_seed(1))
    assert len(applied) == 1


def test_every_ablated_draw_keeps_a_mean_colour_image_within_half_a_std():
    from cadm_utils.method.train import augment_batch

    generator = torch.Generator().manual_seed(4)
    for draws in ("image", "batch"):
        for operations in ("one", "all"):
            for _ in range(12):
                moved = largest_departure(augment_batch(mean_colour_images(), "dsa", generator,
                                                        draws, operations))
                assert (moved <= 0.5 + 1e-5).all(), (draws, operations)


def test_an_unknown_dsa_draw_is_refused_by_name():
    from cadm_utils.errors import ConfigError
    from cadm_utils.method.train import EvaluateConfig, TrainConfig

    with pytest.raises(ConfigError, match="dsa_draws must be one of image, batch"):
        EvaluateConfig(epochs=10, dsa_draws="row")
    with pytest.raises(ConfigError, match="unknown DSA draws 'row'"):
        TrainConfig(epochs=1, augment="dsa", dsa_draws="row")
