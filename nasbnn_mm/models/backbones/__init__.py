from .nasbnn import NASBNN, BinarySeparableBlock, NASBNNStem
from .super_bnn import SuperBNN, SuperSeparableBlock, SuperStem
from .width_resnet import WidthResNet18
from .width_vgg import WidthVGGSmall

__all__ = [
    'SuperBNN', 'SuperSeparableBlock', 'SuperStem', 'NASBNN', 'NASBNNStem',
    'BinarySeparableBlock', 'WidthVGGSmall', 'WidthResNet18'
]
