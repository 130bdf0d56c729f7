import json

import pytest

from nasbnn_mm.nas import (PRESETS, ArchSpec, LayerSpec, SearchSpace,
                           dump_arch, format_arch, load_arch, parse_arch,
                           validate_arch)

# Depths of each stage in Table 6.
TABLE6_DEPTHS = {
    'A': (2, 2, 2, 8, 2),
    'B': (2, 2, 2, 8, 3),
    'C': (2, 2, 3, 9, 3),
    'D': (2, 2, 3, 9, 3),
    'E': (2, 2, 3, 9, 3),
    'F': (3, 2, 3, 9, 3),
}


def _spec(changes=None, **keys):
    """Preset B as a dict, ``stages[i][j]`` tokens and keys replaced."""
    data = load_arch('B').to_dict()
    for (i, j), token in (changes or {}).items():
        data['stages'][i][j] = token
    data.update(keys)
    return data


@pytest.mark.parametrize('name', PRESETS)
def test_presets_valid(space, name):
    arch = load_arch(name)
    assert arch.depths == TABLE6_DEPTHS[name]
    validate_arch(arch, space, non_decreasing=True)


def test_preset_details():
    b = load_arch('B')
    assert b.stem == LayerSpec(24, 3, 1)
    assert [str(layer) for layer in b.stages[4]
            ] == ['c1536_k5_g16', 'c1536_k5_g16', 'c1536_k3_g16']
    assert str(load_arch('F').stages[3][0]) == 'c768_k5_g4'
    # The extracted Table 6 repeats column D as column E.
    assert load_arch('D') == load_arch('E')


@pytest.mark.parametrize('name', ['b', 'nasbnn-b', 'NASBNN_B', 'B'])
def test_preset_names(name):
    assert load_arch(name) == load_arch('B')


@pytest.mark.parametrize('suffix', ['.json', '.yaml', '.yml'])
def test_round_trip(tmp_path, suffix):
    arch = load_arch('C')
    path = str(tmp_path / f'arch{suffix}')
    dump_arch(arch, path)
    assert load_arch(path) == arch
    assert parse_arch(format_arch(arch)) == arch
    assert parse_arch(arch.to_dict()) == arch
    assert load_arch(arch.to_dict()) == load_arch(arch) == arch
    assert ArchSpec.from_dict(json.loads(format_arch(arch))) == arch
    assert hash(load_arch(path)) == hash(arch)


def test_yaml_is_readable(tmp_path):
    path = str(tmp_path / 'arch.yaml')
    dump_arch(load_arch('A'), path)
    text = open(path).read()
    assert text.startswith('stem: c24_k3_g1\nstages:\n- [c48_k3_g1, '
                           'c48_k3_g1]\n')


@pytest.mark.parametrize('data, message', [
    (_spec({(3, 1): 'c768-k3-g4'
            }), "stages[3][1]: cannot parse 'c768-k3-g4'; expected a token "
     "'c<channels>_k<kernel>_g<groups>', e.g. 'c768_k3_g4'"),
    (_spec({(3, 1): 'c640_k3_g8'
            }), 'stages[3][1]: channels 640 not in {384, 512, 768}'),
    (_spec({(3, 1): 'c768_k7_g8'
            }), 'stages[3][1]: kernel_size 7 not in {3, 5}'),
    (_spec({(3, 1): 'c768_k3_g16'}), 'stages[3][1]: groups 16 not in {4, 8}'),
    (_spec({(3, 2): 'c512_k3_g8'
            }), 'stages[3][2]: channels 512 < 768 of stages[3][1] breaks the '
     'non-decreasing constraint; allowed: {768}'),
    (_spec(stages=_spec()['stages'][:4]),
     'stages: 4 stages given, the space has 5'),
    (_spec(stages=_spec()['stages'][:3] + [['c384_k3_g8'] * 7] +
           _spec()['stages'][4:]), 'stages[3]: depth 7 not in {8, 9}'),
    (_spec(stem='c40_k3_g1'), 'stem: channels 40 not in {24, 32, 48}'),
    (_spec(extra=1), "arch spec: unknown key 'extra'; allowed: stem, stages"),
    (dict(stages=_spec()['stages']), "arch spec: missing key 'stem'"),
    (_spec(stages=[[]]),
     'stages[0]: expected a non-empty list of layer tokens, got []'),
    (_spec(stages='c48_k3_g1'), 'stages: expected a list of stages, got str'),
    ('{"stem": "c24_k3_g1", "stages": [["c48_k3_g1"],}',
     'arch spec: invalid JSON at line 1, column 48: Expecting value'),
])
def test_invalid_specs(space, data, message):
    with pytest.raises(ValueError) as e:
        validate_arch(parse_arch(data), space)
    assert str(e.value) == message
    assert '\n' not in message


def test_non_decreasing_switch(space):
    arch = parse_arch(_spec({(3, 2): 'c512_k3_g8'}))
    validate_arch(arch, space, non_decreasing=False)
    with pytest.raises(ValueError, match='non-decreasing'):
        validate_arch(arch, space, non_decreasing=True)


def test_groups_must_divide_input_width(toy_space):
    arch = ArchSpec(
        LayerSpec(4, 3, 1),
        ((LayerSpec(6, 3, 1), LayerSpec(6, 3, 4)), (LayerSpec(6, 3, 2), )))
    with pytest.raises(ValueError) as e:
        validate_arch(arch, toy_space)
    assert str(e.value) == ('stages[0][1]: groups 4 does not divide the '
                            'input width 6; allowed: {1}')


def test_stem_groups_must_divide(toy_space):
    space = SearchSpace.from_dict(
        dict(
            toy_space.to_dict(),
            stem=dict(
                channels=[4, 8], kernel_size=[3], groups=[1, 2], stride=2)))
    arch = ArchSpec(
        LayerSpec(4, 3, 2), ((LayerSpec(6, 3, 1), ), (LayerSpec(6, 3, 2), )))
    with pytest.raises(ValueError) as e:
        validate_arch(arch, space)
    assert str(e.value) == ('stem: groups 2 does not divide both the input '
                            'channels 1 and the width 4; allowed: {1}')


def test_load_errors(tmp_path):
    bad_json = tmp_path / 'bad.json'
    bad_json.write_text('{"stem": "c24_k3_g1",\n "stages": [["c48_k3_g1"]\n')
    with pytest.raises(ValueError) as e:
        load_arch(str(bad_json))
    assert str(e.value) == (f'{bad_json}: arch spec: invalid JSON at line 3, '
                            "column 1: Expecting ',' delimiter")
    bad_yaml = tmp_path / 'bad.yaml'
    bad_yaml.write_text('stem: c24_k3_g1\nstages: [[c48_k3_g1]\n')
    with pytest.raises(
            ValueError,
            match=rf'^{bad_yaml}: arch spec: invalid '
            'YAML at line 3: '):
        load_arch(str(bad_yaml))
    bad_token = tmp_path / 'token.yaml'
    bad_token.write_text('stem: c24_k3_g1\nstages: [[c48_k3]]\n')
    with pytest.raises(
            ValueError,
            match=rf"^{bad_token}: stages\[0\]\[0\]: "
            "cannot parse 'c48_k3'"):
        load_arch(str(bad_token))
    other = tmp_path / 'arch.txt'
    other.write_text('')
    with pytest.raises(
            ValueError,
            match=r"unknown spec format '\.txt'; "
            r'allowed: \.json, \.yaml, \.yml$'):
        load_arch(str(other))
    with pytest.raises(ValueError) as e:
        load_arch('G')
    assert str(e.value) == ("arch 'G': neither a preset (A, B, C, D, E, F) "
                            'nor an existing file')
