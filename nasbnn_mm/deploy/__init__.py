"""Deployment of NAS-BNN subnets on bit-packed binary kernels.

Importing this package registers ``PackedNASBNN`` in the ``nasbnn_mm``
scope (configs: ``custom_imports=dict(imports=['nasbnn_mm',
'nasbnn_mm.deploy'])``); the C++ kernels load on the first forward.
"""
from .packed_nasbnn import (PACKED_FORMAT, PackedBinaryConv2d, PackedNASBNN,
                            PackedSeparableBlock, load_packed, pack_nasbnn,
                            save_packed)

__all__ = [
    'PACKED_FORMAT', 'PackedBinaryConv2d', 'PackedSeparableBlock',
    'PackedNASBNN', 'pack_nasbnn', 'save_packed', 'load_packed'
]
