"""User errors are told from bugs by type and printed as one line."""
import pytest
from mmengine.registry import MODELS

from nasbnn_mm.utils import CheckpointError, UserError
from nasbnn_mm.utils.errors import error_line, is_user_error, run_tool


def test_user_errors_and_bugs():
    assert is_user_error(UserError('stem: bad'))
    assert is_user_error(CheckpointError('x.pth: truncated'))
    assert is_user_error(FileNotFoundError('data/digits'))
    assert not is_user_error(ValueError('a bug'))
    assert not is_user_error(KeyError('state_dict'))
    assert not is_user_error(RuntimeError('size mismatch'))


def test_nested_build_messages_name_the_classes():
    # mmengine's build_from_cfg wraps an error once per level it builds
    error = UserError('class `ImageClassifier` in /x/a.py: class `NASBNN` '
                      'in /y/b.py: stages[0][0]: cannot parse')
    assert error_line(error) == ('ImageClassifier: NASBNN: stages[0][0]: '
                                 'cannot parse')
    assert error_line(UserError('two\nlines')) == 'two lines'


def test_an_unknown_config_type_is_a_user_error():
    with pytest.raises(KeyError) as e:
        MODELS.build(dict(type='nasbnn_mm.SuperBNNX'))
    assert is_user_error(e.value)
    assert error_line(e.value) == ("type 'nasbnn_mm.SuperBNNX' is not in "
                                   'the mmengine::model registry')


def test_run_tool_prints_one_line_and_returns_2(capsys):

    def work():
        raise CheckpointError('ckpt.pth: it is truncated')

    assert run_tool('tool.py', work) == 2
    captured = capsys.readouterr()
    assert captured.err == 'tool.py: error: ckpt.pth: it is truncated\n'
    assert run_tool('tool.py', lambda: 0) == 0


def test_run_tool_keeps_the_traceback_of_a_bug():

    def work():
        raise ValueError('a bug')

    with pytest.raises(ValueError, match='a bug'):
        run_tool('tool.py', work)
