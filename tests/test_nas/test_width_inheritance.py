import pytest
import torch
import torch.nn as nn

from nasbnn_mm.nas.width_inheritance import inherit_leading_channels


def _net(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, bias=False), nn.BatchNorm2d(width),
        nn.Flatten(), nn.Linear(width * 4, 2))


def test_every_tensor_takes_the_leading_slice():
    torch.manual_seed(0)
    wide, narrow = _net(8), _net(3)
    wide[1].running_mean.normal_()
    inherit_leading_channels(narrow, wide.state_dict())
    own, source = narrow.state_dict(), wide.state_dict()
    assert own['0.weight'].shape == (3, 3, 3, 3)
    for key, tensor in own.items():
        expected = source[key][tuple(slice(0, n) for n in tensor.shape)]
        torch.testing.assert_close(tensor, expected, rtol=0, atol=0)
    # the linear layer reads channels 0..2 of the flattened (C, 2, 2) map
    torch.testing.assert_close(own['3.weight'], source['3.weight'][:, :12])


def test_errors_name_the_key():
    with pytest.raises(
            ValueError,
            match=r"\['0.weight'\]: shape "
            r'\(3, 3, 3, 3\) cannot be sliced to \(8, 3, 3, 3\)'):
        inherit_leading_channels(_net(8), _net(3).state_dict())
    state = _net(8).state_dict()
    del state['1.bias']
    with pytest.raises(ValueError, match="missing key '1.bias'"):
        inherit_leading_channels(_net(3), state)
