import copy

import torch

from nasbnn_mm.models.layers import (BinaryConv2d, BiTransformation,
                                     binary_conv_weight)


def test_eq5_right_multiplication():
    torch.manual_seed(0)
    m = BiTransformation(3)
    with torch.no_grad():
        m.theta.normal_()
    w = torch.randn(4, 2, 3, 3)
    expected = torch.einsum('oip,pq->oiq', w.reshape(4, 2, 9),
                            m.theta).reshape(4, 2, 3, 3)
    torch.testing.assert_close(m(w), expected)


def test_identity_init_is_no_transformation():
    torch.manual_seed(0)
    with_bt = BinaryConv2d(4, 4, 3, padding=1, bi_transform=True)
    without = BinaryConv2d(4, 4, 3, padding=1, bi_transform=False)
    without.load_state_dict(with_bt.state_dict(), strict=False)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(with_bt(x), without(x))
    w = torch.randn(4, 4, 3, 3)
    assert torch.equal(with_bt.bi_transform(w), w)


def test_one_step_changes_binary_weights():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 8, 3, padding=1, bias=False)
    conv.weight.requires_grad_(False)
    before = binary_conv_weight(conv.weight, True, True,
                                conv.bi_transform).clone()
    theta_before = copy.deepcopy(conv.bi_transform.theta.detach())
    optim = torch.optim.SGD([conv.bi_transform.theta], lr=0.5)
    target = torch.randn(2, 8, 6, 6)
    loss = (conv(torch.randn(2, 4, 6, 6)) - target).pow(2).mean()
    loss.backward()
    optim.step()
    after = binary_conv_weight(conv.weight, True, True, conv.bi_transform)
    assert not torch.equal(conv.bi_transform.theta, theta_before)
    assert not torch.equal(after, before)


def test_non_square_kernel():
    m = BiTransformation((1, 3))
    assert m.theta.shape == (3, 3)
    w = torch.randn(2, 2, 1, 3)
    assert torch.equal(m(w), w)
