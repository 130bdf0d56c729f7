"""BatchNorm recalibration for weight-sharing subnets.

A subnet inherits the supernet's weights but not BN statistics that fit it:
the running statistics are re-estimated on training batches before a subnet
is evaluated, searched, exported or transferred. One routine serves all of
them.
"""
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['recalibrate_bn', 'tensor_forward', 'loss_forward']


def tensor_forward(model: nn.Module) -> Callable[[object], torch.Tensor]:
    """The ``forward`` of :func:`recalibrate_bn` for an mm-style model.

    Runs ``model.data_preprocessor(batch, False)`` (an MMEngine
    ``BaseModel``'s) and the model in ``mode='tensor'`` on a dataloader
    batch.
    """

    def forward(batch):
        inputs = model.data_preprocessor(batch, False)['inputs']
        return model(inputs, mode='tensor')

    return forward


def loss_forward(model: nn.Module) -> Callable[[object], dict]:
    """The ``forward`` of :func:`recalibrate_bn` for models that need their
    data samples to run every layer, e.g. a two-stage detector (its RoI
    head runs on the RPN's proposals): ``mode='loss'`` on the preprocessed
    batch; the losses are ignored.
    """

    def forward(batch):
        data = model.data_preprocessor(batch, False)
        return model(data['inputs'], data['data_samples'], mode='loss')

    return forward


@torch.no_grad()
def recalibrate_bn(model: nn.Module,
                   batches: Iterable,
                   forward: Callable[[object], object],
                   num_batches: Optional[int] = None) -> int:
    """Re-estimate the running statistics of every BatchNorm in ``model``.

    Every ``_BatchNorm`` (BatchNorm1d/2d/3d, SyncBatchNorm, and the dynamic
    BN of the supernet) is reset and then accumulates a cumulative average
    (``momentum=None``) over the batches, so each batch counts equally. The
    model's training flags and the BN momenta are restored afterwards. Only
    use training data: the statistics become part of the model.

    Args:
        model (nn.Module): The model (its BN layers are updated in place).
        batches (Iterable): Training batches, e.g. a dataloader.
        forward (Callable): Runs the model on one batch (whatever the batch
            type is); its output is ignored.
        num_batches (int, optional): Stop after this many batches. Defaults
            to all of ``batches``.

    Returns:
        int: Number of batches used.
    """
    if num_batches is not None and num_batches < 1:
        raise ValueError(f'num_batches: {num_batches} must be >= 1')
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        return 0
    training = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
        m.train()
    used = 0
    try:
        for batch in batches:
            if num_batches is not None and used >= num_batches:
                break
            forward(batch)
            used += 1
    finally:
        for m, mode in training.items():
            m.train(mode)
        for m, momentum in momenta.items():
            m.momentum = momentum
    if used == 0:
        raise ValueError('recalibrate_bn: batches is empty; BN statistics '
                         'need at least one training batch')
    return used
