from .super_bnn import SuperBNN, SuperSeparableBlock, SuperStem

__all__ = ['SuperBNN', 'SuperSeparableBlock', 'SuperStem']
