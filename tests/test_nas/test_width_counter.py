import pytest
import torch
import torch.nn as nn

from nasbnn_mm.models.backbones.width_resnet import WidthResNet18
from nasbnn_mm.models.backbones.width_vgg import WidthVGGSmall
from nasbnn_mm.models.layers.dorefa import DoReFaConv2d
from nasbnn_mm.nas.width_counter import WidthCost, count_width_cost

# Paper, Table 1 (VGG-small, CIFAR-10): FLOPs and memory (bits).
TABLE1 = {
    'fp': (608e6, 149e6),
    1: (13.2e6, 7.3e6),
    2: (45.3e6, 23.7e6),
    3: (96.2e6, 49.3e6),
    4: (166e6, 84.1e6),
}
# Paper, Table 2 (ResNet-18, ImageNet): FLOPs.
TABLE2 = {'fp': 1820e6, 1: 149e6, 2: 352e6, 3: 607e6, 4: 915e6}


def _vgg(ratio):
    with torch.device('meta'):
        if ratio == 'fp':
            model = WidthVGGSmall(1, binary=False, num_classes=10)
        else:
            model = WidthVGGSmall(ratio, num_classes=10)
    return count_width_cost(model, (1, 3, 32, 32))


def _resnet(ratio):
    with torch.device('meta'):
        if ratio == 'fp':
            model = WidthResNet18(1, binary=False, num_classes=1000)
        else:
            model = WidthResNet18(ratio, num_classes=1000)
    return count_width_cost(model, (1, 3, 224, 224))


@pytest.mark.parametrize('ratio', ['fp', 1, 2, 3, 4])
def test_table1_vgg_small(ratio):
    cost = _vgg(ratio)
    flops, memory = TABLE1[ratio]
    if ratio == 'fp':
        # printed to 3 significant digits
        assert round(cost.flops / 1e6) == 608
        assert round(cost.memory_bits / 1e6) == 149
    else:
        assert abs(cost.flops - flops) <= 0.02 * flops
        assert abs(cost.memory_bits - memory) <= 0.1e6
        # the memory is reproduced to the printed digit
        assert round(cost.memory_bits / 1e5) / 10 == memory / 1e6


@pytest.mark.parametrize('ratio', ['fp', 1, 2, 3, 4])
def test_table2_resnet18(ratio):
    cost = _resnet(ratio)
    assert abs(cost.flops - TABLE2[ratio]) <= 0.03 * TABLE2[ratio]


def test_vgg_hand_computed():
    """Every term written out for uniform a (32x32, 3x3 convs)."""
    for a in (1, 2):
        c = [
            int(128 * a),
            int(128 * a),
            int(256 * a),
            int(256 * a),
            int(512 * a),
            int(512 * a)
        ]
        hw = [32, 32, 16, 16, 8, 8]
        macs = [hw[i]**2 * 9 * cin * c[i] for i, cin in enumerate([3] + c[:5])]
        fc = c[5] * 16 * 10
        cost = _vgg(a)
        assert cost.fp_flops == macs[0] + fc
        assert cost.bops == sum(macs[1:])
        assert cost.flops == macs[0] + fc + sum(macs[1:]) / 64
        assert cost.fp_params == 27 * c[0] + fc
        assert cost.binary_params == sum(9 * cin * cout
                                         for cin, cout in zip(c[:5], c[1:]))
        assert cost.memory_bits == 32 * cost.fp_params + cost.binary_params
    assert _vgg(1) == WidthCost(13058048.0, 7303168, 3620864, 603979776, 85376,
                                4571136)


def test_resnet18_hand_computed():
    cost = _resnet(1)
    stem = 112 * 112 * 7 * 7 * 3 * 64
    fc = 512 * 1000
    body = (
        4 * 56 * 56 * 9 * 64 * 64  # stage 1
        + sum(s * s * 9 * c * (c // 2 + 3 * c)  # stages 2-4, 3x3
              for s, c in ((28, 128), (14, 256), (7, 512))) +
        sum(s * s * c * c // 2  # 1x1 downsample, binary
            for s, c in ((28, 128), (14, 256), (7, 512))))
    assert cost.fp_flops == stem + fc
    assert cost.bops == body
    fp = _resnet('fp')
    assert fp.fp_flops == stem + fc + body and fp.bops == 0
    # torchvision's ResNet-18 has 11689512 parameters: conv / FC weights,
    # 9600 BN affine parameters and 1000 FC biases
    assert fp.fp_params == 11689512 - 9600 - 1000


def test_uniform_scaling():
    """Binary MACs grow as a^2; the full-precision stem and FC as a."""
    costs = {a: _vgg(a) for a in (1, 2, 4)}
    assert costs[2].bops == 4 * costs[1].bops
    assert costs[4].bops == 16 * costs[1].bops
    assert costs[4].fp_flops == 4 * costs[1].fp_flops


def test_mixed_ratios_between_uniform():
    ratios = [0.25, 4, 0.5, 2, 1, 3]
    cost = _vgg(ratios)
    with torch.device('meta'):
        model = WidthVGGSmall(ratios, num_classes=10)
    c = model.channels
    hw = [32, 32, 16, 16, 8, 8]
    assert cost.bops == sum(hw[i]**2 * 9 * c[i - 1] * c[i]
                            for i in range(1, 6))
    assert cost.fp_flops == 1024 * 27 * c[0] + c[5] * 160


def test_real_model_batch_and_modes_restored():
    model = WidthVGGSmall(0.25, num_classes=10)
    model.train()
    model.stages[0].bn0.eval()
    cost = count_width_cost(model, (3, 3, 32, 32))
    assert cost == _vgg(0.25)
    assert model.training and not model.stages[0].bn0.training
    assert model.stages[1].conv2.training
    # hooks removed
    assert all(not m._forward_hooks for m in model.modules())


def test_toy_network_and_unused_layers():

    class Toy(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1, groups=2)
            self.bconv = DoReFaConv2d(4, 8, 1, stride=2, bias=False)
            self.fc = nn.Linear(8, 3)
            self.unused = nn.Linear(100, 100)

        def forward(self, x):
            x = self.bconv(self.conv(x))
            # called twice: FLOPs twice, weights once
            return self.fc(x.mean((2, 3))) + self.fc(x.amax((2, 3)))

    cost = count_width_cost(Toy(), (1, 2, 6, 6))
    assert cost.fp_flops == 36 * 4 * 9 + 2 * 24
    assert cost.bops == 9 * 8 * 4
    assert cost.fp_params == 36 + 24
    assert cost.binary_params == 32
    assert cost.memory_bits == 32 * 60 + 32
    assert cost.flops == cost.fp_flops + 288 / 64
    assert count_width_cost(
        Toy(), (1, 2, 6, 6), binary_divisor=1).flops == (
            cost.fp_flops + 288)


def test_unknown_ops_kind():

    class Int8Conv(nn.Conv2d):
        ops_kind = 'int8ops'

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Int8Conv(4, 4, 1))
    with pytest.raises(
            ValueError,
            match=r"1: ops_kind 'int8ops' not in "
            r"\('flops', 'bops'\)"):
        count_width_cost(model, (1, 3, 4, 4))
