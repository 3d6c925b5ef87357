import torch
import torch.nn.functional as F

from cadm_utils.method.losses import irm_penalty, mmd_loss, regularization_loss, symmetric_kl


def test_mmd_equals_loop_over_classes():
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(12, 5, generator=g), torch.randn(6, 5, generator=g)
    real_y = torch.tensor([0, 1, 2] * 4)
    syn_y = torch.tensor([0, 1, 2] * 2)
    expected = sum(((real[real_y == c].mean(0) - syn[syn_y == c].mean(0)) ** 2).sum()
                   for c in range(3))
    assert torch.allclose(mmd_loss(real, real_y, syn, syn_y, 3), expected)


def test_mmd_zero_for_matching_means_and_gradient_flows():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    syn = torch.tensor([[2.0, 3.0]], requires_grad=True)
    labels = torch.tensor([0, 0])
    loss = mmd_loss(real, labels, syn, torch.tensor([0]), 1)
    assert loss.item() == 0.0
    moved = (syn + 1).detach().requires_grad_(True)
    loss = mmd_loss(real, labels, moved, torch.tensor([0]), 1)
    loss.backward()
    assert torch.allclose(moved.grad, torch.tensor([[2.0, 2.0]]))  # d/dx ‖x − m‖² = 2(x − m)


def test_regularization_is_cross_entropy():
    logits, labels = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    manual = -torch.log_softmax(logits, 1)[torch.arange(5), labels].mean()
    assert torch.allclose(regularization_loss(logits, labels), manual)


def test_symmetric_kl_zero_for_identical_positive_otherwise():
    a = torch.randn(4, 6)
    assert symmetric_kl(a, a.clone()).abs().item() < 1e-7
    b = a + torch.randn(4, 6)
    value = symmetric_kl(a, b)
    p, q = a.softmax(1), b.softmax(1)
    manual = 0.5 * ((p * (p / q).log()).sum(1) + (q * (q / p).log()).sum(1)).mean()
    assert value.item() > 0
    assert torch.allclose(value, manual, atol=1e-6)
    assert torch.allclose(value, symmetric_kl(b, a))


def _scale_gradient(logits, labels):
    scale = torch.tensor(1.0, requires_grad=True)
    return torch.autograd.grad(F.cross_entropy(logits * scale, labels), scale)[0]


def test_irm_penalty_zero_at_optimal_scale_positive_otherwise():
    # per half: a right prediction at margin 2 and a wrong one at margin 2c, with c chosen
    # by bisection so that the risk is stationary in the scale (the scale-optimal classifier)
    labels = torch.tensor([0, 0, 1, 1])
    def logits_for(c):
        return torch.tensor([[1.0, -1.0], [1.0, -1.0], [c, -c], [c, -c]])
    low, high = 0.01, 2.0
    for _ in range(60):
        mid = (low + high) / 2
        if _scale_gradient(logits_for(mid)[0::2], labels[0::2]) < 0:
            low = mid
        else:
            high = mid
    optimal = logits_for((low + high) / 2)
    assert abs(irm_penalty(optimal, labels).item()) < 1e-8
    confident = torch.tensor([[3.0, -3.0], [3.0, -3.0], [-3.0, 3.0], [-3.0, 3.0]])
    wrong = torch.tensor([1, 1, 0, 0])  # every prediction wrong: raising the scale hurts
    penalty = irm_penalty(confident, wrong)
    assert penalty.item() > 0
    expected = _scale_gradient(confident[0::2], wrong[0::2]) * _scale_gradient(confident[1::2], wrong[1::2])
    assert torch.allclose(penalty, expected)
