import os.path as osp

import pytest
import torch

from nasbnn_mm.models.algorithms import SandwichSupernet
from nasbnn_mm.models.utils import convert_official_state_dict
from nasbnn_mm.nas import SearchSpace
from nasbnn_mm.testing import load_tool

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

# (channels, depths, kernel sizes, groups, stride): the official cfg layout.
OFFICIAL_CFG = [
    ([8, 16], [1], [3], [1], 2),
    ([16, 24], [1, 2], [3, 5], [1, 2], 1),
    ([24, 32], [1, 2], [3, 5], [2, 4], 2),
]
SPACE = dict(
    input_size=16,
    in_channels=3,
    num_classes=5,
    stem=dict(channels=[8, 16], kernel_size=[3], groups=[1], stride=2),
    stages=[
        dict(depth=d, channels=c, kernel_size=k, groups=g, stride=s)
        for c, d, k, g, s in OFFICIAL_CFG[1:]
    ])


def _bn(prefix, c):
    return {
        f'{prefix}.bn.weight': (c, ),
        f'{prefix}.bn.bias': (c, ),
        f'{prefix}.bn.running_mean': (c, ),
        f'{prefix}.bn.running_var': (c, ),
        f'{prefix}.bn.num_batches_tracked': (),
    }


def official_shapes(num_classes=5):
    """Keys and shapes of the official SuperBNN for OFFICIAL_CFG, written
    from the official module layout (features.<stage>.<block>.<module>)."""
    shapes = {}
    c0 = max(OFFICIAL_CFG[0][0])
    p = 'features.0.0'
    shapes.update({
        f'{p}.conv.weight': (c0, 3, 3, 3),
        f'{p}.conv.w_scale': (c0, ),
        f'{p}.conv.w_init_state': (1, ),
        f'{p}.move1.bias': (1, c0, 1, 1),
        f'{p}.relu.prelu.weight': (c0, ),
        f'{p}.move2.bias': (1, c0, 1, 1),
    })
    shapes.update(_bn(f'{p}.bn', c0))
    cin = c0
    for i, (channels, depths, ks, groups, _) in enumerate(OFFICIAL_CFG[1:], 1):
        cout = max(channels)
        for j in range(max(depths)):
            p = f'features.{i}.{j}'
            shapes.update({
                f'{p}.move11.bias': (1, cin, 1, 1),
                f'{p}.binary_conv.weight':
                (cin, cin // min(groups), max(ks), max(ks)),
                f'{p}.binary_conv.scaling_factor': (cin, 1, 1, 1),
                f'{p}.binary_conv.fp2bin_{max(ks)}': (max(ks)**2, max(ks)**2),
                f'{p}.move12.bias': (1, cin, 1, 1),
                f'{p}.prelu1.prelu.weight': (cin, ),
                f'{p}.move13.bias': (1, cin, 1, 1),
                f'{p}.move21.bias': (1, cin, 1, 1),
                f'{p}.binary_conv1x1.weight': (cout, cin, 1, 1),
                f'{p}.binary_conv1x1.scaling_factor': (cout, 1, 1, 1),
                f'{p}.move22.bias': (1, cout, 1, 1),
                f'{p}.prelu2.prelu.weight': (cout, ),
                f'{p}.move23.bias': (1, cout, 1, 1),
            })
            if len(ks) > 1:
                shapes[f'{p}.binary_conv.matrix_5to3'] = (9, 9)
            shapes.update(_bn(f'{p}.bn1', cin))
            shapes.update(_bn(f'{p}.bn2', cout))
            cin = cout
    shapes['fc.weight'] = (num_classes, cin)
    shapes['fc.bias'] = (num_classes, )
    shapes['biggest_cand'] = (7, 6)
    shapes['smallest_cand'] = (7, 6)
    return shapes


def _official_state_dict():
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in official_shapes().items():
        if key.endswith('num_batches_tracked'):
            state['module.' + key] = torch.tensor(3)
        elif key.endswith('w_init_state'):
            state['module.' + key] = torch.ones(1)
        else:
            state['module.' + key] = torch.randn(shape, generator=generator)
    return state


def test_every_official_key_maps_onto_the_supernet():
    official = _official_state_dict()
    converted = convert_official_state_dict(official)
    # the official conventions (what the converter writes into meta)
    model = SandwichSupernet(
        backbone=dict(
            type='nasbnn_mm.SuperBNN',
            search_space=SPACE,
            stem_quantize_input=False,
            weight_norm='official',
            bi_transform='max_kernel'))
    ours = model.state_dict()
    assert set(converted) == set(ours)
    for key, value in converted.items():
        assert value.shape == ours[key].shape, key
    model.load_state_dict(converted, strict=True)


def test_values_are_reshaped_transposed_or_copied():
    official = _official_state_dict()
    converted = convert_official_state_dict(official)
    p = 'backbone.stages.1.0.'
    src = 'module.features.2.0.'
    assert torch.equal(converted[p + 'sign1.bias'],
                       official[src + 'move11.bias'].flatten())
    assert torch.equal(converted[p + 'conv1.bi_transforms.5.theta'],
                       official[src + 'binary_conv.fp2bin_5'].t())
    assert torch.equal(converted[p + 'conv1.kernel_transforms.5to3.matrix'],
                       official[src + 'binary_conv.matrix_5to3'])
    assert torch.equal(converted['backbone.stem.conv.weight_quantizer.step'],
                       official['module.features.0.0.conv.w_scale'])
    assert converted['backbone.stem.conv.weight_quantizer.initialized'] == 1
    assert torch.equal(converted['head.fc.weight'],
                       official['module.fc.weight'])
    assert not any('scaling_factor' in k or 'cand' in k for k in converted)


def test_unknown_official_key_is_named():
    with pytest.raises(KeyError, match='features.1.0.mystery'):
        convert_official_state_dict(
            {'features.1.0.mystery.weight': torch.zeros(1)})


def _converter():
    return load_tool('model_converters', 'nasbnn_official_to_mm.py').main


def test_converter_tool_writes_a_weights_only_checkpoint(tmp_path, capsys):
    src, dst = tmp_path / 'official.pth.tar', tmp_path / 'converted.pth'
    torch.save(dict(state_dict=_official_state_dict(), epoch=7), src)
    assert _converter()([str(src), str(dst)]) == 0
    converted = torch.load(dst, weights_only=True)
    conventions = converted['meta'].pop('nasbnn_conventions')
    assert converted['meta'] == dict(
        source='official.pth.tar', converter='nasbnn_official', epoch=7)
    assert conventions == dict(
        weight_norm='official',
        stem_quantize_input=False,
        group_slicing='cyclic',
        bi_transform='max_kernel',
        search_space=SearchSpace.from_config('nasbnn_in1k').to_dict())
    expected = convert_official_state_dict(_official_state_dict())
    assert converted['state_dict'].keys() == expected.keys()
    assert f'-> {len(expected)} tensors: {dst}' in capsys.readouterr().out


@pytest.mark.parametrize('case',
                         ['missing', 'damaged', 'unknown key', 'no folder'])
def test_converter_tool_errors_are_one_line(tmp_path, capsys, case):
    src = tmp_path / 'official.pth.tar'
    dst = tmp_path / 'converted.pth'
    if case == 'damaged':
        src.write_text('not a checkpoint')
    elif case == 'unknown key':
        torch.save({'features.1.0.mystery.weight': torch.zeros(1)}, src)
    elif case == 'no folder':
        torch.save(dict(state_dict=_official_state_dict()), src)
        dst = tmp_path / 'nowhere' / 'converted.pth'
    assert _converter()([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('nasbnn_official_to_mm.py: error: ')
    assert len(err.strip().splitlines()) == 1
    assert str(src if case != 'no folder' else dst) in err
    assert not dst.exists()
