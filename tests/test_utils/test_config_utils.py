"""Config helpers of the tools: reading, CPU distributed runs, --out."""
import pytest
import torch
from mmengine.config import Config

from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.config_utils import (apply_common_args, check_out_file,
                                          read_config)


def test_read_config_names_the_file(tmp_path):
    with pytest.raises(UserError, match=f'^config {tmp_path}/none.py: no '):
        read_config(str(tmp_path / 'none.py'))
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    with pytest.raises(UserError, match=f'^config {broken}: '):
        read_config(str(broken))
    base = tmp_path / 'child.py'
    base.write_text("_base_ = ['./missing_base.py']\n")
    with pytest.raises(UserError, match='missing_base.py'):
        read_config(str(base))


def test_bad_cfg_options_are_user_errors():
    cfg = Config(dict(model=dict(layers=[1, 2])))
    with pytest.raises(UserError, match='^--cfg-options: '):
        apply_common_args(cfg, 'a.py', cfg_options={'model.layers.5': 3})


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
@pytest.mark.parametrize('wrapper, expected', [
    (None,
     dict(
         type='MMDistributedDataParallel',
         device_ids=None,
         broadcast_buffers=False,
         find_unused_parameters=False)),
    (dict(type='MMDistributedDataParallel', find_unused_parameters=True),
     dict(
         type='MMDistributedDataParallel',
         find_unused_parameters=True,
         device_ids=None)),
    (dict(type='nasbnn_mm.SandwichDataParallel'),
     dict(type='nasbnn_mm.SandwichDataParallel')),
])
def test_cpu_launcher_uses_gloo_and_a_cpu_ddp(wrapper, expected):
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    if wrapper is not None:
        cfg.model_wrapper_cfg = wrapper
    apply_common_args(cfg, 'configs/x.py', launcher='pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.to_dict() == expected
    assert cfg.work_dir == './work_dirs/x'


def test_without_launcher_nothing_changes():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    apply_common_args(cfg, 'x.py', work_dir='w')
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg
    assert cfg.work_dir == 'w'


def test_unknown_wrapper_is_a_user_error():
    cfg = Config(dict(model_wrapper_cfg=dict(type='NoSuchWrapper')))
    if torch.cuda.is_available():
        pytest.skip('the wrapper is checked for CPU runs only')
    with pytest.raises(UserError, match="'NoSuchWrapper'"):
        apply_common_args(cfg, 'x.py', launcher='pytorch')


def test_check_out_file(tmp_path):
    check_out_file(str(tmp_path / 'r.pkl'), '--out')
    with pytest.raises(UserError, match='^--out .*none/r.pkl: folder '):
        check_out_file(str(tmp_path / 'none' / 'r.pkl'), '--out')
    with pytest.raises(UserError, match='is a folder'):
        check_out_file(str(tmp_path), '--out')


@pytest.mark.parametrize('wrapper', [None, 'MMDistributedDataParallel'])
def test_ddp_around_an_own_train_step_is_refused(wrapper):
    """DDP calls forward only: the sandwich rule would silently not run."""
    cfg = Config(
        dict(
            default_scope='nasbnn_mm',
            model=dict(
                type='SandwichSupernet',
                backbone=dict(type='SuperBNN', search_space='nasbnn_digits'))))
    if wrapper is not None:
        cfg.model_wrapper_cfg = dict(type=wrapper)
    with pytest.raises(
            UserError,
            match=r'^model_wrapper_cfg: SandwichSupernet trains in its own '
            r'train_step, .*SandwichDataParallel'):
        apply_common_args(cfg, 'x.py', launcher='pytorch')
    cfg.model_wrapper_cfg = dict(type='nasbnn_mm.SandwichDataParallel')
    apply_common_args(cfg, 'x.py', launcher='pytorch')
