"""Binary necks and heads for MMDetection detectors.

Imported by configs (``custom_imports=dict(imports=['nasbnn_mm',
'nasbnn_mm.models.detection'])``), never by ``import nasbnn_mm``: it imports
MMDetection. Importing it registers ``BinaryConvBlock``,
``BinaryLinearBlock``, ``BinaryRPNHead``, ``BinaryConvFCBBoxHead`` and
``BinaryShared2FCBBoxHead`` in ``nasbnn_mm.registry.MODELS``.
"""
from .binary_bbox_head import BinaryConvFCBBoxHead, BinaryShared2FCBBoxHead
from .binary_blocks import BinaryConvBlock, BinaryLinear, BinaryLinearBlock
from .binary_rpn_head import BinaryRPNHead

__all__ = [
    'BinaryLinear', 'BinaryConvBlock', 'BinaryLinearBlock', 'BinaryRPNHead',
    'BinaryConvFCBBoxHead', 'BinaryShared2FCBBoxHead'
]
