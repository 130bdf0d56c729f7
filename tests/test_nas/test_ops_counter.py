import pytest
import torch
from torch import nn

from nasbnn_mm.models import NASBNN
from nasbnn_mm.nas import (OPS_KINDS, ArchSpec, SearchSpace, count_arch_ops,
                           count_module_ops, load_arch, sample_largest)

# Tables 2 and 6: OPs (M) of the searched models at 224x224.
PAPER_OPS = {'A': 21, 'B': 57, 'C': 87, 'D': 124, 'F': 180}
# Our counts of the presets (M), checked against the official code's
# formulas; E repeats D because the extracted Table 6 does (paper: 160M).
OUR_OPS = {
    'A': 20.77276,
    'B': 56.827816,
    'C': 86.967912,
    'D': 124.3114,
    'E': 124.3114,
    'F': 179.828008
}


class Int8Conv(nn.Conv2d):
    ops_kind = 'int8ops'


class FakeBinaryConv(nn.Conv2d):
    ops_kind = 'bops'


@pytest.mark.parametrize('name', sorted(OUR_OPS))
def test_presets_match_paper(space, name):
    ops = count_arch_ops(load_arch(name), space).ops_m
    assert ops == pytest.approx(OUR_OPS[name], abs=1e-9)
    if name in PAPER_OPS:
        assert abs(ops - PAPER_OPS[name]) <= 0.5


def test_two_layer_toy_by_hand():
    space = SearchSpace.from_dict(
        dict(
            input_size=8,
            in_channels=3,
            num_classes=5,
            stem=dict(channels=4, kernel_size=3, groups=1, stride=2),
            stages=[
                dict(depth=1, channels=8, kernel_size=3, groups=2, stride=2)
            ]))
    arch = ArchSpec.from_dict(dict(stem='c4_k3_g1', stages=[['c8_k3_g2']]))
    report = count_arch_ops(arch, space)
    # stem: 8x8 -> 4x4, 4 outputs x 16 positions x 3 inputs x 9 taps.
    # conv1: 4 -> 4 channels, 2 groups, 4x4 -> 2x2: 4 x 4 x (4/2 x 9).
    # conv2: 4 -> 8 channels at 2x2: 8 x 4 x 4. classifier: (8 + 1) x 5.
    assert [(r.name, r.kind, r.out_hw, r.macs) for r in report.rows] == [
        ('stem', 'int8ops', (4, 4), 1728),
        ('stages[0][0].conv1', 'bops', (2, 2), 288),
        ('stages[0][0].conv2', 'bops', (2, 2), 128),
        ('classifier', 'flops', (1, 1), 45),
    ]
    assert report.ops == 45 + 1728 / 8 + (288 + 128) / 64 == 267.5
    assert report.summary() == dict(
        flops_m=45e-6, int8ops_m=1728e-6, bops_m=416e-6, ops_m=267.5e-6)


def _build(arch, space):
    """A plain PyTorch network of ``arch``: only its convs and classifier.
    """
    stem = arch.stem
    layers = [
        Int8Conv(
            space.in_channels,
            stem.channels,
            stem.kernel_size,
            space.stem.stride,
            stem.kernel_size // 2,
            groups=stem.groups,
            bias=False)
    ]
    width = stem.channels
    for stage, choices in zip(arch.stages, space.stages):
        for j, layer in enumerate(stage):
            layers += [
                FakeBinaryConv(
                    width,
                    width,
                    layer.kernel_size,
                    choices.stride if j == 0 else 1,
                    layer.kernel_size // 2,
                    groups=layer.groups,
                    bias=False),
                FakeBinaryConv(width, layer.channels, 1, bias=False)
            ]
            width = layer.channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, space.num_classes))


@pytest.mark.parametrize('space_name, arch_name, size', [
    ('nasbnn_digits', 'largest', 32),
    ('nasbnn_digits', 'largest', 33),
    ('nasbnn_in1k', 'A', 35),
])
def test_analytic_equals_hooks(space_name, arch_name, size):
    space = SearchSpace.from_config(space_name)
    arch = sample_largest(space) if arch_name == 'largest' else load_arch(
        arch_name)
    analytic = count_arch_ops(arch, space, input_size=size)
    hooked = count_module_ops(_build(arch, space), (3, size, size))

    def fields(report):
        return [(r.kind, r.in_channels, r.out_channels, r.kernel_size,
                 r.groups, r.stride, r.out_hw, r.macs) for r in report.rows]

    assert fields(analytic) == fields(hooked)
    assert analytic.ops == hooked.ops


def test_count_at_other_input_size(space):
    arch = load_arch('A')
    # Every layer's positions scale by (448 / 224)^2, the classifier not.
    big = count_arch_ops(arch, space, input_size=(448, 448))
    small = count_arch_ops(arch, space)
    fc = small.total('flops')
    assert big.total('flops') == fc
    assert big.ops - fc == pytest.approx(4 * (small.ops - fc))


class _Toy(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.binary = FakeBinaryConv(4, 8, 3, padding=1, groups=2, bias=False)
        self.shared = FakeBinaryConv(8, 8, 1, bias=False)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.binary(self.bn(self.conv(x)))
        x = self.shared(self.shared(x))
        return self.fc(x.mean((2, 3)))


def test_module_counter_toy():
    model = _Toy().train()
    report = count_module_ops(model, (3, 8, 8))
    # conv: 4 x 4x4 outputs x (3 x 9 + 1 bias); binary: 8 x 16 x (4/2 x 9);
    # shared, called twice: 8 x 16 x 8; fc: 2 x (8 + 1).
    assert [(r.name, r.kind, r.macs) for r in report.rows] == [
        ('conv', 'flops', 1792),
        ('binary', 'bops', 2304),
        ('shared', 'bops', 1024),
        ('shared', 'bops', 1024),
        ('fc', 'flops', 18),
    ]
    assert report.rows[1].groups == 2 and report.rows[1].out_hw == (4, 4)
    assert report.ops == 1810 + 4352 / 64
    assert set(report.summary()) == {f'{k}_m' for k in OPS_KINDS} | {'ops_m'}
    # Counting runs in eval mode and leaves the model as it was.
    assert model.training and model.bn.training
    assert int(model.bn.num_batches_tracked) == 0
    assert 'total: flops 0.0018M' in report.table()


def test_module_counter_forward_and_errors():
    model = _Toy()
    report = count_module_ops(model, (3, 8, 8), forward=model.conv)
    assert [r.name for r in report.rows] == ['conv']

    class BadConv(nn.Conv2d):
        ops_kind = 'fp16'

    model.binary = BadConv(4, 8, 3, padding=1)
    with pytest.raises(ValueError) as e:
        count_module_ops(model, (3, 8, 8))
    assert str(e.value) == ("binary (BadConv): ops_kind 'fp16' not in "
                            "('flops', 'int8ops', 'bops')")
    # The hooks are gone after an error too.
    model.binary = FakeBinaryConv(4, 8, 3, padding=1)
    assert len(count_module_ops(model, (3, 8, 8)).rows) == 5


def _fields(report):
    return [(r.kind, r.in_channels, r.out_channels, r.kernel_size, r.groups,
             r.stride, r.out_hw, r.macs) for r in report.rows]


@pytest.mark.parametrize('space_name, arch_name, size', [
    ('nasbnn_digits', 'largest', (33, 47)),
    ('nasbnn_digits', 'smallest', (600, 1000)),
    ('nasbnn_in1k', 'A', (65, 97)),
])
def test_analytic_equals_real_backbone_any_size(space_name, arch_name, size):
    """The real NASBNN (shortcuts included) runs odd sizes; its hooked
    convs are the analytic rows but the classifier's."""
    space = SearchSpace.from_config(space_name)
    backbone = NASBNN(arch_name, space_name)
    analytic = count_arch_ops(backbone.arch, space, input_size=size)
    hooked = count_module_ops(backbone, (3, *size))
    assert _fields(hooked) == _fields(analytic)[:-1]


@pytest.mark.parametrize('size, sizes', [
    ((600, 1000), [(300, 500), (150, 250), (75, 125), (38, 63), (19, 32)]),
    ((800, 1333), [(400, 667), (200, 334), (100, 167), (50, 84), (25, 42)]),
])
def test_detection_sizes_round_up(space, size, sizes):
    """Every stride rounds up: ceil(H / s), as the strided convs and the
    shortcut pooling do."""
    report = count_arch_ops(load_arch('A'), space, input_size=size)
    out_hw = {r.name: r.out_hw for r in report.rows}
    assert out_hw['stem'] == sizes[0]
    for i, stage in enumerate(load_arch('A').stages):
        assert out_hw[f'stages[{i}][{len(stage) - 1}].conv2'] == sizes[i]


def test_report_parts_split_by_top_level_module():

    class Detector(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.backbone = _Toy()
            self.neck = FakeBinaryConv(2, 4, 1, bias=False)
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.backbone(x)[:, :, None, None]
            return self.head(self.neck(y).flatten(1))

    report = count_module_ops(Detector(), (3, 8, 8))
    parts = report.parts()
    assert list(parts) == ['backbone', 'neck', 'head']
    assert [len(p.rows) for p in parts.values()] == [5, 1, 1]
    # neck: 4 x 2 binary MACs; head: 3 x (4 + 1)
    assert parts['neck'].summary() == dict(
        flops_m=0., int8ops_m=0., bops_m=8e-6, ops_m=8e-6 / 64)
    assert parts['head'].ops == 15
    assert sum(p.ops for p in parts.values()) == report.ops
    lines = report.parts_table().splitlines()
    assert lines[0].split() == [
        'part', 'FLOPs', '(M)', 'Int8OPs', '(M)', 'BOPs', '(M)', 'OPs', '(M)',
        'share'
    ]
    assert [line.split()[0]
            for line in lines[1:]] == ['backbone', 'neck', 'head', 'total']
    assert lines[-1].split()[-1] == '100.0%'
