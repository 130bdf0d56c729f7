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
from typing import Callable, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from nasbnn_mm.nas import (DEFAULT_SPACE, ArchSpec, SearchSpace, load_arch,
                           validate_arch)
from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptMultiConfig
from ..layers import BinaryConv2d, LSQConv2d, RPReLU, RSign
from ..layers.dynamic_binary_conv import GROUP_SLICINGS
from ..layers.shortcut import bireal_shortcut

__all__ = [
    'NASBNNStem', 'BinarySeparableBlock', 'NASBNN', 'normalize_out_indices',
    'build_subnet_layers'
]

ArchType = Union[str, dict, ArchSpec]
WeightNormType = Union[bool, str]


class NASBNNStem(nn.Module):
    """8-bit LSQ conv -> BN -> RPReLU, the stem of a NAS-BNN subnet.

    Args:
        in_channels (int): Image channels.
        channels (int): Output width.
        kernel_size (int): Odd kernel size; padding ``(k - 1) // 2``.
        stride (int): Stride.
        quantize_input (bool): Quantize the input to 8 bits too.

    Shape:
        - Input: (N, in_channels, H, W).
        - Output: (N, channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int,
                 stride: int, quantize_input: bool) -> None:
        super().__init__()
        self.conv = LSQConv2d(
            in_channels,
            channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            bias=False,
            quantize_input=quantize_input)
        self.bn = nn.BatchNorm2d(channels)
        self.act = RPReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_img, H, W) -> (N, channels, H / s, W / s)."""
        return self.act(self.bn(self.conv(x)))


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
        out = self.act1(
            self.bn1(self.conv1(self.sign1(x))) +
            bireal_shortcut(x, x.shape[1], self.stride))
        out2 = self.bn2(self.conv2(self.sign2(out)))
        return self.act2(out2 + bireal_shortcut(out, out2.shape[1], 1))


def normalize_out_indices(out_indices: Sequence[int],
                          num_stages: int) -> Tuple[int, ...]:
    """Check stage indices and make them non-negative.

    Args:
        out_indices (Sequence[int]): Indices in ``[-num_stages, num_stages)``;
            negative ones count from the last stage.
        num_stages (int): Number of stages.

    Returns:
        tuple[int]: The indices in ``[0, num_stages)``.

    Raises:
        ValueError: If an index is out of range.
    """
    for index in out_indices:
        if not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices: {index} not in '
                             f'[{-num_stages}, {num_stages - 1}]')
    return tuple(index % num_stages for index in out_indices)


# (in_channels, out_channels, kernel_size, groups, stride) -> block
BlockFactory = Callable[[int, int, int, int, int], nn.Module]


def build_subnet_layers(
        arch: ArchSpec, space: SearchSpace, stem_quantize_input: bool,
        make_block: BlockFactory) -> Tuple[NASBNNStem, nn.ModuleList]:
    """The stem and the stages of blocks of one subnet, at its widths.

    The first block of a stage has the stage's stride, the others stride 1;
    module names mirror :class:`SuperBNN` (``stages.<i>.<j>``).

    Args:
        arch (ArchSpec): A validated spec of ``space``.
        space (SearchSpace): Its search space (strides, input channels).
        stem_quantize_input (bool): See :class:`NASBNNStem`.
        make_block (Callable): Builds one block from
            ``(in_channels, out_channels, kernel_size, groups, stride)``.

    Returns:
        tuple: ``(stem, stages)``, stages an ``nn.ModuleList`` of
        ``nn.ModuleList``.
    """
    stem = arch.stem
    if stem.groups != 1:
        raise ValueError(f'stem: groups {stem.groups} not in {{1}}')
    stem_module = NASBNNStem(space.in_channels, stem.channels,
                             stem.kernel_size, space.stem.stride,
                             stem_quantize_input)
    stages = nn.ModuleList()
    in_channels = stem.channels
    for layers, stage in zip(arch.stages, space.stages):
        blocks = nn.ModuleList()
        for j, layer in enumerate(layers):
            blocks.append(
                make_block(in_channels, layer.channels, layer.kernel_size,
                           layer.groups, stage.stride if j == 0 else 1))
            in_channels = layer.channels
        stages.append(blocks)
    return stem_module, stages


@MODELS.register_module()
class NASBNN(BaseModule):
    """A NAS-BNN subnet as a plain backbone (MMPretrain and MMDetection).

    Built from an architecture spec of a search space: an 8-bit LSQ stem,
    then one :class:`BinarySeparableBlock` per layer of the spec, the stride
    of each stage on its first block. Module names mirror
    :class:`SuperBNN` (``stem.conv``, ``stages.<i>.<j>.conv1``...), so the
    weights of a subnet exported with ``SuperBNN.to_static`` or
    ``tools/export_subnet.py`` load by name, e.g. with
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    ``supernet_checkpoint`` instead slices a supernet checkpoint to this
    spec when the weights are initialised (:meth:`init_weights`).

    Args:
        arch (str | dict | ArchSpec): The subnet: a preset of Table 6
            (``'A'``..``'F'``), a JSON/YAML spec file or a spec dict.
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
        weight_norm (bool | str): Channel-wise weight normalization (eq. 6)
            of the binary convolutions: True/'paper', 'official' or False
            (see :class:`BinaryConv2d`); the supernet's. Defaults to True.
        stem_quantize_input (bool): Quantize the stem's input to 8 bits.
            Defaults to True.
        supernet_checkpoint (str, optional): A supernet checkpoint of
            ``search_space`` (``SandwichSupernet`` or ``SuperBNN`` keys) to
            slice to this spec in :meth:`init_weights`, through
            ``SuperBNN.to_static``. Its BN statistics are the supernet's
            shared ones (not recalibrated). Defaults to None.
        supernet_group_slicing (str): ``group_slicing`` of that supernet
            (see :class:`SuperBNN`). Defaults to 'cyclic'.
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
                 weight_norm: WeightNormType = True,
                 stem_quantize_input: bool = True,
                 supernet_checkpoint: Optional[str] = None,
                 supernet_group_slicing: str = 'cyclic',
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if supernet_checkpoint is not None and init_cfg is not None:
            raise ValueError('supernet_checkpoint and init_cfg both set: give '
                             'one source of weights')
        if supernet_group_slicing not in GROUP_SLICINGS:
            raise ValueError(f'supernet_group_slicing: '
                             f'{supernet_group_slicing!r} not in '
                             f'{GROUP_SLICINGS}')
        self.space = SearchSpace.from_config(search_space)
        self.arch = load_arch(arch)
        validate_arch(self.arch, self.space, non_decreasing=False)
        num_stages = len(self.space.stages)
        self.out_indices = normalize_out_indices(out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages: {frozen_stages} not in '
                             f'[-1, {num_stages}]')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.weight_norm = weight_norm
        self.stem_quantize_input = stem_quantize_input
        self.supernet_checkpoint = supernet_checkpoint
        self.supernet_group_slicing = supernet_group_slicing

        self.stem, self.stages = build_subnet_layers(
            self.arch, self.space, stem_quantize_input,
            lambda *args: BinarySeparableBlock(*args, weight_norm))
        self._freeze_stages()

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """tuple[int]: Widths of the returned stages, e.g. for an FPN's
        ``in_channels``."""
        return tuple(self.arch.stages[i][-1].channels
                     for i in self.out_indices)

    def init_weights(self) -> None:
        """Initialise (``init_cfg``), then slice ``supernet_checkpoint``."""
        if self._is_init:
            return
        super().init_weights()
        if self.supernet_checkpoint is not None:
            # NOTE: imported here since export imports this module.
            from ..export import load_supernet_weights
            load_supernet_weights(self, self.supernet_checkpoint,
                                  self.supernet_group_slicing)

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

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the subnet.

        Args:
            x (Tensor): Images (N, C_img, H, W).

        Returns:
            tuple[Tensor]: Outputs (N, C_i, H_i, W_i) of ``out_indices``.
        """
        x = self.stem(x)
        outs = []
        for i, blocks in enumerate(self.stages):
            for block in blocks:
                x = block(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
