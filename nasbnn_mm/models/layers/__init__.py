"""Binary, quantized and dynamic (sliceable) layers of NAS-BNN.

Importing this package registers ``BinaryConv2d`` and ``LSQConv2d`` in
MMEngine's root ``MODELS`` (for ``conv_cfg`` of MMCV ``ConvModule``s) and
``BinaryConv2d``, ``LSQConv2d``, ``RSign`` and ``RPReLU`` in
``nasbnn_mm.registry.MODELS``.
"""
from nasbnn_mm.registry import MODELS
from .activations import (ApproxSignFunction, RPReLU, RSign, binary_sign,
                          sign_forward)
from .bi_transformation import BiTransformation
from .binary_conv import (BinaryConv2d, SignSTEFunction, binarize_weight,
                          binary_conv_weight, normalize_weight, sign_ste)
from .conv_operands import (CONV_OPERAND_DTYPES, conv_operand_dtype,
                            float_conv2d)
from .dorefa import (DoReFaActivation, DoReFaConv2d,
                     dorefa_binarize_activation, dorefa_binarize_weight)
from .dynamic_activations import DynamicRPReLU, DynamicRSign
from .dynamic_batch_norm import DynamicBatchNorm2d
from .dynamic_binary_conv import DynamicBinaryConv2d
from .dynamic_linear import DynamicLinear
from .dynamic_lsq_conv import DynamicLSQConv2d
from .dynamic_op import DynamicMixin
from .kernel_transformation import KernelTransformation, center_crop_kernel
from .lsq import LSQConv2d, LSQQuantizer, grad_scale, round_ste
from .shortcut import bireal_shortcut
from .sliced_weight import ColumnCycle, slice_weight, sliced_grad_accumulation
from .switches import binarization, set_binarization
from .xnor_conv import xnor_conv2d

MODELS.register_module(module=RSign)
MODELS.register_module(module=RPReLU)

__all__ = [
    'sign_forward', 'ApproxSignFunction', 'binary_sign', 'RSign', 'RPReLU',
    'BiTransformation', 'KernelTransformation', 'center_crop_kernel',
    'SignSTEFunction', 'sign_ste', 'normalize_weight', 'binarize_weight',
    'binary_conv_weight', 'BinaryConv2d', 'LSQQuantizer', 'LSQConv2d',
    'grad_scale', 'round_ste', 'dorefa_binarize_weight',
    'dorefa_binarize_activation', 'DoReFaConv2d', 'DoReFaActivation',
    'DynamicMixin', 'DynamicBinaryConv2d', 'DynamicLSQConv2d',
    'DynamicBatchNorm2d', 'DynamicRSign', 'DynamicRPReLU', 'DynamicLinear',
    'bireal_shortcut', 'set_binarization', 'binarization', 'ColumnCycle',
    'slice_weight', 'sliced_grad_accumulation', 'xnor_conv2d',
    'CONV_OPERAND_DTYPES', 'conv_operand_dtype', 'float_conv2d'
]
