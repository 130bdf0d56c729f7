import pytest

from nasbnn_mm.models import WidthResNet18, WidthVGGSmall
from nasbnn_mm.nas.width_space import EXPAND_RATIOS, parse_expand_ratios


def test_ratios_of_eq2():
    assert EXPAND_RATIOS == (0.25, 0.5, 1, 2, 3, 4)


def test_parse_broadcasts_and_checks():
    names = ('a', 'b', 'c')
    assert parse_expand_ratios(2, names) == [2.0, 2.0, 2.0]
    assert parse_expand_ratios([0.25, 1, 4], names) == [0.25, 1.0, 4.0]
    with pytest.raises(ValueError, match=r'expand_ratios\[1\] \(b\): 5'):
        parse_expand_ratios([1, 5, 1], names)
    with pytest.raises(ValueError, match=r'expand_ratios\[0\] \(a\): True'):
        parse_expand_ratios([True, 1, 1], names)
    with pytest.raises(ValueError, match=r'got 2 ratios, expected 3.*\(a, '):
        parse_expand_ratios([1, 1], names)


def test_width_backbones_name_their_layers_the_same_way():
    for backbone in (WidthVGGSmall, WidthResNet18):
        assert isinstance(backbone.layer_names, tuple)
        assert all(isinstance(n, str) for n in backbone.layer_names)
    assert len(WidthVGGSmall.layer_names) == 6
    assert len(WidthResNet18.layer_names) == 12
