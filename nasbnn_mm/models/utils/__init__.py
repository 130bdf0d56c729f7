from .official_converter import convert_official_state_dict
from .precision_map import PRECISIONS, format_precision_map, precision_map

__all__ = [
    'convert_official_state_dict', 'PRECISIONS', 'precision_map',
    'format_precision_map'
]
