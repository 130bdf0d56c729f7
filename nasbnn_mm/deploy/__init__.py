"""Deployment of NAS-BNN subnets on bit-packed binary kernels.

Importing this package registers ``PackedNASBNN`` in the ``nasbnn_mm``
scope (configs: ``custom_imports=dict(imports=['nasbnn_mm',
'nasbnn_mm.deploy'])``); the C++ kernels load on the first forward. It uses
the static backbones and layers of :mod:`nasbnn_mm.models`, never the
supernet or its training.
"""
from .packed_io import (PACKED_FORMAT, PACKED_VERSION, load_packed,
                        packed_contents, save_packed)
from .packed_layers import PackedBinaryConv2d, PackedSeparableBlock
from .packed_nasbnn import PackedNASBNN, pack_nasbnn

__all__ = [
    'PackedBinaryConv2d', 'PackedSeparableBlock', 'PackedNASBNN',
    'pack_nasbnn', 'PACKED_FORMAT', 'PACKED_VERSION', 'packed_contents',
    'save_packed', 'load_packed'
]
