from .super_bnn import SuperBNN, SuperSeparableBlock, SuperStem
from .width_resnet import WidthResNet18
from .width_vgg import WidthVGGSmall

__all__ = [
    'SuperBNN', 'SuperSeparableBlock', 'SuperStem', 'WidthVGGSmall',
    'WidthResNet18'
]
