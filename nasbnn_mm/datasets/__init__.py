from .digits import CLASSES as DIGITS_CLASSES
from .digits import check_digits_root, prepare_digits

__all__ = ['DIGITS_CLASSES', 'prepare_digits', 'check_digits_root']
