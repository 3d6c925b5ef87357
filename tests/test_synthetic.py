import pytest
import torch

from cadm_utils.data import leave_one_domain_out, load_dataset
from cadm_utils.errors import ConfigError
from cadm_utils.method.synthetic import decode, encode, init_from_real


@pytest.fixture(scope="module")
def task():
    return leave_one_domain_out(load_dataset("embedded"), "P")


def test_decode_shapes_and_tile_order():
    images = torch.zeros(2, 3, 8, 8)
    images[0, :, :4, 4:] = 1.0  # top-right tile of image 0
    out = decode(images, 2)
    assert out.shape == (8, 3, 8, 8)
    assert out[1].eq(1.0).all()  # tile 1 (row-major) is the top-right one, upsampled
    assert out[0].eq(0).all() and out[2:].eq(0).all()


def test_decode_passes_gradient_to_every_pixel():
    images = torch.rand(3, 3, 16, 16, requires_grad=True)
    decode(images, 2).square().sum().backward()
    assert images.grad.shape == images.shape
    assert (images.grad != 0).all()


def test_decoding_one_class_gives_its_rows_of_the_whole_decoded_set():
    """The per-class loop decodes only the class's stored images (distill.py): the same
    sub-images, in the same order, as the class's rows of the whole set decoded."""
    images = torch.rand(6, 3, 8, 8)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    decoded_labels = labels.repeat_interleave(4)
    for c in range(3):
        alone = decode(images[(labels == c).nonzero().flatten()], 2)
        assert torch.equal(alone, decode(images, 2)[(decoded_labels == c).nonzero().flatten()])


def test_encode_then_decode_recovers_constant_tiles():
    subs = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 8, 8)
    assert torch.allclose(decode(encode(subs, 2), 2), subs)


def test_init_equal_domains_per_class_and_real_pixels(task):
    generator = torch.Generator().manual_seed(0)
    synthetic = init_from_real(task.train, task.source_domains, ipc=2, factor=2,
                               generator=generator)
    images, labels, domains = synthetic.decoded()
    assert synthetic.images.shape == (5 * 2, 3, 32, 32)
    assert images.shape == (5 * 2 * 4, 3, 32, 32)
    assert labels.tolist() == [c for c in range(5) for _ in range(8)]
    for c in range(5):
        per_domain = torch.bincount(domains[labels == c], minlength=4)
        # 8 sub-images over 3 source domains round-robin: 3, 3, 2; target domain absent
        assert sorted(per_domain[task.source_domains].tolist()) == [2, 3, 3]
        assert per_domain[2] == 0
    assert 0 <= synthetic.images.min() and synthetic.images.max() <= 1


def test_ipc1_holds_one_sub_image_per_domain_round_robin(task):
    synthetic = init_from_real(task.train, task.source_domains, 1, 2, torch.Generator().manual_seed(0))
    assert synthetic.sub_domains[:4].tolist() == [0, 1, 3, 0]


@pytest.mark.parametrize("ipc, factor, message", [(0, 2, "IPC must be at least 1"),
                                                   (500, 2, "impossible IPC 500"),
                                                   (1, 3, "does not divide")])
def test_impossible_settings(task, ipc, factor, message):
    with pytest.raises(ConfigError, match=message):
        init_from_real(task.train, task.source_domains, ipc, factor, torch.Generator())
