from .base_nasbnn import (SUBNET_NAMES, BaseNASBNNBackbone, BaseSubnet,
                          NASBNNStem, normalize_out_indices, resolve_arch)
from .nasbnn import NASBNN, BinarySeparableBlock
from .super_bnn import SuperBNN, SuperSeparableBlock, SuperStem
from .width_resnet import WidthResNet18
from .width_vgg import WidthVGGSmall

__all__ = [
    'SUBNET_NAMES', 'resolve_arch', 'normalize_out_indices',
    'BaseNASBNNBackbone', 'BaseSubnet', 'SuperBNN', 'SuperSeparableBlock',
    'SuperStem', 'NASBNN', 'NASBNNStem', 'BinarySeparableBlock',
    'WidthVGGSmall', 'WidthResNet18'
]
