"""Config helpers shared by the command-line tools."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config

__all__ = ['apply_common_args']


def apply_common_args(cfg: Config,
                      config_path: str,
                      work_dir: Optional[str] = None,
                      cfg_options: Optional[dict] = None,
                      launcher: str = 'none') -> Config:
    """Apply the options every tool shares to ``cfg`` (in place).

    Args:
        cfg (Config): The loaded config.
        config_path (str): Its path; names the default work dir
            ``./work_dirs/<config name>``.
        work_dir (str, optional): ``--work-dir``; overrides the config's.
        cfg_options (dict, optional): ``--cfg-options`` to merge.
        launcher (str): ``--launcher``. Defaults to 'none'.

    Returns:
        Config: ``cfg``.
    """
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
    if dist_cfg.get('backend') == 'nccl' and not torch.cuda.is_available():
        # NCCL needs GPUs: CPU-only runs communicate through gloo.
        dist_cfg['backend'] = 'gloo'
    return cfg
