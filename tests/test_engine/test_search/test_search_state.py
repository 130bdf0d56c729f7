import json
import os.path as osp
import random

import pytest

from nasbnn_mm.engine.search import STATE_FORMAT, SearchState, check_settings
from nasbnn_mm.utils import UserError, python_rng_state


def _state() -> SearchState:
    return SearchState(
        settings=dict(seed=0, max_generations=2, checkpoint=None),
        generation=1,
        pending=[dict(expand_ratios=[1, 2])],
        rng_state=python_rng_state(random.Random(3)),
        evaluated=[dict(arch={'a': 1}, cost=1.5, top1=50.0, generation=0)],
        front=[0])


def test_state_round_trips_through_an_atomic_json_file(tmp_path):
    path = str(tmp_path / 'search_state.json')
    state = _state()
    state.save(path)
    assert not osp.exists(path + '.tmp')
    with open(path) as f:
        data = json.load(f)
    assert list(data)[0] == 'format' and data['format'] == STATE_FORMAT
    # one Python RNG-state format everywhere (RandomStateHook's too)
    assert set(data['rng_state']) == {'version', 'internal', 'gauss_next'}
    assert SearchState.load(path) == state


def test_a_truncated_state_names_the_file_and_what_to_do(tmp_path):
    path = tmp_path / 'search_state.json'
    _state().save(str(path))
    path.write_text(path.read_text()[:40])
    with pytest.raises(UserError) as e:
        SearchState.load(str(path))
    message = str(e.value)
    assert str(path) in message and 'truncated' in message
    assert 'delete it' in message and '\n' not in message


@pytest.mark.parametrize('data, message', [
    ([1, 2], 'not a search state'),
    (dict(format='nasbnn_mm.EvolutionSearchLoop/1'),
     "format 'nasbnn_mm.EvolutionSearchLoop/1', this version reads"),
    (dict(format=STATE_FORMAT, settings={}), "no 'generation'"),
])
def test_older_or_foreign_states_are_refused_in_one_line(
        tmp_path, data, message):
    path = tmp_path / 'search_state.json'
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message) as e:
        SearchState.load(str(path))
    assert str(path) in str(e.value)


def test_settings_check():
    ours = dict(seed=0, num_mutation=3, max_generations=5, checkpoint=None)
    check_settings(dict(ours, max_generations=2), ours)  # more generations
    with pytest.raises(
            UserError,
            match='resume: num_mutation is 3 but the '
            'saved search used 4'):
        check_settings(dict(ours, num_mutation=4), ours)
    with pytest.raises(UserError, match='resume: bucket_rule is None'):
        check_settings(dict(ours, bucket_rule='nearest'), ours)


def test_settings_check_compares_checkpoints_by_content():
    a = dict(path='a/epoch_40.pth', digest='0123')
    moved = dict(path='b/epoch_40.pth', digest='0123')
    other = dict(path='a/epoch_20.pth', digest='4567')
    check_settings(dict(checkpoint=a), dict(checkpoint=moved))
    with pytest.raises(UserError) as e:
        check_settings(dict(checkpoint=a), dict(checkpoint=other))
    message = str(e.value)
    assert 'a/epoch_20.pth (sha256 4567)' in message
    assert 'a/epoch_40.pth (sha256 0123)' in message
