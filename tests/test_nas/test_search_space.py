import pytest
from mmengine.config import Config

from nasbnn_mm.nas import BUILTIN_SPACES, SearchSpace
from nasbnn_mm.utils import UserError

CONFIGS = 'configs/_base_/search_spaces'


def test_default_space_is_table1(space):
    assert space.input_size == (224, 224)
    assert space.in_channels == 3 and space.num_classes == 1000
    assert space.stem.channels == (24, 32, 48)
    assert (space.stem.kernel_size, space.stem.groups) == ((3, ), (1, ))
    assert space.stem.stride == 2
    assert [s.depth for s in space.stages] == [(2, 3), (2, 3), (2, 3), (8, 9),
                                               (2, 3)]
    assert [s.channels for s in space.stages] == [(48, 64, 96), (96, 128, 192),
                                                  (192, 256, 384),
                                                  (384, 512, 768),
                                                  (768, 1024, 1536)]
    assert [s.kernel_size for s in space.stages] == [(3, )] + [(3, 5)] * 4
    assert [s.groups for s in space.stages] == [(1, ), (1, 2), (2, 4), (4, 8),
                                                (8, 16)]
    assert [s.stride for s in space.stages] == [1, 2, 2, 2, 2]


def test_paper_space_sizes(space):
    total = space.size(non_decreasing=False)
    nd = space.size(non_decreasing=True)
    # Section 3.2: ~4.0e21 candidates, ~3.3e17 with ND (~0.01%).
    assert total == 3960359488725851308032
    assert nd == 332353674695147520
    assert f'{total:.1e}' == '4.0e+21' and f'{nd:.1e}' == '3.3e+17'
    assert round(100 * nd / total, 2) == 0.01


@pytest.mark.parametrize('non_decreasing', [False, True])
def test_size_matches_brute_force(toy_space, enumerate_archs, non_decreasing):
    archs = enumerate_archs(toy_space, non_decreasing)
    assert toy_space.size(non_decreasing) == len(archs) > 0


def test_toy_sizes_by_hand(toy_space):
    # A stage-1 layer has 3 widths x 2 kernels x 2 groups (4 options per
    # width), but only groups 1 after width 6 (2 options per width). The
    # stage-2 layer has one option.
    depth1 = 2 * 12  # 2 stem widths (4 or 8)
    depth2 = 2 * (8 * 12 + 4 * 6)  # first layer 4/8 (8 ways) or 6 (4 ways)
    assert toy_space.size(non_decreasing=False) == depth1 + depth2 == 264
    # ND: stage 2 has width 6, so stem 8 has no completion; after stem 4,
    # stage-1 widths are in {4, 6} and non-decreasing.
    depth1 = 2 * 4  # width 4 or 6, 4 ways each
    depth2 = 4 * (2 * 4) + 4 * 2  # 4 then 4/6, or 6 then 6 (groups 1)
    assert toy_space.size(non_decreasing=True) == depth1 + depth2 == 48


def test_from_config_forms(space, tmp_path):
    from_file = SearchSpace.from_config(f'{CONFIGS}/nasbnn_in1k.py')
    from_dict = SearchSpace.from_config(space.to_dict())
    from_cfg = SearchSpace.from_config(
        Config.fromfile(f'{CONFIGS}/nasbnn_in1k.py'))
    wrapped = SearchSpace.from_config(dict(search_space=space.to_dict()))
    assert from_file == from_dict == from_cfg == wrapped == space
    path = tmp_path / 'space.py'
    path.write_text(f'search_space = {space.to_dict()!r}\n')
    assert SearchSpace.from_config(str(path)) == space
    assert hash(space) == hash(from_file)


@pytest.mark.parametrize('name', BUILTIN_SPACES)
def test_builtin_spaces_match_configs(name):
    assert SearchSpace.from_config(name) == SearchSpace.from_config(
        f'{CONFIGS}/{name}.py')


def test_digits_space():
    space = SearchSpace.from_config('nasbnn_digits')
    assert space.input_size == (32, 32) and space.num_classes == 10
    sizes, size = [], 32 // space.stem.stride
    for stage in space.stages:
        size //= stage.stride
        sizes.append(size)
        for width in stage.channels:
            assert stage.valid_groups(width) == stage.groups
    assert sizes == [16, 8, 4]
    assert space.size(True) == 209952 and space.size(False) == 584064


def _with(cfg, path, value):
    cfg = Config(cfg).to_dict()
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return cfg


@pytest.mark.parametrize('path, value, message', [
    (('stages', 1, 'kernel_size'), [3, 4],
     'search_space.stages[1].kernel_size: 4 is even; allowed: odd kernel '
     'sizes'),
    (('stages', 0, 'depth'), [],
     'search_space.stages[0].depth: expected a non-empty list of ints, '
     'got []'),
    (('stem', 'channels'), [24, 24],
     'search_space.stem.channels: duplicate choices in [24, 24]'),
    (('stem', 'stride'), 0,
     'search_space.stem.stride: expected a positive int, got 0'),
    (('input_size', ), [224, 224, 3],
     'search_space.input_size: expected an int or [H, W], got '
     '[224, 224, 3]'),
])
def test_invalid_space(space, path, value, message):
    with pytest.raises(ValueError) as e:
        SearchSpace.from_dict(_with(space.to_dict(), path, value))
    assert str(e.value) == message


def test_invalid_space_keys(space):
    cfg = space.to_dict()
    cfg['stages'][2]['kernel'] = cfg['stages'][2].pop('kernel_size')
    with pytest.raises(
            ValueError,
            match=r"^search_space.stages\[2\]: "
            r"unknown key 'kernel'; allowed: depth, channels, "
            r'kernel_size, groups, stride$'):
        SearchSpace.from_dict(cfg)
    del cfg['stages']
    with pytest.raises(ValueError, match="missing key 'stages'"):
        SearchSpace.from_dict(cfg)
    with pytest.raises(
            ValueError,
            match=r"^search space 'nasbnn_foo': neither a built-in space "
            r'\(nasbnn_in1k, nasbnn_digits\) nor an existing file$'):
        SearchSpace.from_config('nasbnn_foo')


@pytest.mark.parametrize('path, value, message', [
    (('stem', 'groups'), [2],
     'search_space.stem.groups: none of {2} divides both in_channels 3 and '
     'a width in {24, 32, 48}; the space has no architecture'),
    (('stages', 1, 'groups'), [5],
     'search_space.stages[1].groups: none of {5} divides an input width of '
     'the stage {48, 64, 96}; the space has no architecture'),
])
def test_space_whose_groups_divide_no_width_is_refused(space, path, value,
                                                       message):
    cfg = _with(space.to_dict(), path, value)
    with pytest.raises(UserError) as e:
        SearchSpace.from_dict(cfg)
    assert str(e.value) == message


def test_groups_that_divide_no_width_of_the_stage_are_refused():
    # the first layer takes width 8 (groups 4 fits), the second one of the
    # stage's own widths {6, 10}: no group fits, and every depth is 2
    cfg = dict(
        input_size=8,
        in_channels=1,
        num_classes=2,
        stem=dict(channels=[8], kernel_size=[3], groups=[1], stride=1),
        stages=[
            dict(
                depth=[2],
                channels=[6, 10],
                kernel_size=[3],
                groups=[4],
                stride=1)
        ])
    with pytest.raises(
            UserError,
            match=r'^search_space.stages\[0\].groups: none of \{4\} divides '
            r'a width of the stage \{6, 10\} \(inputs of its layers after '
            r'the first, depth \{2\}\)'):
        SearchSpace.from_dict(cfg)
    cfg['stages'][0]['depth'] = [1, 2]
    assert SearchSpace.from_dict(cfg).size(non_decreasing=False) == 2


def test_a_space_file_that_cannot_be_read_names_the_file(tmp_path):
    path = tmp_path / 'space.py'
    path.write_text('search_space = dict(\n')
    with pytest.raises(UserError, match=f'^search space {path}: '):
        SearchSpace.from_config(str(path))
