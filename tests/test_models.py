import torch
import torch.nn as nn

from cadm_utils.method.models import DomainAwareResNet, grad_reverse


def test_grl_is_identity_forward_and_flips_scaled_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_reverse(x, 0.25)
    assert torch.equal(y, x)
    upstream = torch.randn(3, 4)
    y.backward(upstream)
    assert torch.allclose(x.grad, -0.25 * upstream)


def test_small_stem_shapes_and_width_multiplier():
    model = DomainAwareResNet(n_classes=7, n_domains=3, width=8, resolution=32)
    assert model.channels == [8, 16, 32, 64]
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.stem)
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].stride == (1, 1)
    features = model.block_features(torch.rand(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in features] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    logits = model.domain_logits(features, reverse=False)
    assert [tuple(z.shape) for z in logits] == [(2, 3)] * 4
    assert model.head_weight(2).shape == (3, 32)


def test_standard_width_is_resnet18_size():
    model = DomainAwareResNet(n_classes=1000, n_domains=4, width=64, resolution=224)
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("domain"))
    assert backbone == 11_689_512  # torchvision resnet18


def test_split_forward_equals_full_forward():
    model = DomainAwareResNet(5, 4, width=8, resolution=32).eval()
    x = torch.rand(3, 3, 32, 32)
    for block in range(4):
        h = model.run_blocks(x, 0, block + 1)
        out = model.pool(model.run_blocks(h, block + 1, 4))
        assert torch.allclose(out, model.embed(x), atol=1e-6)


def test_domain_heads_receive_reversed_gradient_in_backbone():
    torch.manual_seed(0)
    model = DomainAwareResNet(5, 4, width=8, resolution=32).train()
    x = torch.rand(4, 3, 32, 32)
    features = model.block_features(x)
    (model.domain_logits(features, reverse=False)[3].sum()).backward()
    plain = model.blocks[3][1].conv2.weight.grad.clone()
    model.zero_grad()
    features = model.block_features(x)
    (model.domain_logits(features, reverse=True)[3].sum()).backward()
    reversed_grad = model.blocks[3][1].conv2.weight.grad
    assert torch.allclose(reversed_grad, -0.25 * plain, atol=1e-6)


def test_evaluation_nets_shapes_and_sizes():
    import pytest
    import torchvision

    from cadm_utils.errors import ConfigError
    from cadm_utils.method.models import EVAL_NETS, build_eval_net

    for resolution in (32, 64):
        for name in EVAL_NETS:
            net = build_eval_net(name, 7, 3, resolution, width=8).eval()
            assert net(torch.rand(2, 3, resolution, resolution)).shape == (2, 7), name
    full = build_eval_net("resnet50", 1000, 4, 224, width=64)
    backbone = sum(p.numel() for n, p in full.named_parameters() if not n.startswith("domain"))
    assert backbone == sum(p.numel() for p in torchvision.models.resnet50().parameters())
    convnet = build_eval_net("convnet", 10, 3, 32, width=64)
    assert convnet.classifier.in_features == 128 * 4 * 4  # ConvNet-3, width 128, 32 px
    with pytest.raises(ConfigError, match="unknown evaluation network 'lenet'"):
        build_eval_net("lenet", 7, 3, 32, 8)
