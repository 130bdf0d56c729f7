"""Top-1 counting shared by the search problems."""
from typing import Sequence, Tuple

import torch
from mmengine.dist import all_reduce
from torch import nn
from torch.utils.data import DataLoader

__all__ = ['count_top1']


@torch.no_grad()
def count_top1(model: nn.Module, loader: DataLoader) -> Tuple[int, int]:
    """Correct top-1 predictions and images of ``loader``, summed over ranks.

    Args:
        model (BaseModel): A classifier with a ``data_preprocessor`` and
            ``mode='tensor'`` logits (N, num_classes); put in eval mode.
        loader (DataLoader): This rank's share of the evaluation split.

    Returns:
        tuple[int, int]: ``(correct, images)`` over all ranks.
    """
    model.eval()
    correct, total = 0, 0
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        logits = model(data['inputs'], mode='tensor')
        labels = _labels(data['data_samples']).to(logits.device)
        correct += int((logits.argmax(dim=1) == labels).sum())
        total += labels.numel()
    counts = torch.tensor([correct, total], dtype=torch.int64)
    all_reduce(counts, op='sum')
    return int(counts[0]), int(counts[1])


def _labels(data_samples: Sequence) -> torch.Tensor:
    """One class index per sample, from MMPretrain-style ``gt_label``."""
    labels = torch.cat([s.gt_label.reshape(-1) for s in data_samples])
    if labels.numel() != len(data_samples):
        raise ValueError('data_samples: top-1 needs one gt_label per image, '
                         f'got {labels.numel()} for {len(data_samples)}')
    return labels
