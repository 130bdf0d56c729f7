"""Fixtures of the search tests."""
import pytest
import torch
from search_toys import tiny_supernet


@pytest.fixture(scope='session')
def checkpoint(tmp_path_factory) -> str:
    """A random-weight supernet saved like a training checkpoint."""
    torch.manual_seed(0)
    model = tiny_supernet()
    path = str(tmp_path_factory.mktemp('ckpt') / 'supernet.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path
