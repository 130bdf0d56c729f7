"""A NAS-BNN subnet running on bit-packed binary kernels (CPU inference).

NAS-BNN (https://arxiv.org/abs/2408.15484) subnets are binary separable
blocks. :class:`PackedNASBNN` runs a static :class:`NASBNN` with the kernels
of :mod:`nasbnn_mm.ops`: each binary convolution keeps only the sign bits
of its weight, and its per-channel scale ``alpha``, the BN after it (eval
statistics), the Bi-Real shortcut add and the RPReLU are fused into the
kernel's float epilogue::

    pack(x + b_sign1)  -> XNOR-popcount k×k conv -> dot * s1 + t1 + pool(x)
                       -> RPReLU                                 = out
    pack(out + b_sign2) -> XNOR-popcount 1×1 conv -> dot * s2 + t2
                       + tile(out) -> RPReLU

with ``s = alpha * gamma / sqrt(var + eps)`` and
``t = beta - mean * gamma / sqrt(var + eps)`` per output channel. The signs
are the float model's exactly (the kernels are exact on +-1), so only the
float rounding of the folded affine differs. The 8-bit LSQ stem and the FP
classifier run as in :class:`NASBNN`. Activations between blocks are kept
in channels_last memory, the kernels' layout.

Binary weights are stored 1 bit each (:func:`pack_bits_flat`); the kernels'
blocked layout is rebuilt from them on first use.
"""
import io
import os
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from nasbnn_mm.models.backbones.nasbnn import (NASBNN, BinarySeparableBlock,
                                               build_subnet_layers,
                                               normalize_out_indices)
from nasbnn_mm.models.layers import BinaryConv2d, RPReLU, RSign
from nasbnn_mm.models.layers.binary_conv import binary_conv_weight
from nasbnn_mm.nas import (DEFAULT_SPACE, ArchSpec, SearchSpace, load_arch,
                           validate_arch)
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.registry import MODELS

__all__ = [
    'PACKED_FORMAT', 'PackedBinaryConv2d', 'PackedSeparableBlock',
    'PackedNASBNN', 'pack_nasbnn', 'save_packed', 'load_packed'
]

PACKED_FORMAT = 'nasbnn_mm.packed_nasbnn'
PACKED_VERSION = 1
ArchType = Union[str, dict, ArchSpec]
# A key only float NASBNN state dicts have (packed blocks fold their BN).
_FLOAT_KEY = 'stages.0.0.bn1.running_mean'


class PackedBinaryConv2d(nn.Module):
    """Binary conv + folded BN + shortcut add + RPReLU on packed inputs.

    Buffers: ``weight_bits`` (the weight signs, 1 bit each, in
    (C_out, KH, KW, C_in / G) order, see :func:`ops.pack_bits_flat`),
    ``scale`` and ``bias`` (the folded ``alpha`` and BN, (C_out, )) and the
    RPReLU ``act_bias_in``, ``act_weight``, ``act_bias_out``.

    Args:
        in_channels (int): C_in.
        out_channels (int): C_out.
        kernel_size (int): Square kernel size K.
        stride (int): Stride. Defaults to 1.
        padding (int): Zero padding. Defaults to 0.
        groups (int): Groups. Defaults to 1.

    Shape:
        - Input: packed (N, H, W, G * Wg) uint64 and a residual
          (N, C_r, OH, OW) float32 added with channel tiling.
        - Output: (N, C_out, OH, OW) float32, channels_last memory.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'channels {in_channels} -> {out_channels} not '
                             f'divisible by groups {groups}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.groups = groups
        bits = self.num_binary_weights
        self.register_buffer('weight_bits',
                             torch.zeros(-(-bits // 64), dtype=torch.uint64))
        for name, value in (('scale', 1.), ('bias', 0.), ('act_bias_in', 0.),
                            ('act_weight', 0.25), ('act_bias_out', 0.)):
            self.register_buffer(name, torch.full((out_channels, ), value))
        self._blocked: Optional[Tensor] = None
        self._blocked_key: Optional[Tuple[int, int]] = None

    @property
    def num_binary_weights(self) -> int:
        """int: Binary weights of this conv, ``C_out * C_in / G * K * K``."""
        return (self.out_channels * self.in_channels // self.groups *
                self.kernel_size**2)

    @classmethod
    @torch.no_grad()
    def from_float(cls, conv: BinaryConv2d, bn: nn.BatchNorm2d,
                   act: RPReLU) -> 'PackedBinaryConv2d':
        """Fold a :class:`BinaryConv2d`, its BN (eval statistics) and RPReLU.

        Args:
            conv (BinaryConv2d): With binary weights and square kernel,
                stride and padding.
            bn (nn.BatchNorm2d): The BN after it (running statistics).
            act (RPReLU): The RPReLU after the shortcut add.

        Raises:
            ValueError: If ``conv`` does not binarize its weights or is not
                a plain square zero-padded convolution.
        """
        k, s, p = conv.kernel_size, conv.stride, conv.padding
        if not conv.binary_weights:
            raise ValueError('conv.binary_weights is False: only binary '
                             'weights can be packed')
        if (len(set(k)) != 1 or len(set(s)) != 1 or isinstance(p, str)
                or len(set(p)) != 1 or set(conv.dilation) != {1}
                or conv.padding_mode != 'zeros'):
            raise ValueError(
                f'conv: kernel {k}, stride {s}, padding {p}, dilation '
                f'{conv.dilation}, {conv.padding_mode}: only square, '
                'undilated, zero-padded convolutions can be packed')
        packed = cls(conv.in_channels, conv.out_channels, k[0], s[0], p[0],
                     conv.groups)
        weight = binary_conv_weight(conv.weight.float(), True,
                                    conv.weight_norm, conv.bi_transform)
        # alpha * sign(W): every entry of channel o is +-alpha_o.
        alpha = weight.abs().flatten(1).amax(1).double()
        packed.weight_bits.copy_(
            ops.pack_bits_flat(weight.permute(0, 2, 3, 1) >= 0))
        a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.double() - bn.running_mean.double() * a
        if conv.bias is not None:
            shift = shift + a * conv.bias.double()
        packed.scale.copy_(alpha * a)
        packed.bias.copy_(shift)
        packed.act_bias_in.copy_(act.bias_in)
        packed.act_weight.copy_(act.weight)
        packed.act_bias_out.copy_(act.bias_out)
        return packed

    def packed_weight(self) -> Tensor:
        """The weight signs as (C_out, KH, KW, Wg) uint64 (per-group
        word padding), the input of :func:`ops.block_weight`."""
        k, cin_g = self.kernel_size, self.in_channels // self.groups
        bits = ops.unpack_bits_flat(self.weight_bits, self.num_binary_weights)
        return ops._pack_last_dim(bits.view(self.out_channels, k, k, cin_g), 1)

    def blocked_weight(self) -> Tensor:
        """The kernels' blocked weight, rebuilt when ``weight_bits``
        changes."""
        key = (self.weight_bits.data_ptr(), self.weight_bits._version)
        if self._blocked is None or key != self._blocked_key:
            self._blocked = ops.block_weight(self.packed_weight(), self.groups)
            self._blocked_key = key
        return self._blocked

    def _act(self) -> Tuple[Tensor, Tensor, Tensor]:
        return self.act_bias_in, self.act_weight, self.act_bias_out

    def forward(self,
                x: Tensor,
                residual: Tensor,
                reference: bool = False) -> Tensor:
        """Convolve packed ``x``, add ``residual`` (channel-tiled), RPReLU.

        Args:
            x (Tensor): (N, H, W, G * Wg) uint64.
            residual (Tensor): (N, C_r, OH, OW) float32.
            reference (bool): Use the pure-PyTorch reference instead of
                the kernels. Defaults to False.

        Returns:
            Tensor: (N, C_out, OH, OW) float32.
        """
        if reference:
            return ops.binary_conv2d_ref(x, self.packed_weight(),
                                         self.in_channels, self.out_channels,
                                         self.stride, self.padding,
                                         self.groups, self.scale, self.bias,
                                         residual, self._act())
        return ops.binary_conv2d(x, self.blocked_weight(), self.in_channels,
                                 self.out_channels, self.stride, self.padding,
                                 self.groups, self.scale, self.bias, residual,
                                 self._act())

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'kernel_size={self.kernel_size}, stride={self.stride}, '
                f'padding={self.padding}, groups={self.groups}')


class PackedSeparableBlock(nn.Module):
    """Packed form of :class:`BinarySeparableBlock`.

    Args:
        in_channels (int): Input width C_in.
        out_channels (int): Output width C_out.
        kernel_size (int): Kernel size of the k×k conv.
        groups (int): Groups of the k×k conv.
        stride (int): Stride of the k×k conv, 1 or 2.

    Shape:
        - Input: (N, C_in, H, W) float32.
        - Output: (N, C_out, H / stride, W / stride) float32, channels_last.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 groups: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride {stride} not in (1, 2)')
        self.stride = stride
        self.sign1 = RSign(in_channels)
        self.conv1 = PackedBinaryConv2d(in_channels, in_channels, kernel_size,
                                        stride, (kernel_size - 1) // 2, groups)
        self.sign2 = RSign(in_channels)
        self.conv2 = PackedBinaryConv2d(in_channels, out_channels, 1)
        for sign in (self.sign1, self.sign2):
            sign.bias.requires_grad_(False)

    @classmethod
    @torch.no_grad()
    def from_float(cls, block: BinarySeparableBlock) -> 'PackedSeparableBlock':
        """Pack a float block (eval semantics: BN running statistics)."""
        for name in ('sign1', 'sign2'):
            if not getattr(block, name).binary:
                raise ValueError(f'{name}.binary is False: only binary '
                                 'activations can be packed')
        conv1, conv2 = block.conv1, block.conv2
        packed = cls(conv1.in_channels, conv2.out_channels,
                     conv1.kernel_size[0], conv1.groups, block.stride)
        packed.sign1.bias.copy_(block.sign1.bias)
        packed.sign2.bias.copy_(block.sign2.bias)
        packed.conv1 = PackedBinaryConv2d.from_float(conv1, block.bn1,
                                                     block.act1)
        packed.conv2 = PackedBinaryConv2d.from_float(conv2, block.bn2,
                                                     block.act2)
        return packed

    def forward(self, x: Tensor, reference: bool = False) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / s, W / s)."""
        pack = ops.pack_activation_ref if reference else ops.pack_activation
        shortcut = F.avg_pool2d(x, 2, stride=2) if self.stride == 2 else x
        out = self.conv1(
            pack(x, self.conv1.groups, self.sign1.bias), shortcut, reference)
        return self.conv2(pack(out, 1, self.sign2.bias), out, reference)


@MODELS.register_module()
class PackedNASBNN(BaseModule):
    """A NAS-BNN subnet on bit-packed binary kernels, for CPU inference.

    Same arguments and outputs as :class:`NASBNN` (a tuple of the stage
    features of ``out_indices``), so a detector or classifier config can
    swap ``backbone.type`` to ``'nasbnn_mm.PackedNASBNN'`` at test time
    (with ``custom_imports=dict(imports=['nasbnn_mm', 'nasbnn_mm.deploy'])``).
    Weights come from, in this order of precedence:

    - ``checkpoint``: a packed file (:func:`save_packed`) or a float
      checkpoint (a :class:`NASBNN`, classifier or detector state dict;
      keys under ``checkpoint_prefix`` are packed on load);
    - any later ``load_state_dict`` of float NASBNN keys (``load_from`` of
      a detector or classifier, ``init_cfg=dict(type='Pretrained', ...)``):
      they are converted on the fly;
    - ``supernet_checkpoint`` (as in :class:`NASBNN`, in
      :meth:`init_weights`).

    Without any the binary weights are all -1 (a valid but untrained net).
    The model is inference only (eval semantics, no gradients); the
    training options ``frozen_stages`` and ``norm_eval`` are accepted so a
    NASBNN config can swap types, and have no effect.

    Args:
        arch (str | dict | ArchSpec): The subnet (preset, file or dict).
        search_space (str | dict): Its search space. Defaults to
            'nasbnn_in1k'.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to (-1, ).
        frozen_stages (int): No effect. Defaults to -1.
        norm_eval (bool): No effect. Defaults to False.
        weight_norm (bool): Weight normalization of the float model that
            float checkpoints belong to. Defaults to True.
        stem_quantize_input (bool): Quantize the stem's input to 8 bits.
            Defaults to True.
        supernet_checkpoint (str, optional): See :class:`NASBNN`.
            Defaults to None.
        supernet_group_slicing (str): See :class:`NASBNN`. Defaults to
            'cyclic'.
        num_classes (int, optional): Add the FP classifier ``fc`` (for
            :meth:`logits`). Defaults to None.
        checkpoint (str, optional): Packed file or float checkpoint to load
            now. Defaults to None.
        checkpoint_prefix (str): Prefix of the backbone keys in a float
            ``checkpoint``; the classifier is read from ``head.fc.``.
            Defaults to 'backbone.'.
        init_cfg (dict | list[dict], optional): Initialization config.

    Example:
        >>> from nasbnn_mm.models.backbones.nasbnn import NASBNN
        >>> float_model = NASBNN('A', 'nasbnn_in1k').eval()
        >>> packed = pack_nasbnn(float_model)
        >>> x = torch.randn(1, 3, 224, 224)
        >>> [o.shape for o in packed(x)]
        [torch.Size([1, 768, 7, 7])]
    """

    def __init__(self,
                 arch: ArchType,
                 search_space: Union[str, dict] = DEFAULT_SPACE,
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 weight_norm: bool = True,
                 stem_quantize_input: bool = True,
                 supernet_checkpoint: Optional[str] = None,
                 supernet_group_slicing: str = 'cyclic',
                 num_classes: Optional[int] = None,
                 checkpoint: Optional[str] = None,
                 checkpoint_prefix: str = 'backbone.',
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.space = SearchSpace.from_config(search_space)
        self.arch = load_arch(arch)
        validate_arch(self.arch, self.space, non_decreasing=False)
        self.out_indices = normalize_out_indices(out_indices,
                                                 len(self.space.stages))
        self.weight_norm = weight_norm
        self.stem_quantize_input = stem_quantize_input
        self.supernet_checkpoint = supernet_checkpoint
        self.supernet_group_slicing = supernet_group_slicing
        self.num_classes = num_classes
        self.stem, self.stages = build_subnet_layers(self.arch, self.space,
                                                     stem_quantize_input,
                                                     PackedSeparableBlock)
        self.fc = (
            nn.Linear(self.arch.stages[-1][-1].channels, num_classes)
            if num_classes is not None else None)
        self.requires_grad_(False)
        self.eval()
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, checkpoint_prefix)

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """tuple[int]: Widths of the returned stages."""
        return tuple(self.arch.stages[i][-1].channels
                     for i in self.out_indices)

    def float_model(self) -> NASBNN:
        """A float :class:`NASBNN` of the same arch and options (eval)."""
        return NASBNN(
            self.arch.to_dict(),
            self.space.to_dict(),
            out_indices=self.out_indices,
            weight_norm=self.weight_norm,
            stem_quantize_input=self.stem_quantize_input).eval()

    @torch.no_grad()
    def load_float(self,
                   backbone: NASBNN,
                   fc: Optional[nn.Linear] = None) -> None:
        """Pack the weights of a float backbone (and classifier) into this
        model (BN running statistics, i.e. eval semantics)."""
        if backbone.arch != self.arch:
            raise ValueError(f'backbone arch {backbone.arch.to_dict()} != '
                             f'{self.arch.to_dict()}')
        self.stem.load_state_dict(backbone.stem.state_dict())
        for blocks, float_blocks in zip(self.stages, backbone.stages):
            for j, block in enumerate(float_blocks):
                blocks[j] = PackedSeparableBlock.from_float(block)
        if fc is not None:
            if self.fc is None or self.fc.weight.shape != fc.weight.shape:
                raise ValueError(f'fc {tuple(fc.weight.shape)} does not fit '
                                 f'num_classes {self.num_classes}')
            self.fc.load_state_dict(fc.state_dict())
        self.requires_grad_(False)

    def _packed_state(self, float_state: Mapping[str, Tensor],
                      where: str) -> Dict[str, Tensor]:
        """Pack a float NASBNN state dict into this model's state dict."""
        backbone = self.float_model()
        try:
            backbone.load_state_dict(float_state)
        except RuntimeError as e:
            raise ValueError(f'{where}: not a NASBNN of arch '
                             f'{self.arch.to_dict()}: {e}') from None
        converted = PackedNASBNN(
            self.arch.to_dict(),
            self.space.to_dict(),
            stem_quantize_input=self.stem_quantize_input)
        converted.load_float(backbone)
        return converted.state_dict()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args,
                              **kwargs) -> None:
        # NOTE: float NASBNN keys (e.g. a detector's load_from) are packed
        # here, before the children read their entries from ``state_dict``.
        if prefix + _FLOAT_KEY in state_dict:
            float_state = {
                k[len(prefix):]: state_dict.pop(k)
                for k in list(state_dict)
                if k.startswith(prefix) and not k.startswith(prefix + 'fc.')
            }
            for key, value in self._packed_state(float_state,
                                                 'state_dict').items():
                state_dict[prefix + key] = value
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def load_checkpoint(self,
                        checkpoint: Union[str, Mapping[str, Any]],
                        prefix: str = 'backbone.') -> None:
        """Load a packed file or a float checkpoint.

        Args:
            checkpoint (str | dict): Path or loaded dict: a packed file, or
                a float checkpoint (``state_dict`` with ``prefix`` keys
                and optional ``head.fc.*``, or a bare NASBNN state dict).
            prefix (str): Backbone prefix of a float checkpoint. Defaults
                to 'backbone.'.
        """
        where = checkpoint if isinstance(checkpoint, str) else 'checkpoint'
        ckpt = _read(checkpoint)
        if ckpt.get('format') == PACKED_FORMAT:
            state = dict(ckpt['state_dict'])
            if self.fc is None:
                state = {
                    k: v
                    for k, v in state.items() if not k.startswith('fc.')
                }
            self.load_state_dict(state)
            return
        state = ckpt.get('state_dict', ckpt)
        if not any(k.startswith(prefix) for k in state):
            prefix = ''
        backbone = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
            and not k.startswith('head.') and not k.startswith('neck.')
        }
        packed = self._packed_state(backbone, where)
        if self.fc is not None:
            for name in ('weight', 'bias'):
                if f'head.fc.{name}' not in state:
                    raise ValueError(f'{where}: no head.fc.{name} for the '
                                     f'classifier (num_classes '
                                     f'{self.num_classes})')
                packed[f'fc.{name}'] = state[f'head.fc.{name}']
        self.load_state_dict(packed)

    def init_weights(self) -> None:
        """Initialise (``init_cfg``), then pack ``supernet_checkpoint``."""
        if self._is_init:
            return
        super().init_weights()
        if self.supernet_checkpoint is not None:
            from nasbnn_mm.models.export import load_supernet_weights
            backbone = self.float_model()
            load_supernet_weights(backbone, self.supernet_checkpoint,
                                  self.supernet_group_slicing)
            self.load_float(backbone)

    def train(self, mode: bool = True) -> 'PackedNASBNN':
        """No effect beyond the flag: packed models are inference only."""
        return super().train(mode)

    @torch.no_grad()
    def forward_stages(self,
                       x: Tensor,
                       reference: bool = False) -> Tuple[Tensor, ...]:
        """Outputs of every stage (channels_last memory).

        Args:
            x (Tensor): Images (N, C_img, H, W).
            reference (bool): Use the pure-PyTorch reference ops instead
                of the kernels. Defaults to False.
        """
        x = self.stem(x).contiguous(memory_format=torch.channels_last)
        outs = []
        for blocks in self.stages:
            for block in blocks:
                x = block(x, reference)
            outs.append(x)
        return tuple(outs)

    def forward(self,
                x: Tensor,
                reference: bool = False) -> Tuple[Tensor, ...]:
        """Run the subnet.

        Args:
            x (Tensor): Images (N, C_img, H, W).
            reference (bool): Pure-PyTorch reference ops. Defaults to False.

        Returns:
            tuple[Tensor]: Outputs (N, C_i, H_i, W_i) of ``out_indices``,
            contiguous, as :class:`NASBNN`.
        """
        outs = self.forward_stages(x, reference)
        return tuple(outs[i].contiguous() for i in self.out_indices)

    @torch.no_grad()
    def logits(self, x: Tensor, reference: bool = False) -> Tensor:
        """Classifier logits: global average pooling of the last stage, then
        ``fc`` (as MMPretrain's GlobalAveragePooling + LinearClsHead).

        Returns:
            Tensor: (N, num_classes).
        """
        if self.fc is None:
            raise ValueError('logits: built without num_classes (no fc)')
        feat = self.forward_stages(x, reference)[-1]
        return self.fc(F.adaptive_avg_pool2d(feat, 1).flatten(1))

    def size_report(self) -> Dict[str, float]:
        """Sizes of the binary weights, packed and as fp32.

        Returns:
            dict: ``binary_weights`` (count), ``packed_bytes`` (their
            uint64 words), ``fp32_bytes`` (4 bytes each), ``ratio``
            (fp32 / packed), ``affine_bytes`` (the per-channel float
            buffers of the binary layers), ``ratio_with_affine`` and
            ``other_bytes`` (stem, RSign shifts, classifier).
        """
        convs = [
            m for m in self.modules() if isinstance(m, PackedBinaryConv2d)
        ]
        weights = sum(c.num_binary_weights for c in convs)
        packed = sum(c.weight_bits.numel() * 8 for c in convs)
        affine = sum(5 * c.out_channels * 4 for c in convs)
        total = sum(t.numel() * t.element_size()
                    for t in self.state_dict().values())
        return dict(
            binary_weights=weights,
            packed_bytes=packed,
            fp32_bytes=weights * 4,
            ratio=weights * 4 / packed,
            affine_bytes=affine,
            ratio_with_affine=weights * 4 / (packed + affine),
            other_bytes=total - packed - affine)

    def packed_dict(self, meta: Optional[Dict[str, Any]] = None) -> dict:
        """The packed file contents (plain types and CPU tensors only)."""
        return dict(
            format=PACKED_FORMAT,
            version=PACKED_VERSION,
            arch=self.arch.to_dict(),
            search_space=self.space.to_dict(),
            config=dict(
                weight_norm=self.weight_norm,
                stem_quantize_input=self.stem_quantize_input,
                num_classes=self.num_classes),
            state_dict=OrderedDict(
                (k, v.detach().cpu()) for k, v in self.state_dict().items()),
            meta=dict(meta or {}))


def _read(checkpoint: Union[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    from mmengine.fileio import get as get_bytes
    return torch.load(
        io.BytesIO(get_bytes(checkpoint)),
        map_location='cpu',
        weights_only=True)


def pack_nasbnn(backbone: NASBNN,
                fc: Optional[nn.Linear] = None) -> PackedNASBNN:
    """Pack a float :class:`NASBNN` (and its classifier).

    Args:
        backbone (NASBNN): The float subnet; its BN running statistics are
            folded (eval semantics).
        fc (nn.Linear, optional): Classifier over the last stage.

    Returns:
        PackedNASBNN: Same arch, out_indices and options, in eval mode.
    """
    packed = PackedNASBNN(
        backbone.arch.to_dict(),
        backbone.space.to_dict(),
        out_indices=backbone.out_indices,
        weight_norm=backbone.weight_norm,
        stem_quantize_input=backbone.stem_quantize_input,
        num_classes=None if fc is None else fc.out_features)
    packed.load_float(backbone, fc)
    return packed


def save_packed(model: PackedNASBNN,
                path: str,
                meta: Optional[Dict[str, Any]] = None) -> int:
    """Save a packed model (readable with ``weights_only=True``).

    Returns:
        int: The file size in bytes.
    """
    dirname = os.path.dirname(os.path.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    torch.save(model.packed_dict(meta), path)
    return os.path.getsize(path)


def load_packed(path: Union[str, Mapping[str, Any]],
                out_indices: Optional[Sequence[int]] = None) -> PackedNASBNN:
    """Load a file of :func:`save_packed`.

    Args:
        path (str | dict): The file or its loaded contents.
        out_indices (Sequence[int], optional): Stages to return. Defaults
            to the last one.

    Raises:
        ValueError: If the file is not a packed NAS-BNN.
    """
    ckpt = _read(path)
    if ckpt.get('format') != PACKED_FORMAT:
        raise ValueError(f'{path if isinstance(path, str) else "dict"}: not '
                         f'a packed NAS-BNN file (format '
                         f'{ckpt.get("format")!r}, expected '
                         f'{PACKED_FORMAT!r}); pack float checkpoints with '
                         'tools/deploy/pack_subnet.py')
    if ckpt.get('version') != PACKED_VERSION:
        raise ValueError(f'packed file version {ckpt.get("version")} not '
                         f'supported (expected {PACKED_VERSION})')
    model = PackedNASBNN(
        ckpt['arch'],
        ckpt['search_space'],
        out_indices=(-1, ) if out_indices is None else out_indices,
        **ckpt['config'])
    model.load_state_dict(ckpt['state_dict'])
    return model
