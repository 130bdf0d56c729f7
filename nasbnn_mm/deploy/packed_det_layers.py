"""Bit-packed forms of the binary blocks of a detector's neck and heads.

:class:`~nasbnn_mm.models.detection.BinaryConvBlock` (FPN convs, RPN conv,
box-head convs) and :class:`~nasbnn_mm.models.detection.BinaryLinearBlock`
(box-head FCs) compute ``RPReLU(BN(alpha * binconv(RSign(x))) + shortcut)``.
Their packed forms pack ``sign(x + b)`` and run one XNOR-popcount kernel of
:mod:`nasbnn_mm.ops` whose float epilogue applies the folded ``alpha`` and
BN, the Bi-Real shortcut add and the RPReLU (see :mod:`.packed_layers`). A
binary FC is a 1×1 conv on a 1×1 map: the kernel then is a binary GEMM of
the N rows by the C_out weight rows. The signs are the float blocks'
exactly; only the float rounding of the folded affine differs.

Importing this module imports MMDetection (through
:mod:`nasbnn_mm.models.detection`).
"""
import torch
import torch.nn as nn
from mmcv.ops import RoIAlign
from torch import Tensor

from nasbnn_mm.models.detection import BinaryConvBlock, BinaryLinearBlock
from nasbnn_mm.models.detection.binary_blocks import CONV_MODULE_ATTRS
from nasbnn_mm.models.layers import RSign
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.ops import roi_align_nhwc
from .packed_layers import PackedBinaryConv2d, copy_sign_shift

__all__ = [
    'PackedBinaryConvBlock', 'PackedBinaryLinearBlock', 'ChannelsLastRoIAlign'
]


class PackedBinaryConvBlock(nn.Module):
    """Packed :class:`BinaryConvBlock` (eval semantics), same interface.

    Keeps the attributes MMCV's ``ConvModule`` reads (``in_channels``,
    ``out_channels``, ...), so it replaces the block inside an FPN.

    Args:
        block (BinaryConvBlock): The float block, BN running statistics
            folded.

    Shape:
        - Input: (N, C_in, H, W) float32.
        - Output: (N, C_out, H_out, W_out) float32 in channels_last memory
          (the kernels' layout: PyTorch ops take it as they take NCHW;
          ops that read raw NCHW memory need ``.contiguous()`` first).
    """

    def __init__(self, block: BinaryConvBlock) -> None:
        super().__init__()
        for name in CONV_MODULE_ATTRS:
            setattr(self, name, getattr(block, name))
        self.has_shortcut = block.has_shortcut
        self.sign = RSign(block.in_channels).requires_grad_(False)
        copy_sign_shift(self.sign, block.sign, 'sign')
        self.conv = PackedBinaryConv2d.from_float(block.conv, block.bn,
                                                  block.act)

    @torch.no_grad()
    def forward(self, x: Tensor, reference: bool = False) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H_out, W_out).

        Args:
            x (Tensor): Float input, any memory format.
            reference (bool): Pure-PyTorch reference ops instead of the
                kernels. Defaults to False.
        """
        x = x.contiguous(memory_format=torch.channels_last)
        pack = ops.pack_activation_ref if reference else ops.pack_activation
        packed = pack(x, self.groups, self.sign.bias)
        residual = x if self.has_shortcut else None
        return self.conv(packed, residual, reference)


class PackedBinaryLinearBlock(nn.Module):
    """Packed :class:`BinaryLinearBlock` (eval semantics), same interface.

    Args:
        block (BinaryLinearBlock): The float block, BN running statistics
            folded.

    Shape:
        - Input: (N, C_in) float32.
        - Output: (N, C_out) float32.
    """

    def __init__(self, block: BinaryLinearBlock) -> None:
        super().__init__()
        self.in_features = block.in_features
        self.out_features = block.out_features
        self.has_shortcut = block.has_shortcut
        self.sign = RSign(block.in_features).requires_grad_(False)
        copy_sign_shift(self.sign, block.sign, 'sign')
        self.fc = PackedBinaryConv2d.from_linear(block.fc, block.bn, block.act)

    @torch.no_grad()
    def forward(self, x: Tensor, reference: bool = False) -> Tensor:
        """(N, C_in) -> (N, C_out): a binary GEMM with a fused epilogue."""
        # (N, C, 1, 1) is both NCHW and channels_last contiguous
        x = x.contiguous()[:, :, None, None]
        pack = ops.pack_activation_ref if reference else ops.pack_activation
        packed = pack(x, 1, self.sign.bias)
        residual = x if self.has_shortcut else None
        return self.fc(packed, residual, reference).flatten(1)


class ChannelsLastRoIAlign(nn.Module):
    """Average RoIAlign on channels_last maps, in place of MMCV's
    ``RoIAlign`` (``pool_mode='avg'``) inside a RoI extractor.

    Same outputs as the MMCV layer it is made from (bitwise, see
    :func:`nasbnn_mm.ops.roi_align_nhwc`), reading the packed backbone's
    and neck's channels_last maps without converting them to NCHW.

    Args:
        output_size (tuple[int, int]): (PH, PW) bins per RoI.
        spatial_scale (float): Map pixels per input pixel.
        sampling_ratio (int): Samples per bin side; 0: adaptive.
        aligned (bool): Pixel-centre (-0.5) box shift.

    Shape:
        - Input: (N, C, H, W) float32 maps and (K, 5) RoIs.
        - Output: (K, C, PH, PW) float32, contiguous.
    """

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool) -> None:
        super().__init__()
        self.output_size = tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    @staticmethod
    def replaces(layer: nn.Module) -> bool:
        """Whether ``layer`` is an MMCV ``RoIAlign`` this op computes (average
        pooling, MMCV's own op; not max pooling or torchvision's)."""
        return (isinstance(layer, RoIAlign) and layer.pool_mode == 'avg'
                and not layer.use_torchvision)

    @classmethod
    def from_mmcv(cls, layer: nn.Module) -> 'ChannelsLastRoIAlign':
        """The equivalent of an MMCV ``RoIAlign``, or a ``ValueError`` for
        modes it does not compute (see :meth:`replaces`)."""
        if not cls.replaces(layer):
            raise ValueError(
                f'RoIAlign(pool_mode={layer.pool_mode!r}, use_torchvision='
                f'{layer.use_torchvision}) has no channels_last form; only '
                "pool_mode='avg' with MMCV's op has")
        return cls(layer.output_size, layer.spatial_scale,
                   layer.sampling_ratio, layer.aligned)

    def forward(self, x: Tensor, rois: Tensor) -> Tensor:
        return roi_align_nhwc(x, rois, self.output_size, self.spatial_scale,
                              self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale='
                f'{self.spatial_scale}, sampling_ratio={self.sampling_ratio}, '
                f'aligned={self.aligned}')
