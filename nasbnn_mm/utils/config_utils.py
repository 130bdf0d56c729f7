"""Config helpers shared by the command-line tools."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import MODEL_WRAPPERS, MODELS
from torch.nn.parallel import DistributedDataParallel

from .errors import UserError

__all__ = ['read_config', 'apply_common_args', 'check_out_file']

# mmengine's default wrapper of a model in a distributed run.
_DEFAULT_WRAPPER = 'MMDistributedDataParallel'


def read_config(path: str) -> Config:
    """Read a config file; any failure to read it is the file's fault.

    Args:
        path (str): A ``.py``/``.json``/``.yaml`` mmengine config.

    Returns:
        Config: The config.

    Raises:
        UserError: One line naming the file: missing, a syntax error, a
            missing base, a name the file cannot resolve.
    """
    if not osp.isfile(path):
        raise UserError(f'config {path}: no such file')
    try:
        return Config.fromfile(path)
    except Exception as e:  # noqa: B902 (whatever the file makes it raise)
        text = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f'config {path}: {text}') from e


def _use_cpu_ddp(cfg: Config) -> None:
    """Let DistributedDataParallel wrap a CPU model (gloo) under a launcher.

    mmengine passes ``device_ids=[LOCAL_RANK]`` to any DDP wrapper, which
    only a GPU module accepts; ``device_ids=None`` in the config wins over
    that default and works with CPU (and single-GPU) modules alike.
    """
    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type=_DEFAULT_WRAPPER,
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    wrapper_cls = MODEL_WRAPPERS.get(wrapper.get('type', _DEFAULT_WRAPPER))
    if wrapper_cls is None:
        raise UserError(f'model_wrapper_cfg.type: {wrapper.get("type")!r} '
                        'is not a registered model wrapper')
    if issubclass(wrapper_cls, DistributedDataParallel):
        wrapper.setdefault('device_ids', None)


def _check_wrapper_runs_train_step(cfg: Config) -> None:
    """Refuse DDP around a model with its own ``train_step``.

    ``DistributedDataParallel.train_step`` calls the model's ``forward``
    only, so an algorithm whose ``train_step`` does the work (the sandwich
    rule of ``SandwichSupernet``) would silently train something else.

    Raises:
        UserError: Naming the model and the wrapper to set.
    """
    model_type = cfg.get('model', {}).get('type', None)
    if isinstance(model_type, str):
        with MODELS.switch_scope_and_registry(cfg.get('default_scope',
                                                      None)) as registry:
            model_cls = registry.get(model_type)
    else:
        model_cls = model_type
    if not isinstance(model_cls, type) or \
            model_cls.train_step is BaseModel.train_step:
        return
    wrapper = (cfg.get('model_wrapper_cfg', None)
               or {}).get('type', _DEFAULT_WRAPPER)
    wrapper_cls = MODEL_WRAPPERS.get(wrapper)
    if isinstance(wrapper_cls, type) and issubclass(wrapper_cls,
                                                    DistributedDataParallel):
        raise UserError(
            f'model_wrapper_cfg: {model_cls.__name__} trains in its own '
            f'train_step, which {wrapper} bypasses under --launcher; set a '
            'wrapper that runs it, e.g. model_wrapper_cfg=dict('
            "type='nasbnn_mm.SandwichDataParallel')")


def apply_common_args(cfg: Config,
                      config_path: str,
                      work_dir: Optional[str] = None,
                      cfg_options: Optional[dict] = None,
                      launcher: str = 'none') -> Config:
    """Apply the options every tool shares to ``cfg`` (in place).

    A distributed run (``launcher != 'none'``) of a model with its own
    ``train_step`` needs a wrapper that runs it (not DDP). On a machine
    without CUDA it communicates through gloo and DDP wraps the CPU model
    (see :func:`_use_cpu_ddp`), so a config runs under torchrun as it would
    on GPUs.

    Args:
        cfg (Config): The loaded config.
        config_path (str): Its path; names the default work dir
            ``./work_dirs/<config name>``.
        work_dir (str, optional): ``--work-dir``; overrides the config's.
        cfg_options (dict, optional): ``--cfg-options`` to merge.
        launcher (str): ``--launcher``. Defaults to 'none'.

    Returns:
        Config: ``cfg``.

    Raises:
        UserError: If ``cfg_options`` do not fit the config, or DDP would
            bypass the model's ``train_step``.
    """
    cfg.launcher = launcher
    if cfg_options is not None:
        try:
            cfg.merge_from_dict(cfg_options)
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise UserError(f'--cfg-options: {e}') from e
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    if launcher != 'none':
        _check_wrapper_runs_train_step(cfg)
    if launcher != 'none' and not torch.cuda.is_available():
        dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        # NCCL needs GPUs: CPU-only runs communicate through gloo.
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
        _use_cpu_ddp(cfg)
    return cfg


def check_out_file(path: str, option: str) -> None:
    """Refuse an output file whose folder does not exist, before any work.

    Args:
        path (str): The file a tool will write.
        option (str): The option that named it, e.g. ``'--out'``.

    Raises:
        UserError: If the folder is missing or ``path`` is a folder.
    """
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise UserError(f'{option} {path}: folder {folder} does not exist')
    if osp.isdir(path):
        raise UserError(f'{option} {path}: is a folder, expected a file')
