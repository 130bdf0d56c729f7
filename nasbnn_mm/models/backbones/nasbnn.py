"""The static NAS-BNN backbone: one subnet with plain layers.

NAS-BNN (https://arxiv.org/abs/2408.15484, sec. 3.4) deploys subnets of the
binary supernet either with the inherited weights (pipeline 1) or after
fine-tuning them (pipeline 2). Both need the subnet as a model of its own:
:class:`NASBNN` builds the layers of one architecture spec at their exact
widths, with the module names of :class:`SuperBNN`, so that
``SuperBNN.to_static(arch)`` and the checkpoints written by
``tools/export_subnet.py`` load into it by name. Kernel and
Bi-Transformations of the supernet are folded into the exported weights, so
the static binary convolutions have none.
"""
from typing import Optional, Sequence, Union

import torch.nn as nn
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from nasbnn_mm.nas import DEFAULT_SPACE, ArchType
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptMultiConfig, UserError
from ..layers import BinaryConv2d, RPReLU, RSign
from ..layers.activations import residual_rprelu_rsign
from ..layers.shortcut import bireal_shortcut
from .base_nasbnn import BaseSubnet

__all__ = ['BinarySeparableBlock', 'NASBNN', 'WeightNormType']

WeightNormType = Union[bool, str]


class BinarySeparableBlock(nn.Module):
    """A binary separable block at fixed widths (one layer of a spec).

    ``x -> RSign -> grouped k×k binary conv (width kept, stride s) -> BN
    -> + shortcut(x) -> RPReLU -> RSign -> 1×1 binary conv -> BN
    -> + shortcut -> RPReLU``, the static form of
    :class:`SuperSeparableBlock`. The binary convolutions take the
    binarized input of the RSign before them and have no Bi-Transformation
    (an exported weight already holds it).

    Args:
        in_channels (int): Input width C_in.
        out_channels (int): Output width C_out (of the 1×1 conv).
        kernel_size (int): Odd kernel size of the k×k conv.
        groups (int): Groups of the k×k conv.
        stride (int): Stride of the k×k conv, 1 or 2.
        weight_norm (bool | str): Channel-wise weight normalization (eq. 6):
            True/'paper', 'official' or False (see :class:`BinaryConv2d`).

    Shape:
        - Input: (N, C_in, H, W).
        - Output: (N, C_out, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 groups: int, stride: int,
                 weight_norm: WeightNormType) -> None:
        super().__init__()
        self.stride = stride
        self.sign1 = RSign(in_channels)
        self.conv1 = BinaryConv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
            weight_norm=weight_norm,
            bi_transform=False,
            binarize_input=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = RPReLU(in_channels)
        self.sign2 = RSign(in_channels)
        self.conv2 = BinaryConv2d(
            in_channels,
            out_channels,
            1,
            bias=False,
            weight_norm=weight_norm,
            bi_transform=False,
            binarize_input=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = RPReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / s, W / s)."""
        out, signs = residual_rprelu_rsign(
            self.bn1(self.conv1(self.sign1(x))),
            bireal_shortcut(x, x.shape[1], self.stride), self.act1, self.sign2)
        out2 = self.bn2(self.conv2(signs))
        return self.act2(out2 + bireal_shortcut(out, out2.shape[1], 1))


@MODELS.register_module()
class NASBNN(BaseSubnet):
    """A NAS-BNN subnet as a plain backbone (MMPretrain and MMDetection).

    Built from an architecture spec of a search space: an 8-bit LSQ stem,
    then one :class:`BinarySeparableBlock` per layer of the spec, the stride
    of each stage on its first block. Module names mirror
    :class:`SuperBNN` (``stem.conv``, ``stages.<i>.<j>.conv1``...), so the
    weights of a subnet exported with ``SuperBNN.to_static`` or
    ``tools/export_subnet.py`` load by name, e.g. with
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``;
    ``init_cfg=dict(type='SupernetInit', checkpoint=...)`` slices a
    supernet checkpoint to this spec instead
    (:class:`~nasbnn_mm.models.SupernetInit`).

    Args:
        arch (str | dict | ArchSpec): The subnet: ``'smallest'``,
            ``'largest'``, a preset of Table 6 (``'A'``..``'F'``), a
            JSON/YAML spec file or a spec dict.
        search_space (str | dict): The space of the spec: a built-in name,
            a config file defining ``search_space``, or the dict. It gives
            the input channels and the strides. Defaults to 'nasbnn_in1k'.
        out_indices (Sequence[int]): Stages whose outputs are returned
            (negative counts from the end). Defaults to (-1, ).
        frozen_stages (int): Stages to freeze (eval mode, no gradients):
            -1 none, 0 the stem, ``i`` the stem and ``stages[:i]``.
            Defaults to -1.
        norm_eval (bool): Keep the BN layers in eval mode while training
            (frozen statistics, as detectors do). Defaults to False.
        weight_norm (bool | str, optional): Channel-wise weight
            normalization (eq. 6) of the binary convolutions:
            True/'paper', 'official' or False (see :class:`BinaryConv2d`);
            the supernet's. None (default): from the ``init_cfg``
            checkpoint's conventions, else True (see :class:`BaseSubnet`).
        stem_quantize_input (bool, optional): Quantize the stem's input to
            8 bits. None (default): from the ``init_cfg`` checkpoint's
            conventions, else True.
        init_cfg (dict | list[dict], optional): Initialization config.

    Example:
        >>> import torch
        >>> model = NASBNN('A')
        >>> model.out_channels
        (768,)
        >>> [o.shape for o in model(torch.randn(1, 3, 224, 224))]
        [torch.Size([1, 768, 7, 7])]
        >>> NASBNN('A', out_indices=(1, 2, 3, 4)).out_channels
        (96, 192, 384, 768)
    """

    def __init__(self,
                 arch: ArchType,
                 search_space: Union[str, dict] = DEFAULT_SPACE,
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 weight_norm: Optional[WeightNormType] = None,
                 stem_quantize_input: Optional[bool] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(arch, search_space, out_indices, weight_norm,
                         stem_quantize_input, init_cfg)
        num_stages = len(self.space.stages)
        if not -1 <= frozen_stages <= num_stages:
            raise UserError(f'frozen_stages: {frozen_stages} not in '
                            f'[-1, {num_stages}]')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze_stages()

    def make_block(self, in_channels: int, out_channels: int, kernel_size: int,
                   groups: int, stride: int) -> BinarySeparableBlock:
        """A :class:`BinarySeparableBlock` with this model's
        ``weight_norm``."""
        return BinarySeparableBlock(in_channels, out_channels, kernel_size,
                                    groups, stride, self.weight_norm)

    def _freeze_stages(self) -> None:
        frozen = [self.stem] if self.frozen_stages >= 0 else []
        frozen += list(self.stages[:max(self.frozen_stages, 0)])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'NASBNN':
        """Set the mode; frozen stages and (``norm_eval``) BN stay in eval
        mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
