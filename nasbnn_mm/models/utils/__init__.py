from .official_converter import convert_official_state_dict

__all__ = ['convert_official_state_dict']
