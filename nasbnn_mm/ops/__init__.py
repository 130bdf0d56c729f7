"""Bit-packed binary kernels for real 1-bit inference on CPUs.

Importing this package does not load the C++ extension ``nasbnn_mm._ext``;
the first kernel call does, and raises a clear ``ImportError`` if it was not
built (the pure-PyTorch references ``*_ref`` never need it).
"""
# yapf: disable
from .binary_conv import (EXT_MISSING_MESSAGE, available_kernel_paths,
                          binary_conv2d, binary_conv2d_ref, binary_gemm,
                          binary_gemm_ref, block_weight, cpu_features,
                          force_kernel_path, kernel_path, kernel_threads,
                          load_ext, num_words, pack_activation,
                          pack_activation_ref, pack_bits_flat, pack_weight,
                          pack_weight_ref, set_kernel_path,
                          unpack_activation_ref, unpack_bits_flat,
                          unpack_weight_ref)
# yapf: enable
from .fused import (BinaryConvParams, binary_block, binary_block_args,
                    binary_block_prepared, binary_block_ref,
                    binary_conv2d_pack, binary_conv2d_pack_ref, rprelu_pack,
                    rprelu_pack_ref)
from .head import classifier_head, classifier_head_ref, head_weight_blocks
from .roi_align import roi_align_nhwc
from .stem import QuantizedStemParams, quantized_stem, quantized_stem_ref

__all__ = [
    'EXT_MISSING_MESSAGE', 'load_ext', 'kernel_path', 'set_kernel_path',
    'available_kernel_paths', 'cpu_features', 'force_kernel_path', 'num_words',
    'kernel_threads', 'pack_activation', 'pack_weight', 'block_weight',
    'binary_conv2d', 'binary_gemm', 'pack_activation_ref',
    'unpack_activation_ref', 'pack_weight_ref', 'unpack_weight_ref',
    'binary_conv2d_ref', 'binary_gemm_ref', 'pack_bits_flat',
    'unpack_bits_flat', 'BinaryConvParams', 'binary_conv2d_pack',
    'binary_conv2d_pack_ref', 'binary_block', 'binary_block_args',
    'binary_block_prepared', 'binary_block_ref', 'rprelu_pack',
    'rprelu_pack_ref', 'roi_align_nhwc', 'QuantizedStemParams',
    'quantized_stem', 'quantized_stem_ref', 'head_weight_blocks',
    'classifier_head', 'classifier_head_ref'
]
