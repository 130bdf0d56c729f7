"""tool_process_group: a tool destroys the process group its run
created, and only that one."""
import socket

import torch.distributed as dist

from nasbnn_mm.utils import tool_process_group


def _init_single_rank_group() -> None:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)


def test_the_group_a_run_creates_is_destroyed():
    assert not dist.is_initialized()
    with tool_process_group('none'):
        _init_single_rank_group()  # as a runner with a launcher does
        assert dist.is_initialized()
    assert not dist.is_initialized()


def test_an_existing_group_is_left_alone():
    _init_single_rank_group()
    try:
        with tool_process_group('none'):
            pass
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_the_group_is_destroyed_after_an_error():
    try:
        with tool_process_group('none'):
            _init_single_rank_group()
            raise ValueError('the run failed')
    except ValueError:
        pass
    assert not dist.is_initialized()
